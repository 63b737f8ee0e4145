"""Procedural terminal-task families: a seeded builder turned into endless TerminalTask variants.

A family's builder draws one variant from a `random.Random` and returns a `Variant`: the instruction, the files to
place, the commands an expert runs to look and to act, and a Python check that exits non-zero on a wrong result.
`TaskFamily.generate` wraps that into a Harbor-shaped TerminalTask with `tests/test.sh`, `solution/solve.sh` and
expert tool-call turns.
"""

from __future__ import annotations

import random
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field

from rock_gym.sandbox.config import DEFAULT_IMAGE
from rock_gym.tasks.model import TerminalTask, Timeouts, ToolCall

#: The prelude of every generated check: helpers the check bodies use.
CHECK_PRELUDE = """\
import csv, io, json, os, subprocess, sys


def fail(message):
    print("FAIL:", message)
    sys.exit(1)


def read(path):
    if not os.path.isfile(path):
        fail(f"{path} does not exist")
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.read()


def lines(path):
    return [line.rstrip("\\r") for line in read(path).splitlines() if line.strip()]
"""

CHECKER_TEMPLATE = """\
#!/bin/bash
# Checker for {task_id}: writes 1 (pass) or 0 (fail) to /logs/verifier/reward.txt.
mkdir -p /logs/verifier
if python3 - <<'ROCK_GYM_CHECK'
{prelude}
{body}
print("PASS")
ROCK_GYM_CHECK
then echo 1 > /logs/verifier/reward.txt
else echo 0 > /logs/verifier/reward.txt
fi
"""


@dataclass(frozen=True)
class Variant:
    """One drawn task, before it is packaged.

    Attributes:
        instruction: what the agent is told; it points at files rather than holding the facts needed to act.
        files: container path -> content, placed before the episode.
        look: commands an expert runs first, one turn each, to read what the instruction points at.
        act: commands that solve the task (written knowing the answer), one turn each; also the solve.sh body.
        check: Python run by the checker (CHECK_PRELUDE helpers in scope); exits non-zero when the result is wrong.
    """

    instruction: str
    files: dict[str, str]
    look: list[str]
    act: list[str]
    check: str
    metadata: dict[str, str | int] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskFamily:
    """A named builder of seeded task variants.

    Examples:
        >>> from rock_gym.tasks.terminal import FAMILIES
        >>> task = FAMILIES["find-files"].generate(3)
        >>> task.task_id, task == FAMILIES["find-files"].generate(3)
        ('find-files-3', True)
    """

    name: str
    description: str
    build: Callable[[random.Random], Variant]
    timeouts: Timeouts = field(default_factory=Timeouts)

    def generate(self, seed: int) -> TerminalTask:
        """The variant of this family for `seed` (deterministic: same seed, same task)."""
        variant = self.build(random.Random(f"{self.name}/{seed}"))
        task_id = f"{self.name}-{seed}"
        return TerminalTask(
            task_id=task_id,
            instruction=variant.instruction,
            image=DEFAULT_IMAGE,
            files=variant.files,
            tests={"tests/test.sh": checker_script(task_id, variant.check)},
            solution=solve_script(variant.act),
            timeouts=self.timeouts,
            metadata={"family": self.name, "seed": seed, **variant.metadata},
            expert_turns=expert_turns(variant),
        )


def checker_script(task_id: str, check: str) -> str:
    """A Harbor `tests/test.sh` that runs `check` with python3 and writes 1 or 0 to /logs/verifier/reward.txt."""
    return CHECKER_TEMPLATE.format(task_id=task_id, prelude=CHECK_PRELUDE, body=textwrap.dedent(check).strip())


def solve_script(commands: list[str]) -> str:
    """A `solution/solve.sh` running `commands` in order."""
    return "#!/bin/bash\nset -eu\n" + "\n".join(commands) + "\n"


def expert_turns(variant: Variant) -> list[list[ToolCall]]:
    """One bash call per look and act command, then a submit."""
    commands = [*variant.look, *variant.act]
    turns = [[ToolCall(name="bash", arguments={"command": command})] for command in commands]
    return [*turns, [ToolCall(name="submit", arguments={})]]
