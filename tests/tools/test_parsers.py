"""Parsers: good turns, bad turns, limits, and render -> parse round trips for every format."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rock_gym.tools import (
    FORMATS,
    MAX_CALLS,
    FormatError,
    NoToolCall,
    ToolCall,
    get_format,
    parse_hermes,
    parse_openai,
    parse_qwen3_coder,
    parse_tool_calls,
    render_qwen3_coder,
    tool_schemas,
)
from rock_gym.tools.parsers import MAX_TURN_CHARS

# -- hermes -----------------------------------------------------------------------------------------------------


def test_hermes_reads_several_calls_with_text_around():
    text = (
        "Let me look first.\n"
        '<tool_call>\n{"name": "bash", "arguments": {"command": "ls -la"}}\n</tool_call>\n'
        'then <tool_call>{"name": "submit", "arguments": {}}</tool_call> done'
    )
    assert parse_hermes(text) == [ToolCall("bash", {"command": "ls -la"}), ToolCall("submit", {})]


def test_hermes_accepts_arguments_as_a_json_string():
    text = '<tool_call>{"name": "bash", "arguments": "{\\"command\\": \\"pwd\\"}"}</tool_call>'
    assert parse_hermes(text) == [ToolCall("bash", {"command": "pwd"})]


def test_hermes_keeps_multiline_and_unicode_values_and_tags_inside_strings():
    file_text = "def héllo():\n    return '日本語 </tool_call> <tool_call>'\n"
    body = json.dumps({"name": "str_replace_editor", "arguments": {"command": "create", "file_text": file_text}})
    calls = parse_hermes(f"<tool_call>{body}</tool_call>")
    assert calls[0].arguments["file_text"] == file_text


def test_hermes_missing_arguments_means_none():
    assert parse_hermes('<tool_call>{"name": "submit"}</tool_call>') == [ToolCall("submit", {})]


def test_hermes_plain_text_is_no_tool_call():
    with pytest.raises(NoToolCall, match=r"no tool call found: wrap each call as <tool_call>"):
        parse_hermes("The answer is 42.")


def test_hermes_bare_json_call_is_a_format_error_not_an_answer():
    with pytest.raises(FormatError, match="outside <tool_call> tags") as caught:
        parse_hermes('{"name": "bash", "arguments": {"command": "ls"}}')
    assert not isinstance(caught.value, NoToolCall)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('<tool_call>{"name": "bash", "arguments": {"command": "ls"}', "unclosed <tool_call>"),
        ('<tool_call>{"name": "bash", "arguments": {"command": "ls"</tool_call>', "malformed JSON"),
        ("<tool_call>{'name': 'bash'}</tool_call>", "malformed JSON"),
        ("<tool_call></tool_call>", "tool call 1 is empty"),
        ('<tool_call>{"arguments": {}}</tool_call>', 'missing "name"'),
        ('<tool_call>{"name": "", "arguments": {}}</tool_call>', 'missing "name"'),
        ('<tool_call>{"name": "bash", "arguments": [1]}</tool_call>', "arguments must be a JSON object"),
        ('<tool_call>{"name": "bash", "arguments": "not json"}</tool_call>', "arguments is not valid JSON"),
        ('<tool_call>["bash"]</tool_call>', "expected a JSON object, got list"),
        ('<tool_call>{"name": "submit"} oops</tool_call>', "unexpected text after the JSON object"),
    ],
)
def test_hermes_bad_calls_say_what_is_wrong(text, message):
    with pytest.raises(FormatError, match=message) as caught:
        parse_hermes(text)
    assert not isinstance(caught.value, NoToolCall)
    assert "<tool_call>" in caught.value.message  # every error shows the expected shape


def test_hermes_numbers_the_bad_call():
    good = '<tool_call>{"name": "submit"}</tool_call>'
    with pytest.raises(FormatError, match="tool call 2"):
        parse_hermes(good + "<tool_call>{nope}</tool_call>")


# -- qwen3-coder ------------------------------------------------------------------------------------------------

QWEN_TURN = """I'll edit the file.
<tool_call>
<function=str_replace_editor>
<parameter=command>
str_replace
</parameter>
<parameter=path>
/repo/app.py
</parameter>
<parameter=old_str>
def f():
    return 1
</parameter>
<parameter=new_str>

def f():
    return "ünï"

