"""Turn a model's raw text into tool calls, and tool calls back into text, for three formats.

* ``hermes`` (Hermes, Qwen2.5): ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``, several per turn.
* ``qwen3_coder`` (Qwen3-Coder): ``<tool_call><function=NAME><parameter=P>value</parameter></function></tool_call>``.
* ``openai``: a JSON list of OpenAI tool calls, a single one, or ``{"tool_calls": [...]}``, anywhere in the text.

Every parser scans with ``str.find`` and ``json.JSONDecoder.raw_decode`` (no nested regexes), so the time it takes
grows linearly with the text, and rejects turns longer than :data:`MAX_TURN_CHARS` or with more than
:data:`MAX_CALLS` calls.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from rock_gym.tools.calls import FormatError, NoToolCall, ToolCall

#: Most tool calls accepted in one turn.
MAX_CALLS = 32
#: Longest turn accepted, in characters.
MAX_TURN_CHARS = 4_000_000
#: Most candidate JSON starts the openai parser tries before giving up.
MAX_JSON_CANDIDATES = 64

HERMES_HINT = 'wrap each call as <tool_call>{"name": ..., "arguments": {...}}</tool_call>'
QWEN3_CODER_HINT = (
    "write each call as <tool_call><function=NAME><parameter=ARG>value</parameter>...</function></tool_call>"
)
OPENAI_HINT = 'reply with a JSON list like [{"type": "function", "function": {"name": ..., "arguments": "{...}"}}]'

_DECODER = json.JSONDecoder()
_CALL_KEYS = ('"function"', '"tool_calls"', '"arguments"')

Schemas = Sequence[Mapping[str, Any]]


class ToolFormat(NamedTuple):
    """A tool-call format: how to read calls from a turn, and how to write them.

    Attributes:
        parse: ``parse(text, tools=None) -> list[ToolCall]``; ``tools`` are OpenAI function schemas, used by formats
            whose values are untyped text (qwen3_coder) to convert them.
        render: ``render(calls) -> str``.
    """

    parse: Callable[[str, Schemas | None], list[ToolCall]]
    render: Callable[[Sequence[ToolCall]], str]


# -- shared -----------------------------------------------------------------------------------------------------


def _check_size(text: str) -> None:
    if len(text) > MAX_TURN_CHARS:
        raise FormatError(f"turn too long: {len(text)} characters, the limit is {MAX_TURN_CHARS}; write less per turn")


def _check_count(count: int) -> None:
    if count > MAX_CALLS:
        raise FormatError(f"too many tool calls in one turn: more than {MAX_CALLS}; make at most {MAX_CALLS} per turn")


def _decode_arguments(raw: Any, where: str, hint: str) -> dict[str, Any]:
    """Arguments as an object, or as a JSON string holding one (OpenAI style); missing or empty means none."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise FormatError(f"{where}: arguments is not valid JSON ({exc}); {hint}") from None
    if not isinstance(raw, dict):
        raise FormatError(f"{where}: arguments must be a JSON object, got {type(raw).__name__}; {hint}")
    return raw


def _call_from_object(obj: Any, where: str, hint: str) -> ToolCall:
    """A ToolCall from ``{"name", "arguments", "id"?}`` (the hermes body, or an OpenAI call's ``function``)."""
    if not isinstance(obj, dict):
        raise FormatError(f"{where}: expected a JSON object, got {type(obj).__name__}; {hint}")
    name = obj.get("name")
    if not isinstance(name, str) or not name.strip():
        raise FormatError(f'{where}: missing "name" (a non-empty string); {hint}')
    call_id = obj.get("id")
    return ToolCall(name.strip(), _decode_arguments(obj.get("arguments"), where, hint), _id_or_none(call_id))


def _id_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


# -- hermes -----------------------------------------------------------------------------------------------------

_OPEN, _CLOSE = "<tool_call>", "</tool_call>"


def parse_hermes(text: str, tools: Schemas | None = None) -> list[ToolCall]:
    """Read ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` blocks; ``arguments`` may be a JSON string.

    Args:
        text: the model's turn.
        tools: unused; accepted so that every format parses with the same signature.

    Returns:
        The calls in the order written.

    Raises:
        NoToolCall: the turn has no ``<tool_call>``.
        FormatError: a call is malformed or unclosed, or there are too many.

    Examples:
        >>> parse_hermes('<tool_call>{"name": "bash", "arguments": {"command": "ls"}}</tool_call>')
        [ToolCall(name='bash', arguments={'command': 'ls'}, id=None)]
    """
    _check_size(text)
    calls: list[ToolCall] = []
    start = text.find(_OPEN)
    while start != -1:
        _check_count(len(calls) + 1)
        call, end = _hermes_block(text, start + len(_OPEN), len(calls) + 1)
        calls.append(call)
        start = text.find(_OPEN, end)
    if not calls:
        if '"name"' in text and '"arguments"' in text:
            raise FormatError(f"found what looks like a tool call outside <tool_call> tags: {HERMES_HINT}")
        raise NoToolCall(f"no tool call found: {HERMES_HINT}")
    return calls


