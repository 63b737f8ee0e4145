"""The tools a model can call: their arguments as pydantic models, their OpenAI schemas, and call validation.

Each tool's arguments are one pydantic model; the JSON schema a model is shown is derived from it
(:func:`Tool.schema`) and a call is checked against it (:func:`validate_call`), so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rock_gym.tools.calls import FormatError, ToolCall

#: Largest string argument accepted, in UTF-8 bytes.
MAX_ARGUMENT_BYTES = 1_000_000

#: The most items a todo list holds, and the longest item, in characters.
MAX_TODO_ITEMS = 50
MAX_TODO_ITEM_LENGTH = 200

#: JSON-schema keys kept in the schemas shown to a model (the subset OpenAI function calling understands).
SCHEMA_KEYS = frozenset({"type", "description", "enum", "properties", "required", "items", "additionalProperties"})


class BashArguments(BaseModel):
    """Arguments of ``bash``."""

    model_config = ConfigDict(extra="forbid")

    command: str = Field(description="The bash command to run. The shell persists between calls (cwd, variables).")
    timeout: float | None = Field(None, gt=0, description="Seconds to allow before the command is killed.")


class EditorArguments(BaseModel):
    """Arguments of ``str_replace_editor``; which ones are required depends on ``command``."""

    model_config = ConfigDict(extra="forbid")

    command: Literal["view", "create", "str_replace", "insert"] = Field(description="The edit to make.")
    path: str = Field(description="Absolute path of the file or directory, e.g. /repo/app.py.")
    file_text: str | None = Field(None, description="`create`: the whole content of the new file.")
    old_str: str | None = Field(None, description="`str_replace`: the exact text to replace; must occur once.")
    new_str: str | None = Field(None, description="`str_replace`: the replacement; `insert`: the text to insert.")
    insert_line: int | None = Field(None, description="`insert`: insert after this line (0 inserts at the top).")
    view_range: list[int] | None = Field(
        None, min_length=2, max_length=2, description="`view`: [start, end] lines to show, 1-based; end -1 = to EOF."
    )

    @model_validator(mode="after")
    def _required_for_command(self) -> EditorArguments:
        needed = {"create": ["file_text"], "str_replace": ["old_str"], "insert": ["insert_line", "new_str"]}
        missing = [name for name in needed.get(self.command, []) if getattr(self, name) is None]
        if missing:
            raise ValueError(f"command {self.command!r} needs {' and '.join(missing)}")
        return self


class SubmitArguments(BaseModel):
    """Arguments of ``submit``."""

    model_config = ConfigDict(extra="forbid")

    answer: str | None = Field(None, description="Your final answer, when the task asks for one.")


class TodoArguments(BaseModel):
    """Arguments of ``todo``."""

    model_config = ConfigDict(extra="forbid")

    items: list[str] = Field(
        description=f"The whole todo list, replacing the previous one: at most {MAX_TODO_ITEMS} short items of at "
        f"most {MAX_TODO_ITEM_LENGTH} characters each; [] clears it."
    )

    @field_validator("items")
    @classmethod
    def _short_list_of_short_items(cls, items: list[str]) -> list[str]:
        # Checked here rather than by pydantic's constraints, so that the model is told how to fix its call.
        if len(items) > MAX_TODO_ITEMS:
            raise ValueError(f"{len(items)} items, over the limit of {MAX_TODO_ITEMS}: merge or drop some")
        items = [item.strip() for item in items]
        for number, item in enumerate(items, 1):
            if not item:
                raise ValueError(f"item {number} is empty: drop it")
            if len(item) > MAX_TODO_ITEM_LENGTH:
                raise ValueError(
                    f"item {number} has {len(item)} characters, over the limit of {MAX_TODO_ITEM_LENGTH}: shorten it"
                )
        return items


@dataclass(frozen=True)
class Tool:
    """A tool a model can call.

    Attributes:
        name: the name the model calls it by.
        description: what it does, shown to the model.
        arguments: the pydantic model of its arguments.
    """

    name: str
    description: str
    arguments: type[BaseModel]

    def schema(self) -> dict[str, Any]:
        """The tool in OpenAI function format: ``{"type": "function", "function": {name, description, parameters}}``.

        Examples:
            >>> TOOLS["submit"].schema()["function"]["parameters"]["properties"]["answer"]["type"]
            'string'
        """
        parameters = openai_schema(self.arguments.model_json_schema())
        parameters.pop("description", None)  # the model's docstring is for programmers; the tool has its own
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": parameters},
        }

    def expected(self) -> str:
        """The arguments in one line, for error messages: ``command (string, required), timeout (number)``."""
        parameters = self.schema()["function"]["parameters"]
        required = set(parameters.get("required", []))
        parts = []
        for name, schema in parameters["properties"].items():
            kind = "|".join(map(str, schema["enum"])) if "enum" in schema else schema.get("type", "any")
            kind += f" of {schema['items'].get('type', 'any')}" if "items" in schema else ""
            parts.append(f"{name} ({kind}{', required' if name in required else ''})")
        return ", ".join(parts) or "no arguments"


BASH = Tool("bash", "Run a bash command in the sandbox and return its output and exit code.", BashArguments)
STR_REPLACE_EDITOR = Tool(
    "str_replace_editor",
    "View, create and edit files. `view` shows a file with line numbers (or lists a directory); `create` writes a "
    "new file; `str_replace` replaces text that occurs exactly once; `insert` adds text after a line.",
    EditorArguments,
)
SUBMIT = Tool("submit", "Finish the task (give `answer` when the task asks for one).", SubmitArguments)
TODO = Tool(
    "todo",
    "Keep your todo list for this task: give the whole list each time (it replaces the previous one). It does not "
    "touch the sandbox; the list is shown back to you.",
    TodoArguments,
)

#: The built-in tools by name.
TOOLS: dict[str, Tool] = {tool.name: tool for tool in (BASH, STR_REPLACE_EDITOR, SUBMIT, TODO)}


def tool_schemas(names: Iterable[str] | None = None, tools: Mapping[str, Tool] = TOOLS) -> list[dict[str, Any]]:
    """OpenAI function schemas of the tools called ``names`` (all of ``tools`` when None), for a chat template.

    Examples:
        >>> [schema["function"]["name"] for schema in tool_schemas(["bash", "submit"])]
        ['bash', 'submit']
    """
    return [_tool(name, tools).schema() for name in (tools if names is None else names)]


def validate_call(call: ToolCall, tools: Mapping[str, Tool] = TOOLS) -> BaseModel:
    """Check a call against its tool and return its arguments as the tool's pydantic model.

    Raises:
        FormatError: unknown tool, a missing, unknown, mistyped or oversized argument; the message names the tool,
            the problem and the expected arguments.

    Examples:
        >>> validate_call(ToolCall("bash", {"command": "ls"}))
        BashArguments(command='ls', timeout=None)
    """
    tool = _tool(call.name, tools)
    _check_strings(tool, call.arguments)
    try:
        return tool.arguments.model_validate(call.arguments)
    except ValidationError as exc:
        problems = "; ".join(_describe(error) for error in exc.errors())
        raise FormatError(f"invalid call of {tool.name}: {problems}. Expected arguments: {tool.expected()}") from None


def openai_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic JSON schema cut down to what OpenAI function calling reads.

    ``$ref`` is inlined, ``Optional[X]`` (``anyOf`` with null) becomes ``X``, and titles, defaults and
    pydantic-only keywords are dropped.
    """
    return _clean(schema, schema.get("$defs", {}))


