"""Tool schemas and call validation."""

from __future__ import annotations

import pytest

from rock_gym.tools import TOOLS, FormatError, ToolCall, render_todo, tool_schemas, validate_call
from rock_gym.tools.registry import (
    MAX_ARGUMENT_BYTES,
    MAX_TODO_ITEM_LENGTH,
    MAX_TODO_ITEMS,
    SCHEMA_KEYS,
    BashArguments,
    EditorArguments,
    SubmitArguments,
    TodoArguments,
)


def _keys(node):
    if isinstance(node, dict):
        yield from node
        for key, value in node.items():
            if key != "properties":
                yield from _keys(value)
            else:
                for child in value.values():
                    yield from _keys(child)
    elif isinstance(node, list):
        for item in node:
            yield from _keys(item)


def test_schemas_are_openai_functions_in_the_openai_subset():
    schemas = tool_schemas()
    assert [schema["function"]["name"] for schema in schemas] == ["bash", "str_replace_editor", "submit", "todo"]
    for schema in schemas:
        assert schema["type"] == "function"
        assert set(schema["function"]) == {"name", "description", "parameters"}
        parameters = schema["function"]["parameters"]
        assert parameters["type"] == "object" and parameters["additionalProperties"] is False
        assert set(_keys(parameters)) <= SCHEMA_KEYS
        assert all("description" in prop for prop in parameters["properties"].values())


def test_schema_types_are_plain_after_cleaning():
    bash, editor, submit, todo = (schema["function"]["parameters"] for schema in tool_schemas())
    assert bash["required"] == ["command"]
    assert bash["properties"]["timeout"]["type"] == "number"
    assert editor["required"] == ["command", "path"]
    assert editor["properties"]["command"]["enum"] == ["view", "create", "str_replace", "insert"]
    assert editor["properties"]["view_range"] == {
        "type": "array",
        "items": {"type": "integer"},
        "description": editor["properties"]["view_range"]["description"],
    }
    assert "required" not in submit and submit["properties"]["answer"]["type"] == "string"
    assert todo["required"] == ["items"] and todo["properties"]["items"]["items"] == {"type": "string"}


def test_tool_schemas_by_name_and_unknown_name():
    assert [schema["function"]["name"] for schema in tool_schemas(["submit"])] == ["submit"]
    with pytest.raises(FormatError, match="unknown tool 'ls'"):
        tool_schemas(["ls"])


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (ToolCall("bash", {"command": "ls", "timeout": 5}), BashArguments(command="ls", timeout=5.0)),
        (ToolCall("submit", {}), SubmitArguments()),
        (ToolCall("submit", {"answer": "42"}), SubmitArguments(answer="42")),
        (
            ToolCall("str_replace_editor", {"command": "view", "path": "/a", "view_range": [1, -1]}),
            EditorArguments(command="view", path="/a", view_range=[1, -1]),
        ),
        (
            ToolCall("str_replace_editor", {"command": "insert", "path": "/a", "insert_line": 0, "new_str": "x"}),
            EditorArguments(command="insert", path="/a", insert_line=0, new_str="x"),
        ),
    ],
)
def test_valid_calls_give_typed_arguments(call, expected):
    assert validate_call(call) == expected


@pytest.mark.parametrize(
    ("call", "problem"),
    [
        (ToolCall("rm", {}), "unknown tool 'rm': available tools are bash, str_replace_editor, submit, todo"),
        (ToolCall("bash", {}), "invalid call of bash: missing required argument 'command'"),
        (ToolCall("bash", {"command": 3}), "argument 'command': Input should be a valid string"),
        (ToolCall("bash", {"command": "ls", "timeout": "soon"}), "argument 'timeout'"),
        (ToolCall("bash", {"command": "ls", "timeout": -1}), "greater than 0"),
        (ToolCall("bash", {"cmd": "ls"}), "unknown argument 'cmd'"),
        (ToolCall("str_replace_editor", {"command": "delete", "path": "/a"}), "argument 'command'"),
        (ToolCall("str_replace_editor", {"command": "create", "path": "/a"}), "command 'create' needs file_text"),
        (ToolCall("str_replace_editor", {"command": "str_replace", "path": "/a"}), "needs old_str"),
        (ToolCall("str_replace_editor", {"command": "insert", "path": "/a"}), "needs insert_line and new_str"),
        (ToolCall("str_replace_editor", {"command": "view", "path": "/a", "view_range": [1]}), "'view_range'"),
        (ToolCall("str_replace_editor", {"command": "view", "path": "/a", "view_range": "1-5"}), "'view_range'"),
        (ToolCall("todo", {}), "invalid call of todo: missing required argument 'items'"),
        (ToolCall("todo", {"items": "fix it"}), "argument 'items': Input should be a valid list"),
        (ToolCall("todo", {"items": ["x"] * (MAX_TODO_ITEMS + 1)}), "51 items, over the limit of 50: merge or drop"),
        (ToolCall("todo", {"items": ["ok", "y" * 201]}), "item 2 has 201 characters, over the limit of 200: shorten"),
        (ToolCall("todo", {"items": ["ok", " "]}), "item 2 is empty: drop it"),
        (ToolCall("todo", {"items": ["ok"], "done": [1]}), "unknown argument 'done'"),
    ],
)
def test_invalid_calls_name_the_tool_the_problem_and_the_expected_arguments(call, problem):
    with pytest.raises(FormatError) as caught:
        validate_call(call)
    assert problem in caught.value.message
    if call.name in TOOLS:
        assert f"Expected arguments: {TOOLS[call.name].expected()}" in caught.value.message


def test_todo_items_are_kept_stripped_and_rendered():
    items = ["  read the issue ", "x" * MAX_TODO_ITEM_LENGTH] + ["more"] * (MAX_TODO_ITEMS - 2)
    arguments = validate_call(ToolCall("todo", {"items": items}))
    assert isinstance(arguments, TodoArguments) and arguments.items[0] == "read the issue"
    assert len(arguments.items) == MAX_TODO_ITEMS and validate_call(ToolCall("todo", {"items": []})).items == []
    assert render_todo(["a"]) == "Todo list (1 item):\n1. a"
    assert TOOLS["todo"].expected() == "items (array of string, required)"


def test_expected_arguments_read_well():
    assert TOOLS["bash"].expected() == "command (string, required), timeout (number)"
    assert "command (view|create|str_replace|insert, required)" in TOOLS["str_replace_editor"].expected()
    assert "view_range (array of integer)" in TOOLS["str_replace_editor"].expected()


def test_oversized_and_invalid_strings_are_refused_before_validation():
    big = "x" * (MAX_ARGUMENT_BYTES + 1)
    with pytest.raises(FormatError, match=r"argument 'file_text' is 1000001 bytes, the limit is 1000000"):
        validate_call(ToolCall("str_replace_editor", {"command": "create", "path": "/a", "file_text": big}))
    wide = "é" * (MAX_ARGUMENT_BYTES // 2 + 1)  # under the limit in characters, over it in bytes
    with pytest.raises(FormatError, match="bytes, the limit"):
        validate_call(ToolCall("bash", {"command": wide}))
    with pytest.raises(FormatError, match="invalid unicode"):
        validate_call(ToolCall("bash", {"command": "echo \ud800"}))
    assert validate_call(ToolCall("bash", {"command": "x" * MAX_ARGUMENT_BYTES}))
