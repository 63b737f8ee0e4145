"""rock/Terminal-v0: Harbor-style terminal tasks; rewarded by the task's tests/test.sh."""

from __future__ import annotations

from rock_gym.envs.core import RockEnv
from rock_gym.tasks import TaskKind, terminal_tasks

DEFAULT_SEEDS = range(50)


class TerminalEnv(RockEnv):
    """A terminal task per episode; without `tasks`, 50 seeded variants of every procedural family."""

    system_prompt = (
        "You are an agent working in a Linux terminal inside a container. Use the `bash` tool to look around and "
        "act; call `submit` when the task is done."
    )

    def default_tasks(self) -> list[TaskKind]:
        return list(terminal_tasks(seeds=DEFAULT_SEEDS))
