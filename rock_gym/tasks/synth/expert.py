"""Reference solutions for injected bugs: the tool-call turns an expert would make to find and fix one.

The turns reproduce (run the visible tests), view the file around the bug, undo it with one `str_replace` whose
`old_str` is unique in the buggy file, run the tests again, and submit.

>>> before, after = "a = 1\\nb = 2\\na = 1\\n", "a = 1\\nb = 3\\na = 1\\n"
>>> fix_edit(before, after)
('b = 3\\n', 'b = 2\\n', 2)
"""

from __future__ import annotations

import posixpath

from rock_gym.tasks.model import ToolCall
from rock_gym.tasks.synth.mutate import Mutation

#: Lines shown on each side of the bug by the expert's `view`.
VIEW_CONTEXT = 10
EDITOR = "str_replace_editor"


def fix_edit(before: str, after: str) -> tuple[str, str, int]:
    """`(old_str, new_str, line)`: whole lines of `after` that occur once in it and turn it into `before` when
    replaced; `line` is the 1-based first line of `old_str` in `after`.

    The changed span (what lies between the texts' common prefix and suffix) grows to whole lines, then by one line
    above and below in turn until it is unique.

    Raises:
        ValueError: the texts are equal, or no span of `after` is unique (the file is one repeated block).
    """
    if before == after:
        raise ValueError("the texts are equal: there is nothing to fix")
    prefix = _common_prefix(before, after)
    suffix = _common_prefix(before[prefix:][::-1], after[prefix:][::-1])
    start = after.rfind("\n", 0, prefix) + 1
    end = _line_end(after, len(after) - suffix)
    grow_up = True
    while after.count(after[start:end]) != 1 or start == end:
        if start == 0 and end == len(after):
            raise ValueError("no unique span of the file holds the change")
        if (grow_up and start > 0) or end == len(after):
            start = after.rfind("\n", 0, start - 1) + 1
        else:
            end = _line_end(after, end + 1) if end < len(after) else end
        grow_up = not grow_up
    tail = len(after) - end  # identical in both texts: it lies inside the common suffix
    return after[start:end], before[start : len(before) - tail], after.count("\n", 0, start) + 1


def _common_prefix(left: str, right: str) -> int:
    size = 0
    for a, b in zip(left, right, strict=False):
        if a != b:
            break
        size += 1
    return size


def _line_end(text: str, offset: int) -> int:
    """The offset just past the newline ending the line that holds `offset` (the text's end on the last line)."""
    if offset > 0 and text[offset - 1 : offset] == "\n":
        return offset
    newline = text.find("\n", offset)
    return len(text) if newline == -1 else newline + 1


def expert_turns(mutation: Mutation, workdir: str, visible_tests: str) -> list[list[ToolCall]]:
    """The reference turns fixing `mutation` in `workdir`.

    Args:
        mutation: the injected bug (its `after` is the file the agent starts from).
        workdir: where the repository is, e.g. /testbed.
        visible_tests: a shell command, run in `workdir`, that runs the tests the agent can see.
    """
    path = posixpath.join(workdir, mutation.path)
    old, new, line = fix_edit(mutation.before, mutation.after)
    last = max(1, mutation.after.count("\n") + (0 if mutation.after.endswith("\n") else 1))
    view_range = [max(1, line - VIEW_CONTEXT), min(last, line + old.count("\n") + VIEW_CONTEXT)]
    run_tests = f"cd {workdir} && {visible_tests} 2>&1 | tail -n 15"
    return [
        [ToolCall(name="bash", arguments={"command": run_tests})],
        [ToolCall(name=EDITOR, arguments={"command": "view", "path": path, "view_range": view_range})],
        [ToolCall(name=EDITOR, arguments={"command": "str_replace", "path": path, "old_str": old, "new_str": new})],
        [ToolCall(name="bash", arguments={"command": run_tests})],
        [ToolCall(name="submit", arguments={})],
    ]
