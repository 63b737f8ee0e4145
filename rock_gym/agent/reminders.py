"""Reminders the harness appends to observations, so that a long episode keeps its goal in view.

Deep in a long episode the task sits thousands of tokens back, and agents drift. Every ``every`` turns the harness
appends the goal (shortened) and the agent's todo list, as Claude Code's system reminders repeat its todo list; when
the turn limit is near, a nudge to finish and submit, so the episode ends with a submission rather than a cut.
Reminders are deterministic (same turn, same text) and returned without a leading separator: the harness joins them
to the observation.
"""

from __future__ import annotations

#: Characters of the goal a reminder repeats; the full goal stays in the first message.
GOAL_CHARS = 300


class Reminders:
    """Text the harness appends to an observation: the goal and the agent's todo list every `every` turns (0:
    never), and a nudge when `nudge_at` or fewer turns remain.

    Args:
        every: remind of the goal and todo list after every ``every`` th turn; 0 never does.
        nudge_at: nudge to finish when this many turns or fewer remain; 0 never does.

    >>> reminders = Reminders(every=5)
    >>> print(reminders.after(5, None, "Fix the failing test.", ("run the tests", "fix parse()")))
    [Reminder] Your task: Fix the failing test.
    Your todo list:
    - run the tests
    - fix parse()
    >>> reminders.after(6, None, "Fix the failing test.", None) is None
    True
    >>> reminders.after(8, 10, "Fix the failing test.", None)
    '[Reminder] 2 turns left: finish your work and submit.'
    """

    def __init__(self, every: int = 0, nudge_at: int = 2) -> None:
        for name, value in (("every", every), ("nudge_at", nudge_at)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a whole number of turns >= 0 (0 turns it off), got {value!r}")
        self.every, self.nudge_at = every, nudge_at

    def after(self, turn: int, max_turns: int | None, goal: str, todo: tuple[str, ...] | None) -> str | None:
        """What to append to the observation of ``turn`` (counted from 1), or None.

        Args:
            turn: the turn just played.
            max_turns: the env's turn limit; None when there is none (no nudge).
            goal: the task, as the first user message gave it.
            todo: the agent's todo list after this turn; None when it keeps none.
        """
        parts = []
        if self.every and turn > 0 and turn % self.every == 0:
            parts.append(self._goal(goal, todo))
        left = max_turns - turn if max_turns is not None else None
        if left is not None and 0 < left <= self.nudge_at:
            parts.append(f"[Reminder] {left} turn{'' if left == 1 else 's'} left: finish your work and submit.")
        return "\n".join(parts) if parts else None

    @staticmethod
    def _goal(goal: str, todo: tuple[str, ...] | None) -> str:
        lines = [f"[Reminder] Your task: {shorten(goal)}"]
        if todo is not None:
            lines += ["Your todo list:", *(f"- {item}" for item in todo)] if todo else ["Your todo list is empty."]
        return "\n".join(lines)


def shorten(goal: str, chars: int = GOAL_CHARS) -> str:
    """The goal on one line, cut to ``chars`` characters with a pointer to the whole.

    >>> shorten("Fix   the\\nbug.")
    'Fix the bug.'
    >>> shorten("word " * 100, chars=20)
    'word word word word ... (shortened: the whole task is in the first message)'
    """
    line = " ".join(goal.split())
    if len(line) <= chars:
        return line
    cut = line[: chars + 1].rsplit(" ", 1)[0] if " " in line[:chars] else line[:chars]
    return f"{cut.rstrip()} ... (shortened: the whole task is in the first message)"
