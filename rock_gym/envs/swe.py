"""rock/SWE-v0: fix a bug in a repository; rewarded by the task's FAIL_TO_PASS and PASS_TO_PASS tests."""

from __future__ import annotations

from rock_gym.envs.core import RockEnv
from rock_gym.tasks import TaskKind, builtin_swe_tasks


class SWEEnv(RockEnv):
    """A SWE-bench style task per episode; without `tasks`, the built-in ones."""

    system_prompt = (
        "You are a software engineer fixing a bug in a repository inside a Linux container. Use the `bash` and "
        "`str_replace_editor` tools to inspect and edit files and to run tests, then call `submit`."
    )

    def default_tasks(self) -> list[TaskKind]:
        return list(builtin_swe_tasks())
