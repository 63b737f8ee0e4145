"""Reminders: the goal and todo list every N turns, a nudge near the turn limit, nothing otherwise."""

from __future__ import annotations

import doctest

import pytest

from rock_gym.agent import reminders
from rock_gym.agent.reminders import GOAL_CHARS, Reminders, shorten

GOAL = "Fix the failing test in /repo/tests/test_parse.py without changing the test."


def test_the_goal_and_todo_list_come_every_n_turns():
    every_three = Reminders(every=3, nudge_at=0)
    said = {turn: every_three.after(turn, 50, GOAL, ("[x] reproduce", "[ ] fix")) for turn in range(1, 10)}
    assert [turn for turn, text in said.items() if text] == [3, 6, 9]
    assert said[6] == f"[Reminder] Your task: {GOAL}\nYour todo list:\n- [x] reproduce\n- [ ] fix"


def test_an_empty_todo_list_is_said_and_no_todo_list_is_left_out():
    remind = Reminders(every=1, nudge_at=0)
    assert remind.after(1, None, GOAL, ()) == f"[Reminder] Your task: {GOAL}\nYour todo list is empty."
    assert remind.after(1, None, GOAL, None) == f"[Reminder] Your task: {GOAL}"


def test_every_zero_never_reminds():
    never = Reminders(every=0, nudge_at=0)
    assert [never.after(turn, 100, GOAL, ("a",)) for turn in range(0, 100)] == [None] * 100


@pytest.mark.parametrize(
    ("turn", "expected"),
    [
        (6, None),
        (7, "[Reminder] 3 turns left: finish your work and submit."),
        (9, "[Reminder] 1 turn left: finish your work and submit."),
        (10, None),  # the limit itself: the episode is over
        (12, None),
    ],
)
def test_a_nudge_comes_when_nudge_at_or_fewer_turns_remain(turn, expected):
    assert Reminders(every=0, nudge_at=3).after(turn, 10, GOAL, None) == expected


def test_no_nudge_without_a_turn_limit_or_with_nudge_at_zero():
    assert Reminders(nudge_at=3).after(99, None, GOAL, None) is None
    assert Reminders(nudge_at=0).after(9, 10, GOAL, None) is None


def test_reminder_and_nudge_together():
    text = Reminders(every=4, nudge_at=2).after(8, 10, GOAL, None)
    assert text == f"[Reminder] Your task: {GOAL}\n[Reminder] 2 turns left: finish your work and submit."


def test_a_long_goal_is_shortened_with_a_marker_and_deterministically():
    goal = "Implement the parser. " * 100
    text = Reminders(every=1).after(1, None, goal, None)
    assert text == Reminders(every=1).after(1, None, goal, None)
    assert text is not None and text.endswith(" ... (shortened: the whole task is in the first message)")
    kept = text.removeprefix("[Reminder] Your task: ").split(" ... (shortened")[0]
    assert goal.startswith(kept) and GOAL_CHARS - len("parser. ") <= len(kept) <= GOAL_CHARS
    assert shorten("a\n  short   goal") == "a short goal"


@pytest.mark.parametrize("arguments", [{"every": -1}, {"nudge_at": -2}, {"every": 1.5}])
def test_bad_settings_are_refused(arguments):
    with pytest.raises(ValueError, match="whole number of turns >= 0"):
        Reminders(**arguments)


def test_docstring_examples():
    result = doctest.testmod(reminders)
    assert result.attempted >= 4 and result.failed == 0