def _hermes_block(text: str, pos: int, number: int) -> tuple[ToolCall, int]:
    """The call whose JSON starts at or after ``pos``, and the position after its ``</tool_call>``."""
    where = f"tool call {number}"
    pos = _skip_space(text, pos)
    if text.startswith(_CLOSE, pos):
        raise FormatError(f"{where} is empty: {HERMES_HINT}")
    try:
        obj, pos = _DECODER.raw_decode(text, pos)
    except (json.JSONDecodeError, RecursionError) as exc:
        if text.find(_CLOSE, pos) == -1:
            raise FormatError(f"{where}: unclosed <tool_call> (no </tool_call> follows); {HERMES_HINT}") from None
        raise FormatError(f"{where}: malformed JSON ({exc}); {HERMES_HINT}") from None
    call = _call_from_object(obj, where, HERMES_HINT)
    pos = _skip_space(text, pos)
    if text.startswith(_CLOSE, pos):
        return call, pos + len(_CLOSE)
    if pos >= len(text):
        raise FormatError(f"{where}: unclosed <tool_call> (no </tool_call> follows); {HERMES_HINT}")
    raise FormatError(f"{where}: unexpected text after the JSON object, expected </tool_call>; {HERMES_HINT}")


def render_hermes(calls: Sequence[ToolCall]) -> str:
    """Write calls as ``<tool_call>`` blocks, one per line group (the call's id is kept when set).

    Examples:
        >>> print(render_hermes([ToolCall("submit")]))
        <tool_call>
        {"name": "submit", "arguments": {}}
        </tool_call>
    """
    blocks = []
    for call in calls:
        body: dict[str, Any] = {"name": call.name, "arguments": call.arguments}
        if call.id is not None:
            body["id"] = call.id
        blocks.append(f"{_OPEN}\n{json.dumps(body, ensure_ascii=False)}\n{_CLOSE}")
    return "\n".join(blocks)


# -- qwen3-coder xml --------------------------------------------------------------------------------------------

_FUNCTION, _FUNCTION_END = "<function=", "</function>"
_PARAMETER, _PARAMETER_END = "<parameter=", "</parameter>"


def parse_qwen3_coder(text: str, tools: Schemas | None = None) -> list[ToolCall]:
    """Read Qwen3-Coder XML calls; the ``<tool_call>`` wrapper is optional.

    Values are raw text: one leading and one trailing newline are stripped. With ``tools`` (OpenAI function
    schemas), a value whose parameter is not typed as a string is decoded as JSON where it parses (``42``,
    ``true``, ``[1, 5]``); otherwise values stay strings.

    Args:
        text: the model's turn.
        tools: OpenAI function schemas of the tools, to type the values.

    Returns:
        The calls in the order written.

    Raises:
        NoToolCall: the turn has no ``<function=...>``.
        FormatError: a tag is unclosed, a name is missing, or there are too many calls.

    Examples:
        >>> parse_qwen3_coder("<function=bash><parameter=command>\\nls\\n</parameter></function>")
        [ToolCall(name='bash', arguments={'command': 'ls'}, id=None)]
    """
    _check_size(text)
    types = _parameter_types(tools or ())
    calls: list[ToolCall] = []
    start = text.find(_FUNCTION)
    while start != -1:
        _check_count(len(calls) + 1)
        call, end = _qwen3_function(text, start + len(_FUNCTION), len(calls) + 1)
        call.arguments = {key: _typed(value, types.get((call.name, key))) for key, value in call.arguments.items()}
        calls.append(call)
        start = text.find(_FUNCTION, end)
    if not calls:
        if _OPEN in text or _PARAMETER in text:
            raise FormatError(f"tool call without <function=NAME>: {QWEN3_CODER_HINT}")
        raise NoToolCall(f"no tool call found: {QWEN3_CODER_HINT}")
    return calls


def _tag_name(text: str, pos: int, tag: str, where: str) -> tuple[str, int]:
    """The name in ``<tag=NAME>`` whose name starts at ``pos``, and the position after ``>``."""
    end = text.find(">", pos)
    newline = text.find("\n", pos)
    if end == -1 or (newline != -1 and newline < end):
        raise FormatError(f"{where}: <{tag}=... is not closed with '>'; {QWEN3_CODER_HINT}")
    name = text[pos:end].strip()
    if not name:
        raise FormatError(f"{where}: <{tag}=> has no name; {QWEN3_CODER_HINT}")
    return name, end + 1


