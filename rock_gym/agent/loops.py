"""Loop detection: noticing an agent that repeats itself, so the harness can tell it (or end the episode).

Small models in long episodes fall into loops: the same ``cat`` every turn, the same failing test command, the same
malformed tool call. OpenHands' stuck detector looks for the same patterns (repeated action-observation pairs,
repeated errors); this one reads only the env's `StepInfo`, so it is deterministic and needs no model. Use a new
detector per episode.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from rock_gym.envs.record import StepInfo, ToolCallRecord, ToolResult

#: Longest call or error shown in a warning, in characters.
SHOWN_CHARS = 120

#: What a turn did, for comparing turns: its calls (name, arguments as canonical JSON), or its format error.
TurnKey = tuple[str, Any]


class LoopDetector:
    """Notices an agent repeating itself: the same turn (identical tool calls, by name and arguments) `repeats`
    times in a row, or the same failing call (exit code != 0, timed out, or an error result) `repeats` times in
    the episode. A turn with a format error and no calls repeats when the same format error comes `repeats` times in
    a row. A warning is given on the turn that completes a loop and on each turn that continues it.

    Args:
        repeats: how many times makes a loop (at least 2).
        end_episode: the harness ends the episode (ending ``"loop"``) at the first warning instead of passing it on.

    Attributes:
        count: loop warnings given so far.

    >>> from rock_gym.envs.record import ToolCallRecord as Call
    >>> detector, ls = LoopDetector(repeats=2), StepInfo(tool_calls=(Call("bash", {"command": "ls"}),))
    >>> detector.observe(ls) is None
    True
    >>> print(detector.observe(ls))
    [Loop warning] You made the same call 2 turns in a row: bash({"command": "ls"}). Repeating it will not help: \
try something different.
    """

    def __init__(self, repeats: int = 3, end_episode: bool = False) -> None:
        if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 2:
            raise ValueError(f"repeats must be a whole number >= 2 (1 would flag every turn), got {repeats!r}")
        self.repeats, self.end_episode = repeats, end_episode
        self.count = 0
        self._last: TurnKey | None = None
        self._streak = 0
        self._failures: Counter[tuple[str, str]] = Counter()

    def observe(self, step: StepInfo) -> str | None:
        """Take the turn's step info; a warning for the agent when it completes or continues a loop, else None."""
        warnings = [w for w in (self._repeated_turn(step), *self._repeated_failures(step)) if w]
        if not warnings:
            return None
        self.count += 1
        return "\n".join(warnings)

    def _repeated_turn(self, step: StepInfo) -> str | None:
        key = _turn_key(step)
        self._streak = self._streak + 1 if key is not None and key == self._last else int(key is not None)
        self._last = key
        if key is None or self._streak < self.repeats:
            return None
        if key[0] == "format":
            return (
                f"[Loop warning] Your last {self._streak} turns had the same format error: {_cut(key[1])}. "
                "Write the tool call differently, following the format in the instructions."
            )
        calls = _describe(step.tool_calls)
        return (
            f"[Loop warning] You made the same call{'s' if len(step.tool_calls) > 1 else ''} {self._streak} turns "
            f"in a row: {calls}. Repeating it will not help: try something different."
        )

    def _repeated_failures(self, step: StepInfo) -> list[str]:
        warnings = []
        for call, result in zip(step.tool_calls, step.tool_results, strict=False):
            if not failed(result):
                continue
            key = (call.name, _canonical(call.arguments))
            self._failures[key] += 1
            if self._failures[key] >= self.repeats:
                warnings.append(
                    f"[Loop warning] This call has failed {self._failures[key]} times in this episode "
                    f"({_failure(result)}): {_describe((call,))}. Read its error and change the approach."
                )
        return warnings


def failed(result: ToolResult) -> bool:
    """A call failed: a nonzero exit code, a timeout, or an error result.

    >>> failed(ToolResult("bash", "", exit_code=2)), failed(ToolResult("submit", "", exit_code=None))
    (True, False)
    """
    return result.timed_out or result.error or result.exit_code not in (0, None)


def _turn_key(step: StepInfo) -> TurnKey | None:
    if step.tool_calls:
        return ("calls", tuple((call.name, _canonical(call.arguments)) for call in step.tool_calls))
    if step.format_error:
        return ("format", step.format_error)
    return None


def _canonical(arguments: dict[str, Any]) -> str:
    return json.dumps(arguments, sort_keys=True, default=str)


def _describe(calls: tuple[ToolCallRecord, ...]) -> str:
    first = _cut(f"{calls[0].name}({_canonical(calls[0].arguments)})")
    return first if len(calls) == 1 else f"{first} and {len(calls) - 1} more"


def _failure(result: ToolResult) -> str:
    if result.timed_out:
        return "timed out"
    return f"exit code {result.exit_code}" if result.exit_code not in (0, None) else "an error"


def _cut(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= SHOWN_CHARS else line[: SHOWN_CHARS - 3] + "..."