def _clean(node: Any, defs: Mapping[str, Any]) -> Any:
    if isinstance(node, list):
        return [_clean(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return _clean(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
    variants = [variant for variant in node.get("anyOf", []) if variant.get("type") != "null"]
    if len(variants) == 1:
        node = {**variants[0], **{key: value for key, value in node.items() if key != "anyOf"}}
    cleaned = {key: value for key, value in node.items() if key in SCHEMA_KEYS}
    if "properties" in cleaned:
        cleaned["properties"] = {name: _clean(value, defs) for name, value in cleaned["properties"].items()}
    if "items" in cleaned:
        cleaned["items"] = _clean(cleaned["items"], defs)
    return cleaned


def _tool(name: str, tools: Mapping[str, Tool]) -> Tool:
    if name not in tools:
        raise FormatError(f"unknown tool {name!r}: available tools are {', '.join(tools)}")
    return tools[name]


def _check_strings(tool: Tool, value: Any, where: str = "") -> None:
    """Every string in the arguments is valid UTF-8 text and at most MAX_ARGUMENT_BYTES long."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_strings(tool, item, where or str(key))
    elif isinstance(value, list):
        for item in value:
            _check_strings(tool, item, where)
    elif isinstance(value, str):
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError:
            raise FormatError(f"invalid call of {tool.name}: argument {where!r} holds invalid unicode") from None
        if size > MAX_ARGUMENT_BYTES:
            raise FormatError(
                f"invalid call of {tool.name}: argument {where!r} is {size} bytes, the limit is {MAX_ARGUMENT_BYTES}; "
                "split the content over several calls"
            )


def _describe(error: Any) -> str:
    """One pydantic error in words a model can act on."""
    name = ".".join(str(part) for part in error["loc"])
    if error["type"] == "missing":
        return f"missing required argument {name!r}"
    if error["type"] == "extra_forbidden":
        return f"unknown argument {name!r}"
    message = error["msg"].removeprefix("Value error, ")
    if not name:
        return message
    shown = repr(error["input"])
    return f"argument {name!r}: {message} (got {shown[:60] + '...' if len(shown) > 60 else shown})"
