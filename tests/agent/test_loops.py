"""Loop detection: the same turn N times in a row, the same failing call N times, the same format error; no
warning for an agent that varies its calls."""

from __future__ import annotations

import doctest

import pytest

from rock_gym.agent import loops
from rock_gym.agent.loops import LoopDetector, failed
from rock_gym.envs.record import StepInfo, ToolCallRecord, ToolResult


def bash(command: str, exit_code: int | None = 0, timed_out: bool = False, error: bool = False) -> StepInfo:
    result = ToolResult("bash", "", exit_code=exit_code, timed_out=timed_out, error=error)
    return StepInfo(tool_calls=(ToolCallRecord("bash", {"command": command}),), tool_results=(result,))


def warnings(detector: LoopDetector, steps: list[StepInfo]) -> list[str | None]:
    return [detector.observe(step) for step in steps]


def test_the_same_call_three_turns_in_a_row_is_a_loop():
    detector = LoopDetector(repeats=3)
    said = warnings(detector, [bash("ls")] * 4)
    assert said[:2] == [None, None]
    assert said[2] == (
        '[Loop warning] You made the same call 3 turns in a row: bash({"command": "ls"}). '
        "Repeating it will not help: try something different."
    )
    assert said[3] is not None and "4 turns in a row" in said[3]
    assert detector.count == 2


def test_arguments_compare_by_value_not_key_order():
    detector = LoopDetector(repeats=2)
    one = StepInfo(tool_calls=(ToolCallRecord("str_replace_editor", {"command": "view", "path": "a.py"}),))
    same = StepInfo(tool_calls=(ToolCallRecord("str_replace_editor", {"path": "a.py", "command": "view"}),))
    assert detector.observe(one) is None and detector.observe(same) is not None


def test_a_different_turn_breaks_the_streak():
    detector = LoopDetector(repeats=3)
    assert warnings(detector, [bash("ls"), bash("ls"), bash("pwd"), bash("ls"), bash("ls")]) == [None] * 5
    assert detector.count == 0


def test_the_same_failing_call_three_times_in_the_episode_is_a_loop():
    detector = LoopDetector(repeats=3)
    tests = bash("pytest -q", exit_code=1)
    said = warnings(detector, [tests, bash("ls"), tests, bash("cat a.py"), tests])
    assert said[:4] == [None] * 4
    assert said[4] == (
        "[Loop warning] This call has failed 3 times in this episode (exit code 1): "
        'bash({"command": "pytest -q"}). Read its error and change the approach.'
    )
    assert detector.count == 1


def test_successful_repeats_spread_over_the_episode_are_no_loop():
    detector = LoopDetector(repeats=3)
    steps = [bash("pytest -q"), bash("ls")] * 10
    assert warnings(detector, steps) == [None] * 20


@pytest.mark.parametrize(
    ("result", "how"),
    [
        (dict(exit_code=None, timed_out=True), "(timed out)"),
        (dict(exit_code=None, error=True), "(an error)"),
        (dict(exit_code=137), "(exit code 137)"),
    ],
)
def test_timeouts_and_error_results_are_failures(result, how):
    detector = LoopDetector(repeats=2)
    said = warnings(detector, [bash("make", **result), bash("ls"), bash("make", **result)])
    assert said[:2] == [None, None] and said[2] is not None and how in said[2]


def test_the_same_format_error_in_a_row_is_a_loop():
    detector = LoopDetector(repeats=3)
    bad = StepInfo(format_error="no tool call found in the reply")
    other = StepInfo(format_error="invalid call of bash: missing command")
    assert warnings(detector, [bad, bad, other, bad, bad]) == [None] * 5
    said = detector.observe(bad)
    assert said == (
        "[Loop warning] Your last 3 turns had the same format error: no tool call found in the reply. "
        "Write the tool call differently, following the format in the instructions."
    )


def test_an_agent_that_varies_its_calls_gets_no_warning():
    detector = LoopDetector(repeats=2)
    steps = [bash(f"sed -n {i},{i + 20}p big.py", exit_code=i % 2) for i in range(100)]
    assert warnings(detector, steps) == [None] * 100 and detector.count == 0


def test_a_repeated_failing_turn_reports_both_the_streak_and_the_failures():
    detector = LoopDetector(repeats=2)
    said = warnings(detector, [bash("pytest", exit_code=1)] * 2)
    assert said[0] is None and said[1] is not None
    assert said[1].splitlines()[0].startswith("[Loop warning] You made the same call 2 turns in a row")
    assert said[1].splitlines()[1].startswith("[Loop warning] This call has failed 2 times")
    assert detector.count == 1


def test_long_calls_are_cut_in_the_warning():
    detector = LoopDetector(repeats=2)
    long = bash("echo " + "x" * 500)
    said = warnings(detector, [long, long])[1]
    assert said is not None and "xxx..." in said and len(said) < 300


def test_settings():
    assert LoopDetector(end_episode=True).end_episode is True and LoopDetector().repeats == 3
    with pytest.raises(ValueError, match="repeats must be a whole number >= 2"):
        LoopDetector(repeats=1)
    assert (failed(ToolResult("bash", "", exit_code=0)), failed(ToolResult("bash", "", exit_code=2))) == (False, True)


def test_docstring_examples():
    result = doctest.testmod(loops)
    assert result.attempted >= 3 and result.failed == 0