</parameter>
</function>
</tool_call>
<tool_call>
<function=bash>
<parameter=command>
pytest -q
</parameter>
</function>
</tool_call>"""


def test_qwen3_reads_calls_and_strips_one_newline_each_side():
    calls = parse_qwen3_coder(QWEN_TURN)
    assert [call.name for call in calls] == ["str_replace_editor", "bash"]
    assert calls[0].arguments == {
        "command": "str_replace",
        "path": "/repo/app.py",
        "old_str": "def f():\n    return 1",
        "new_str": '\ndef f():\n    return "ünï"\n',
    }
    assert calls[1].arguments == {"command": "pytest -q"}


def test_qwen3_wrapper_is_optional_and_values_may_be_inline():
    text = "<function=bash><parameter=command>ls</parameter><parameter=timeout>5</parameter></function>"
    assert parse_qwen3_coder(text) == [ToolCall("bash", {"command": "ls", "timeout": "5"})]


def test_qwen3_converts_values_by_schema_only():
    text = (
        "<function=str_replace_editor><parameter=command>view</parameter><parameter=path>/a</parameter>"
        "<parameter=view_range>[1, 5]</parameter></function>"
        "<function=bash><parameter=command>42</parameter><parameter=timeout>2.5</parameter></function>"
    )
    typed = parse_qwen3_coder(text, tools=tool_schemas())
    assert typed[0].arguments["view_range"] == [1, 5]
    assert typed[1].arguments == {"command": "42", "timeout": 2.5}  # command is a string in the schema
    untyped = parse_qwen3_coder(text)
    assert untyped[0].arguments["view_range"] == "[1, 5]"


def test_qwen3_keeps_text_that_is_not_json_for_a_typed_parameter():
    text = "<function=bash><parameter=command>ls</parameter><parameter=timeout>soon</parameter></function>"
    assert parse_qwen3_coder(text, tools=tool_schemas())[0].arguments["timeout"] == "soon"


def test_qwen3_plain_text_is_no_tool_call():
    with pytest.raises(NoToolCall, match="no tool call found"):
        parse_qwen3_coder("All done, the bug was in line 3.")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<function=bash><parameter=command>ls</parameter>", r"unclosed <function=bash>"),
        ("<function=bash><parameter=command>ls</function>", r"unclosed <parameter=command>"),
        ("<function=bash\n<parameter=command>ls</parameter></function>", r"not closed with '>'"),
        ("<function=><parameter=command>ls</parameter></function>", "has no name"),
        ("<function=bash>hello<parameter=command>ls</parameter></function>", "unexpected text inside"),
        ("<tool_call><parameter=command>ls</parameter></tool_call>", r"without <function=NAME>"),
        (
            "<function=bash><parameter=a>1</parameter><parameter=a>2</parameter></function>",
            "parameter 'a' given twice",
        ),
        ("<tool_call><function=bash><parameter=command>ls</parameter></tool_call>", r"unclosed <function=bash>"),
    ],
)
def test_qwen3_bad_calls_say_what_is_wrong(text, message):
    with pytest.raises(FormatError, match=message) as caught:
        parse_qwen3_coder(text)
    assert not isinstance(caught.value, NoToolCall)


def test_qwen3_render_refuses_what_the_format_cannot_carry():
    with pytest.raises(ValueError, match="cannot carry"):
        render_qwen3_coder([ToolCall("bash", {"command": "echo </parameter>"})])
    with pytest.raises(ValueError, match="no '>' or whitespace"):
        render_qwen3_coder([ToolCall("my tool", {})])


# -- openai -----------------------------------------------------------------------------------------------------


def _openai_item(name, arguments, call_id=None):
    item = {"type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}
    return {**item, "id": call_id} if call_id else item


@pytest.mark.parametrize(
    "payload",
    [
        [_openai_item("bash", {"command": "ls"}, "c1"), _openai_item("submit", {}, "c2")],
        {"tool_calls": [_openai_item("bash", {"command": "ls"}, "c1"), _openai_item("submit", {}, "c2")]},
    ],
)
def test_openai_reads_a_list_or_a_tool_calls_object(payload):
    calls = parse_openai(json.dumps(payload))
    assert calls == [ToolCall("bash", {"command": "ls"}, "c1"), ToolCall("submit", {}, "c2")]


def test_openai_reads_a_single_call_and_flat_and_object_arguments():
    assert parse_openai(json.dumps(_openai_item("submit", {"answer": "7"}))) == [ToolCall("submit", {"answer": "7"})]
    flat = {"name": "bash", "arguments": {"command": "ls"}}
    assert parse_openai(json.dumps(flat)) == [ToolCall("bash", {"command": "ls"})]
    empty = {"type": "function", "function": {"name": "submit", "arguments": ""}}
    assert parse_openai(json.dumps(empty)) == [ToolCall("submit", {})]


def test_openai_finds_the_json_in_prose_and_code_fences():
    payload = json.dumps([_openai_item("bash", {"command": "echo [x] {y}"})])
    text = f"I think [1] we need {{this}}:\n```json\n{payload}\n```\nThanks!"
    assert parse_openai(text) == [ToolCall("bash", {"command": "echo [x] {y}"})]


def test_openai_plain_text_and_empty_list_are_no_tool_call():
    with pytest.raises(NoToolCall):
        parse_openai("The answer is [1, 2] and {3}.")
    with pytest.raises(NoToolCall, match="empty"):
        parse_openai('{"tool_calls": []}')


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[{"type": "function", "function": {"name": "bash", "arguments": "{"}}]', "arguments is not valid JSON"),
        ('[{"type": "function", "function": {"name": "bash", "arguments": "[1]"}}]', "must be a JSON object"),
        ('[{"type": "function", "function": {"arguments": "{}"}}]', 'missing "name"'),
        ('[{"type": "function", "function": {"name": "bash", "arguments": "{}"}', "malformed JSON"),
        ('{"tool_calls": [{"function": {"name": "a"}}, 5]}', "tool call 2: expected a JSON object"),
    ],
)
def test_openai_bad_calls_say_what_is_wrong(text, message):
    with pytest.raises(FormatError, match=message) as caught:
        parse_openai(text)
    assert not isinstance(caught.value, NoToolCall)


# -- limits -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_too_many_calls_are_refused(fmt):
    render = get_format(fmt).render
    assert len(parse_tool_calls(render([ToolCall("submit", {})] * MAX_CALLS), fmt)) == MAX_CALLS
    with pytest.raises(FormatError, match=f"too many tool calls in one turn: more than {MAX_CALLS}"):
        parse_tool_calls(render([ToolCall("submit", {})] * (MAX_CALLS + 1)), fmt)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_too_long_turns_are_refused(fmt):
    with pytest.raises(FormatError, match="turn too long"):
        parse_tool_calls("x" * (MAX_TURN_CHARS + 1), fmt)


PATHOLOGICAL = {
    "open-tags": "<tool_call>" * 50_000,
    "open-tags-and-braces": "<tool_call>{" * 50_000,
    "function-tags": "<function=" * 50_000,
    "parameter-tags": "<function=a>" + "<parameter=" * 50_000,
    "brackets": "[" * 200_000,
    "braces": "{" * 200_000,
    "nested-calls": '[{"function": ' * 50_000,
    "deep-json-in-tag": "<tool_call>" + "[" * 100_000 + "</tool_call>",
}


@pytest.mark.parametrize("text", list(PATHOLOGICAL.values()), ids=list(PATHOLOGICAL))
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_pathological_input_fails_fast(fmt, text):
    started = time.monotonic()
    with pytest.raises(FormatError):
        parse_tool_calls(text, fmt)
    assert time.monotonic() - started < 2.0


def test_unknown_format_lists_the_known_ones():
    with pytest.raises(KeyError, match="hermes, qwen3_coder, openai"):
        get_format("xml")


# -- round trips ------------------------------------------------------------------------------------------------

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children, max_size=3),
    max_leaves=8,
)
call_ids = st.none() | st.text(min_size=1, max_size=10)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.builds(ToolCall, names, st.dictionaries(st.text(), json_values, max_size=4), call_ids), max_size=5))
@pytest.mark.parametrize("fmt", ["hermes", "openai"])
def test_json_formats_round_trip(fmt, calls):
    text = get_format(fmt).render(calls)
    if not calls:
        with pytest.raises(NoToolCall):
            parse_tool_calls(text, fmt)
    else:
        assert parse_tool_calls(text, fmt) == calls


raw_values = st.text().filter(lambda value: "</parameter>" not in value)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.builds(ToolCall, names, st.dictionaries(names, raw_values, max_size=4)), min_size=1, max_size=5))
def test_qwen3_coder_round_trips_text_values(calls):
    assert parse_qwen3_coder(render_qwen3_coder(calls)) == calls


@settings(max_examples=50, deadline=None)
@given(
    command=st.text().filter(lambda value: "</parameter>" not in value),
    timeout=st.floats(min_value=0.001, max_value=1e6),
    view_range=st.lists(st.integers(min_value=-1, max_value=10**6), min_size=2, max_size=2),
)
def test_qwen3_coder_round_trips_typed_values_with_schemas(command, timeout, view_range):
    calls = [
        ToolCall("bash", {"command": command, "timeout": timeout}),
        ToolCall("str_replace_editor", {"command": "view", "path": "/a", "view_range": view_range}),
    ]
    assert parse_qwen3_coder(render_qwen3_coder(calls), tools=tool_schemas()) == calls