def _qwen3_function(text: str, pos: int, number: int) -> tuple[ToolCall, int]:
    """The function whose name starts at ``pos``, and the position after its ``</function>``."""
    name, pos = _tag_name(text, pos, "function", f"tool call {number}")
    where = f"tool call {number} ({name})"
    arguments: dict[str, Any] = {}
    while True:
        pos = _skip_space(text, pos)
        if text.startswith(_FUNCTION_END, pos):
            return ToolCall(name, arguments), pos + len(_FUNCTION_END)
        if not text.startswith(_PARAMETER, pos):
            if pos >= len(text) or text.startswith(_CLOSE, pos):
                raise FormatError(f"{where}: unclosed <function={name}> (no </function> follows); {QWEN3_CODER_HINT}")
            raise FormatError(f"{where}: unexpected text inside <function={name}>; {QWEN3_CODER_HINT}")
        key, pos = _tag_name(text, pos + len(_PARAMETER), "parameter", where)
        end = text.find(_PARAMETER_END, pos)
        if end == -1:
            raise FormatError(f"{where}: unclosed <parameter={key}> (no </parameter> follows); {QWEN3_CODER_HINT}")
        if key in arguments:
            raise FormatError(f"{where}: parameter {key!r} given twice; give each parameter once")
        arguments[key] = _strip_one_newline(text[pos:end])
        pos = end + len(_PARAMETER_END)


def _strip_one_newline(value: str) -> str:
    value = value[1:] if value.startswith("\n") else value
    return value[:-1] if value.endswith("\n") else value


def _parameter_types(tools: Schemas) -> dict[tuple[str, str], set[str]]:
    """``(tool, parameter) -> JSON types`` from OpenAI function schemas."""
    types: dict[tuple[str, str], set[str]] = {}
    for tool in tools:
        function = tool.get("function", tool)
        properties = function.get("parameters", {}).get("properties", {})
        for key, schema in properties.items():
            declared = schema.get("type", [])
            types[(function.get("name", ""), key)] = {declared} if isinstance(declared, str) else set(declared)
    return types


def _typed(value: str, types: set[str] | None) -> Any:
    """Decode ``value`` as JSON when its parameter is typed and not as a string; keep it as text otherwise."""
    if not types or "string" in types:
        return value
    try:
        return json.loads(value)
    except (json.JSONDecodeError, RecursionError):
        return value  # validation then names the wrong type


def render_qwen3_coder(calls: Sequence[ToolCall]) -> str:
    """Write calls as Qwen3-Coder XML; strings are written raw, other values as JSON.

    Raises:
        ValueError: a name holds ``>`` or whitespace, or a value holds ``</parameter>`` (the format cannot carry it).

    Examples:
        >>> print(render_qwen3_coder([ToolCall("bash", {"command": "ls"})]))
        <tool_call>
        <function=bash>
        <parameter=command>
        ls
        </parameter>
        </function>
        </tool_call>
    """
    return "\n".join(_render_qwen3_call(call) for call in calls)


def _render_qwen3_call(call: ToolCall) -> str:
    lines = [_OPEN, f"{_FUNCTION}{_checked_name(call.name)}>"]
    for key, value in call.arguments.items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        if _PARAMETER_END in text:
            raise ValueError(f"parameter {key!r} holds {_PARAMETER_END!r}, which qwen3_coder cannot carry")
        lines += [f"{_PARAMETER}{_checked_name(key)}>", text, _PARAMETER_END]
    return "\n".join([*lines, _FUNCTION_END, _CLOSE])


def _checked_name(name: str) -> str:
    if not name or name != name.strip() or any(char == ">" or char.isspace() for char in name):
        raise ValueError(f"name {name!r} cannot be written in qwen3_coder: no '>' or whitespace allowed")
    return name


# -- openai json ------------------------------------------------------------------------------------------------


def parse_openai(text: str, tools: Schemas | None = None) -> list[ToolCall]:
    """Read OpenAI tool calls from the first JSON list or object in the text that holds them.

    Accepts ``[{"type": "function", "function": {"name": ..., "arguments": "<json>"}, "id": ...}]``, a single
    such object, ``{"tool_calls": [...]}``, and the flat ``{"name": ..., "arguments": ...}``; text around the JSON
    (prose, a code fence) is skipped.

    Args:
        text: the model's turn.
        tools: unused; accepted so that every format parses with the same signature.

    Returns:
        The calls in the order written.

    Raises:
        NoToolCall: no JSON holding tool calls was found.
        FormatError: the JSON is malformed or a call in it is, or there are too many.

    Examples:
        >>> parse_openai('[{"type": "function", "id": "c1", "function": {"name": "submit", "arguments": "{}"}}]')
        [ToolCall(name='submit', arguments={}, id='c1')]
    """
    _check_size(text)
    found, first_error = _find_calls_json(text)
    if found is None:
        if first_error and any(key in text for key in _CALL_KEYS):
            raise FormatError(f"malformed JSON ({first_error}); {OPENAI_HINT}")
        raise NoToolCall(f"no tool call found: {OPENAI_HINT}")
    items = found.get("tool_calls") if isinstance(found, dict) and "tool_calls" in found else found
    items = items if isinstance(items, list) else [items]
    if not items:
        raise NoToolCall(f"no tool call found (the list is empty): {OPENAI_HINT}")
    _check_count(len(items))
    return [_openai_call(item, number) for number, item in enumerate(items, start=1)]


