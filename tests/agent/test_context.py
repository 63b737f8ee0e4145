"""Context policies on long crafted histories: every answer fits its budget, the head and the last turn stay, and
elisions, drops and summaries say exactly what they cut."""

from __future__ import annotations

import doctest
import math
import re

import pytest

from rock_gym.agent import context
from rock_gym.agent.context import (
    Compose,
    DropOldest,
    ElideObservations,
    History,
    KeepAll,
    Message,
    Summary,
    parse_policy,
    summarize,
)
from rock_gym.envs.record import StepInfo, ToolCallRecord, ToolResult

SPECS = ["keep", "elide", "drop", "summary", "elide+drop", "elide+summary", "elide(keep_last=0,target=1.0)"]
REWRITING = SPECS[1:]


def words(messages: list[Message]) -> int:
    """A stand-in tokenizer: a token per word, 3 per message for its role markup, 3 for the generation prompt."""
    return sum(len(m.content.split()) + 3 for m in messages) + 3


class CountingWords:
    """`words`, remembering how often it was called and how often on the whole request."""

    def __init__(self, whole: int) -> None:
        self.whole, self.calls, self.whole_calls = whole, 0, 0

    def __call__(self, messages: list[Message]) -> int:
        self.calls += 1
        self.whole_calls += len(messages) >= self.whole
        return words(messages)


def observation(turn: int, lines: int) -> str:
    return "\n".join(f"turn{turn} line{i} some output" for i in range(lines))  # 4 words a line


def step(turn: int, command: str | None = None, exit_code: int = 0) -> StepInfo:
    call = ToolCallRecord("bash", {"command": command or f"cat file{turn}.py"})
    return StepInfo(turn=turn, tool_calls=(call,), tool_results=(ToolResult("bash", "", exit_code=exit_code),))


def history(turns: int = 100, lines: int = 250) -> list[Message]:
    """System, task, then ``turns`` turns whose observations are ``lines`` lines (4 words each) long."""
    messages = [Message("system", "You are a careful agent."), Message("user", "Fix the failing test in /repo.")]
    for t in range(1, turns + 1):
        messages.append(Message("assistant", f"<tool_call>cat file{t}.py</tool_call>", turn=t))
        messages.append(Message("tool", observation(t, lines), turn=t, step=step(t)))
    return messages


