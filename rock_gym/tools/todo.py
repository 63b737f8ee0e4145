"""The `todo` tool's list as the agent is shown it; the env keeps the list, nothing is stored in the sandbox."""

from __future__ import annotations

from collections.abc import Sequence


def render_todo(items: Sequence[str]) -> str:
    """The todo list as the `todo` tool's result.

    Examples:
        >>> print(render_todo(["read the issue", "fix clamp()"]))
        Todo list (2 items):
        1. read the issue
        2. fix clamp()
        >>> render_todo([])
        'Todo list cleared.'
    """
    if not items:
        return "Todo list cleared."
    lines = [f"{number}. {item}" for number, item in enumerate(items, 1)]
    return "\n".join([f"Todo list ({len(items)} item{'s' if len(items) != 1 else ''}):", *lines])