def _find_calls_json(text: str) -> tuple[Any, str | None]:
    """The first JSON value in ``text`` that looks like tool calls, and the first decoding error met on the way."""
    first_error: str | None = None
    pos = _next_json_start(text, 0)
    for _ in range(MAX_JSON_CANDIDATES):
        if pos == -1:
            break
        try:
            value, end = _DECODER.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            if _began_a_call(text, pos, exc.pos):  # a nested object may decode, but the call as written is broken
                raise FormatError(f"malformed JSON ({exc}); {OPENAI_HINT}") from None
            first_error = first_error or str(exc)
            pos = _next_json_start(text, pos + 1)
            continue
        except RecursionError:
            first_error = first_error or "nested too deeply"
            pos = _next_json_start(text, pos + 1)
            continue
        if _looks_like_calls(value):
            return value, first_error
        pos = _next_json_start(text, end)
    return None, first_error


def _began_a_call(text: str, start: int, failed_at: int) -> bool:
    """Whether the JSON that failed at ``failed_at`` had already written a tool-call key."""
    return any(text.find(key, start, failed_at) != -1 for key in _CALL_KEYS)


def _next_json_start(text: str, pos: int) -> int:
    starts = [index for index in (text.find("[", pos), text.find("{", pos)) if index != -1]
    return min(starts, default=-1)


def _looks_like_calls(value: Any) -> bool:
    if isinstance(value, list):
        return bool(value) and all(isinstance(item, dict) and ("function" in item or "name" in item) for item in value)
    return isinstance(value, dict) and any(key in value for key in ("tool_calls", "function", "name"))


def _openai_call(item: Any, number: int) -> ToolCall:
    where = f"tool call {number}"
    if not isinstance(item, dict):
        raise FormatError(f"{where}: expected a JSON object, got {type(item).__name__}; {OPENAI_HINT}")
    function = item.get("function", item)
    call = _call_from_object(function, where, OPENAI_HINT)
    call.id = _id_or_none(item.get("id")) or call.id
    return call


def render_openai(calls: Sequence[ToolCall]) -> str:
    """Write calls as a JSON list of OpenAI tool calls (``arguments`` as a JSON string; ``id`` only when set).

    Examples:
        >>> render_openai([ToolCall("submit", {}, "c1")])
        '[{"type": "function", "function": {"name": "submit", "arguments": "{}"}, "id": "c1"}]'
    """
    items = []
    for call in calls:
        item: dict[str, Any] = {
            "type": "function",
            "function": {"name": call.name, "arguments": json.dumps(call.arguments, ensure_ascii=False)},
        }
        if call.id is not None:
            item["id"] = call.id
        items.append(item)
    return json.dumps(items, ensure_ascii=False)


# -- registry ---------------------------------------------------------------------------------------------------

#: Every format by name.
FORMATS: dict[str, ToolFormat] = {
    "hermes": ToolFormat(parse_hermes, render_hermes),
    "qwen3_coder": ToolFormat(parse_qwen3_coder, render_qwen3_coder),
    "openai": ToolFormat(parse_openai, render_openai),
}


def get_format(name: str) -> ToolFormat:
    """The format called ``name``: a built-in one, else one a plugin registers (``rock_gym_add_tool_formats``).

    Raises:
        KeyError: no such format; the message lists the known ones.
    """
    if name in FORMATS:
        return FORMATS[name]
    from rock_gym.plugins import get_plugin_manager  # only on a miss: plugins register the built-ins from FORMATS

    registry = get_plugin_manager().tool_formats
    if name in registry:
        return registry.load(name)
    known = ", ".join([*FORMATS, *(n for n in registry.names() if n not in FORMATS)])
    raise KeyError(f"unknown tool-call format {name!r}: choose one of {known}")


def parse_tool_calls(text: str, fmt: str = "hermes", tools: Schemas | None = None) -> list[ToolCall]:
    """Parse a turn in the format called ``fmt``; see :func:`parse_hermes` for what is raised."""
    return get_format(fmt).parse(text, tools)