def assert_well_formed(before: list[Message], after: list[Message]) -> None:
    """The head is untouched, the last turn kept (its observation possibly elided), roles alternate."""
    assert after[:2] == before[:2]
    assert after[-2] == before[-2]
    assert after[-1].turn == before[-1].turn and after[-1].role == before[-1].role
    rest = after[2:]
    if rest[0].role == "user":
        rest = rest[1:]
    assert [m.role for m in rest] == ["assistant", "tool"] * (len(rest) // 2)
    assert all(m.role != "user" for m in rest)


# -- the invariant -----------------------------------------------------------------------------------------------


def concave(messages: list[Message]) -> int:
    """A count that makes piece-by-piece estimates optimistic: a piece costs more alone than in a long request."""
    return round(words(messages) ** 0.9)


@pytest.mark.parametrize("count", [words, concave])
@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("budget", [150, 400, 2_000, 10_000, 40_000, 120_000])
def test_an_answer_always_fits_its_budget(spec, budget, count):
    messages = history(turns=100, lines=250)
    fitted = parse_policy(spec).fit(list(messages), budget, count)
    if fitted is None:
        assert spec == "keep" or budget < 2_000 or (spec.startswith("elide") and "+" not in spec), (spec, budget)
        return
    assert count(fitted.messages) <= budget
    assert fitted.cut_tokens == count(messages) - count(fitted.messages)
    assert_well_formed(messages, fitted.messages)


@pytest.mark.parametrize("spec", ["drop", "summary", "elide+drop", "elide+summary"])
def test_folding_policies_fit_down_to_the_head_and_last_turn(spec):
    messages = history(turns=100, lines=250)
    assert parse_policy(spec).fit(list(messages), 2_000, words) is not None  # the last turn alone: ~1,020 tokens


def test_keep_all_answers_the_messages_when_they_fit_and_none_when_not():
    messages = history(turns=3, lines=10)
    fitted = KeepAll().fit(messages, words(messages), words)
    assert fitted is not None and fitted.messages == messages and fitted.cut_tokens == 0 and fitted.reason == "keep"
    assert KeepAll().fit(messages, words(messages) - 1, words) is None


@pytest.mark.parametrize("spec", SPECS)
def test_none_when_even_the_head_and_last_turn_cannot_fit(spec):
    messages = history(turns=20, lines=250)
    assert parse_policy(spec).fit(messages, 40, words) is None  # the head alone is 19 tokens; the last turn is more


@pytest.mark.parametrize("spec", REWRITING)
def test_messages_that_fit_are_not_rewritten(spec):
    messages = history(turns=5, lines=10)
    fitted = parse_policy(spec).fit(messages, words(messages), words)
    assert fitted is not None and fitted.messages == messages and fitted.cut_tokens == 0


@pytest.mark.parametrize("spec", REWRITING)
def test_the_given_messages_are_not_changed(spec):
    messages = history(turns=30, lines=100)
    copy = [Message(m.role, m.content, m.turn, m.step) for m in messages]
    parse_policy(spec).fit(messages, 3_000, words)
    assert messages == copy


@pytest.mark.parametrize("spec", REWRITING)
def test_count_is_called_a_linear_number_of_times(spec):
    messages = history(turns=100, lines=250)
    count = CountingWords(whole=len(messages) // 4)
    fitted = parse_policy(spec).fit(messages, 30_000, count)
    assert fitted is not None and words(fitted.messages) <= 30_000
    assert count.calls <= 2 * 100 + 10, count.calls  # each piece about once, not each cut times each piece
    assert count.whole_calls <= 4, count.whole_calls  # the whole request: before, and to check the answer


# -- elide -------------------------------------------------------------------------------------------------------


def test_elision_keeps_head_and_tail_lines_and_counts_what_it_cut():
    messages = history(turns=4, lines=250)
    fitted = ElideObservations(keep_last=2, head=600, tail=600).fit(messages, words(messages) - 1, words)
    assert fitted is not None and fitted.reason == "elide"
    original, elided = messages[3].content, fitted.messages[3].content
    marker = re.search(r"\n\[\.\.\. (\d+) tokens elided \.\.\.\]\n", elided)
    assert marker is not None
    kept_head, kept_tail = elided[: marker.start()], elided[marker.end() :]
    assert original.startswith(kept_head + "\n") and original.endswith("\n" + kept_tail)
    assert len(kept_head) <= 600 and len(kept_tail) <= 600 and kept_head.endswith("some output")
    assert int(marker.group(1)) == len(original.split()) - len(kept_head.split()) - len(kept_tail.split())
    assert fitted.messages[3].step == messages[3].step and fitted.messages[3].turn == 1


def test_elide_shrinks_to_its_target_oldest_first_sparing_the_newest():
    messages = history(turns=20, lines=250)
    budget = words(messages) - 1_000
    fitted = ElideObservations(keep_last=2, target=0.75).fit(messages, budget, words)
    assert fitted is not None
    assert words(fitted.messages) <= math.floor(0.75 * budget)
    elided = ["tokens elided" in m.content for m in fitted.messages if m.role == "tool"]
    assert elided[-2:] == [False, False]  # the newest two were enough to spare
    assert elided == sorted(elided, reverse=True)  # a run of the oldest, nothing newer skipped
    assert 0 < sum(elided) < 18  # only as many as the target needed


def test_target_one_rewrites_just_enough_to_fit():
    messages = history(turns=20, lines=250)
    budget = words(messages) - 1_000
    lazy = ElideObservations(target=1.0).fit(messages, budget, words)
    eager = ElideObservations(target=0.5).fit(messages, budget, words)
    assert lazy is not None and eager is not None
    assert math.floor(0.5 * budget) >= words(eager.messages) and words(lazy.messages) > words(eager.messages)
    assert sum("tokens elided" in m.content for m in lazy.messages) == 2  # ~820 tokens saved each


def test_the_newest_observations_are_spared_when_the_budget_is_met_short_of_the_target():
    messages = history(turns=3, lines=250)
    budget = words(messages) - 500  # eliding the oldest saves ~820: under the budget, not under the target
    fitted = ElideObservations(keep_last=2).fit(messages, budget, words)
    assert fitted is not None and math.floor(0.75 * budget) < words(fitted.messages) <= budget
    assert ["tokens elided" in m.content for m in fitted.messages if m.role == "tool"] == [True, False, False]


def test_elide_cuts_the_newest_observations_only_when_nothing_else_is_left():
    messages = history(turns=3, lines=250)
    budget = words(messages) - 2_000  # the oldest alone saves ~820: the two newest must go too
    fitted = ElideObservations(keep_last=2).fit(messages, budget, words)
    assert fitted is not None and words(fitted.messages) <= budget
    assert all("tokens elided" in m.content for m in fitted.messages if m.role == "tool")


def test_elide_cannot_fit_an_assistant_message_that_is_too_long():
    messages = history(turns=3, lines=10)
    messages[2] = Message("assistant", "word " * 5_000, turn=1)
    assert ElideObservations().fit(messages, 2_000, words) is None


# -- drop --------------------------------------------------------------------------------------------------------


def test_drop_replaces_the_oldest_turns_by_one_note():
    messages = history(turns=100, lines=250)
    fitted = DropOldest(keep_last=2).fit(messages, 40_000, words)
    assert fitted is not None and fitted.reason == "drop"
    note, rest = fitted.messages[2], fitted.messages[3:]
    dropped = 100 - len(rest) // 2
    assert note.role == "user" and note.content == f"[{dropped} earlier turns dropped to fit the context]"
    assert [m.turn for m in rest] == [t for t in range(dropped + 1, 101) for _ in (0, 1)]  # the newest, in order
    assert rest == messages[2 + 2 * dropped :]  # kept turns are untouched
    assert words(fitted.messages) <= 30_000 and len(note.folded) == dropped
    assert words(fitted.messages[:3] + messages[2 + 2 * (dropped - 1) :]) > 30_000  # not one turn too many


def test_a_second_drop_folds_the_first_note_into_its_own():
    messages = history(turns=60, lines=250)
    first = DropOldest().fit(messages, 20_000, words)
    assert first is not None
    grown = first.messages + history(turns=80, lines=250)[2 + 2 * 60 :]  # 20 more turns
    second = DropOldest().fit(grown, 20_000, words)
    assert second is not None and words(second.messages) <= 15_000
    assert [m.role for m in second.messages].count("user") == 2  # the task and one note
    kept = len(second.messages[3:]) // 2
    assert second.messages[2].content == f"[{80 - kept} earlier turns dropped to fit the context]"
    assert [s.turn for s in second.messages[2].folded] == list(range(1, 80 - kept + 1))


def test_drop_spares_the_last_turns_when_the_budget_is_met_short_of_the_target():
    messages = history(turns=6, lines=250)
    budget = words(messages) - 2_500  # dropping the 3 older turns (~3,060) meets it; the target would need more
    fitted = DropOldest(keep_last=3).fit(messages, budget, words)
    assert fitted is not None and math.floor(0.75 * budget) < words(fitted.messages) <= budget
    assert fitted.messages[2].content == "[3 earlier turns dropped to fit the context]"
    assert fitted.messages[3:] == messages[-6:]


def test_drop_keeps_the_last_turns_only_while_older_ones_suffice():
    messages = history(turns=6, lines=250)
    last_turn = words(messages[:2] + messages[-2:]) + 20
    fitted = DropOldest(keep_last=3).fit(messages, last_turn, words)
    assert fitted is not None and fitted.messages[2].content == "[5 earlier turns dropped to fit the context]"
    assert fitted.messages[3:] == messages[-2:]


# -- summary -----------------------------------------------------------------------------------------------------


def editor(turn: int, command: str, path: str, error: bool = False) -> StepInfo:
    call = ToolCallRecord("str_replace_editor", {"command": command, "path": path})
    return StepInfo(turn=turn, tool_calls=(call,), tool_results=(ToolResult("str_replace_editor", "", error=error),))


WORK = [
    editor(1, "view", "/repo/app.py"),
    step(2, "cd /repo && python -m pytest -q tests/test_app.py", exit_code=1),
    editor(3, "str_replace", "/repo/app.py"),
    editor(4, "str_replace", "/repo/app.py", error=True),
    editor(5, "create", "/repo/tests/test_new.py"),
    StepInfo(turn=6, format_error="no tool call found"),
    StepInfo(
        turn=7,
        tool_calls=(ToolCallRecord("bash", {"command": "sleep 1000"}), ToolCallRecord("todo", {"items": ["a"]})),
        tool_results=(ToolResult("bash", "", exit_code=None, timed_out=True), ToolResult("todo", "")),
        todo=("[x] reproduce the failure", "[ ] fix parse()"),
    ),
    editor(8, "view", "/repo/util.py"),
    step(9, "python -c 'print(1)'\n" + "x" * 200, exit_code=0),
]


def test_summary_lists_files_commands_exit_codes_todo_and_format_errors():
    assert summarize(WORK) == "\n".join(
        [
            "[Summary of 9 earlier turns (turns 1-9), removed to fit the context]",
            "Files viewed: /repo/app.py, /repo/util.py",
            "Files edited: /repo/app.py (str_replace, str_replace failed), /repo/tests/test_new.py (create)",
            "Commands run (exit code):",
            "- cd /repo && python -m pytest -q tests/test_app.py -> 1",
            "- sleep 1000 -> timed out",
            f"- python -c 'print(1)' {'x' * 76}... -> 0",  # cut to 100 characters
            "Other calls: todo x1",
            "Todo list (as of turn 7):",
            "- [x] reproduce the failure",
            "- [ ] fix parse()",
            "Format errors: 1 earlier turn had tool calls that could not be parsed",
        ]
    )


def test_summary_is_deterministic_and_caps_its_lists():
    steps = [step(t, f"echo {t}", exit_code=t % 3) for t in range(1, 51)]
    text = summarize(steps, max_items=5)
    assert text == summarize(list(steps), max_items=5)
    assert text.splitlines()[1:] == [
        "Commands run (exit code):",
        "- (45 earlier commands not shown)",
        *(f"- echo {t} -> {t % 3}" for t in range(46, 51)),
    ]
    assert summarize([StepInfo(turn=3)]) == (
        "[Summary of 1 earlier turn (turns 3-3), removed to fit the context]\nNo tool calls were made."
    )


def test_summary_policy_replaces_old_turns_by_their_summary():
    messages = history(turns=100, lines=250)
    for t, work in enumerate(WORK, start=1):  # the first turns did the crafted work
        messages[1 + 2 * t] = Message("tool", observation(t, 250), turn=t, step=work)
    fitted = Summary().fit(messages, 40_000, words)
    again = Summary().fit(messages, 40_000, words)
    assert fitted is not None and again is not None and fitted.messages == again.messages
    note = fitted.messages[2]
    dropped = 100 - len(fitted.messages[3:]) // 2
    assert note.role == "user" and note.content.startswith(f"[Summary of {dropped} earlier turns (turns 1-{dropped})")
    assert "Files edited: /repo/app.py (str_replace, str_replace failed)" in note.content
    commands = 3 + dropped - len(WORK)  # the crafted ones, then a cat per turn
    assert f"- ({commands - 20} earlier commands not shown)\n" in note.content
    assert note.content.split("\nOther calls")[0].endswith(f"- cat file{dropped}.py -> 0")
    assert words(fitted.messages) <= 30_000
    assert fitted.reason == "summary"


# -- compose and specs -------------------------------------------------------------------------------------------


def test_compose_elides_first_and_drops_only_when_eliding_is_not_enough():
    messages = history(turns=40, lines=250)
    policy = Compose([ElideObservations(), DropOldest()])
    light = policy.fit(messages, words(messages) - 2_000, words)
    assert light is not None and light.reason == "elide" and len(light.messages) == len(messages)
    heavy = policy.fit(messages, 6_000, words)
    assert heavy is not None and heavy.reason == "elide+drop" and words(heavy.messages) <= 4_500
    assert heavy.messages[2].content.endswith("earlier turns dropped to fit the context]")
    assert "tokens elided" in heavy.messages[3 + 1].content  # kept older turns stay elided


def test_parse_policy_reads_names_parameters_and_compositions():
    elide = parse_policy("elide(keep_last=3, head=100,tail=50, target=0.6)")
    assert isinstance(elide, ElideObservations)
    assert (elide.keep_last, elide.head, elide.tail, elide.target) == (3, 100, 50, 0.6)
    composed = parse_policy(" elide + summary(max_items=4, target=1) ")
    assert isinstance(composed, Compose) and composed.name == "elide+summary"
    assert isinstance(composed.policies[1], Summary) and composed.policies[1].max_items == 4
    kinds = [type(parse_policy(name)) for name in ("keep", "drop", "elide()")]
    assert kinds == [KeepAll, DropOldest, ElideObservations]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("forget", "unknown context policy 'forget' in 'forget': known policies are keep, elide, drop, summary"),
        ("elide+window", "unknown context policy 'window'"),
        (
            "elide(keep=3)",
            "unknown parameter 'keep=3' of context policy 'elide': it takes keep_last, head, tail, target",
        ),
        ("keep(target=0.5)", "it takes no parameters"),
        ("drop(keep_last)", "unknown parameter 'keep_last'"),
        ("drop(keep_last=2.5)", "drop(keep_last=...) needs a whole number"),
        ("drop(target=high)", "needs a number, got 'high'"),
        ("drop(target=1.5)", "target must be in (0, 1]"),
        ("elide(keep_last=3", "has no closing parenthesis"),
        ("summary(max_items=0)", "max_items must be a whole number >= 1"),
    ],
)
def test_parse_policy_errors_name_what_is_known(spec, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_policy(spec)


def test_history_takes_messages_before_the_first_turn_for_an_earlier_note():
    note = Message("user", "[3 earlier turns dropped to fit the context]", folded=(StepInfo(),) * 3)
    messages = [Message("user", "task"), note, *history(turns=2, lines=1)[2:]]
    split = History.split(messages)
    assert (split.head, split.notes, len(split.turns)) == ([messages[0]], [note], 2)
    assert len(split.steps(1)) == 4 and split.steps(1)[-1].turn == 1


def test_docstring_examples():
    result = doctest.testmod(context)
    assert result.attempted >= 10 and result.failed == 0


# -- a real tokenizer --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer():  # type: ignore[no-untyped-def]
    pytest.importorskip("transformers")
    from learners.policies.tiny import build_tokenizer

    return build_tokenizer()


@pytest.mark.parametrize(
    ("spec", "share", "reason"),
    [
        ("elide", 2, "elide"),
        ("drop", 2, "drop"),
        ("summary", 2, "summary"),
        ("elide+drop", 2, "elide"),  # eliding was enough
        ("elide+drop", 6, "elide+drop"),
        ("elide+summary", 6, "elide+summary"),
    ],
)
def test_policies_fit_a_real_chat_template_budget(tokenizer, spec, share, reason):
    def tokens(messages: list[Message]) -> int:
        chat = [m.as_chat() for m in messages]
        return len(tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_dict=True)["input_ids"])

    messages = history(turns=30, lines=200)
    budget = tokens(messages) // share
    fitted = parse_policy(spec).fit(messages, budget, tokens)
    assert fitted is not None and tokens(fitted.messages) <= math.floor(0.75 * budget)
    assert fitted.cut_tokens == tokens(messages) - tokens(fitted.messages) and fitted.reason == reason
    assert_well_formed(messages, fitted.messages)
    if spec == "elide":
        marker = re.search(r"\[\.\.\. (\d+) tokens elided \.\.\.\]", fitted.messages[3].content)
        assert marker is not None and 0 < int(marker.group(1)) < len(tokenizer(messages[3].content)["input_ids"])
