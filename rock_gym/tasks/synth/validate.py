"""Re-run every check of synthesized SWE tasks in real containers, each check in a fresh sandbox from the task image.

- gold: set the task up (the bug applied), apply the gold patch, grade with the hidden tests: resolved.
- no-op: set the task up and grade it untouched: not resolved.
- expert: replay the reference turns through `rock/SWE-v0` (rendered as hermes tool calls): reward 1.0.

The expert check goes through the env by its Gymnasium id, looked up at call time, so this module imports no env.

Examples:
    >>> report = validate(load("tasks/inflection"), workers=2)  # doctest: +SKIP
    >>> report.passed, len(report.checks)  # doctest: +SKIP
    (40, 40)
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rock_gym.sandbox import SandboxConfig, SandboxError
from rock_gym.tasks.model import SWETask, Task
from rock_gym.tasks.verify import VerifyError, apply_patch, grade_swe, setup_swe

VALIDATION_FILE = "validation.json"


@dataclass
class TaskCheck:
    """The checks of one task; each is True when it held.

    Attributes:
        gold: with the gold patch applied, every FAIL_TO_PASS and PASS_TO_PASS test passes.
        noop: untouched, the task is not resolved.
        expert: the reference turns through rock/SWE-v0 end with `submit` and reward 1.0.
        errors: what went wrong, by check.
    """

    instance_id: str
    gold: bool = False
    noop: bool = False
    expert: bool = False
    errors: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.gold and self.noop and self.expert


@dataclass
class ValidationReport:
    """Every task's checks, with counts and wall time."""

    checks: list[TaskCheck]
    seconds: float = 0.0
    workers: int = 1

    @property
    def passed(self) -> int:
        return sum(check.ok for check in self.checks)

    @property
    def failed(self) -> list[TaskCheck]:
        return [check for check in self.checks if not check.ok]

    @property
    def tasks_per_minute(self) -> float:
        return 60.0 * self.passed / self.seconds if self.seconds else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "tasks": len(self.checks),
            "passed": self.passed,
            "failed": len(self.failed),
            "gold_fails": sum(not c.gold for c in self.checks),
            "noop_resolves": sum(not c.noop for c in self.checks),
            "expert_fails": sum(not c.expert for c in self.checks),
            "seconds": round(self.seconds, 2),
            "workers": self.workers,
            "validated_tasks_per_minute": round(self.tasks_per_minute, 2),
            "checks": [{**asdict(check), "seconds": round(check.seconds, 2), "ok": check.ok} for check in self.checks],
        }

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=1) + "\n")


def check_gold(task: SWETask, config: SandboxConfig) -> tuple[bool, str]:
    """Whether the gold patch resolves the task, in a fresh sandbox; with a note when it does not."""
    from rock_gym.sandbox.sandbox import Sandbox

    with Sandbox(_task_config(task, config)) as sandbox:
        base = setup_swe(sandbox, task)
        apply_patch(sandbox, task.workdir, task.patch)
        grade = grade_swe(sandbox, task, base=base)
    return grade.resolved, "" if grade.resolved else _unresolved(task, grade.statuses)


def check_noop(task: SWETask, config: SandboxConfig) -> tuple[bool, str]:
    """Whether the untouched task is unresolved (as it must be), in a fresh sandbox."""
    from rock_gym.sandbox.sandbox import Sandbox

    with Sandbox(_task_config(task, config)) as sandbox:
        base = setup_swe(sandbox, task)
        grade = grade_swe(sandbox, task, base=base)
    return not grade.resolved, "the untouched task is resolved: the bug breaks no test" if grade.resolved else ""


def check_expert(task: SWETask, config: SandboxConfig, tool_format: str = "hermes") -> tuple[bool, str]:
    """Whether the task's reference turns, replayed through rock/SWE-v0, submit with reward 1.0."""
    import gymnasium as gym

    from rock_gym.tools import ToolCall, get_format

    if not task.expert_turns:
        return False, "the task has no expert_turns"
    render = get_format(tool_format).render
    env = gym.make(
        "rock/SWE-v0", tasks=[task], backend=config.backend, engine_url=config.engine_url, tool_format=tool_format
    )
    try:
        observation, _ = env.reset(seed=0, options={"task_id": task.instance_id})
        reward, terminated, truncated = 0.0, False, False
        for turn in task.expert_turns:
            action = render([ToolCall(call.name, call.arguments) for call in turn])
            observation, step_reward, terminated, truncated, _ = env.step(action)
            reward = float(step_reward)
            if terminated or truncated:
                break
    finally:
        env.close()
    if terminated and reward == 1.0:
        return True, ""
    # The step's info is the env's typed record, which this layer does not import: the last observation (which
    # names the error of an episode ended by one) says what went wrong; the gold check reports the verifier's own.
    how = "submitted" if terminated else "was truncated" if truncated else "did not end"
    return False, f"the expert {how} with reward {reward}; last observation: {observation[-500:]}"


def check_task(task: Task, backend: str = "docker", engine_url: str | None = None) -> TaskCheck:
    """Run the gold, no-op and expert checks of one task (each in a fresh sandbox); never raises."""
    started = time.monotonic()
    check = TaskCheck(task.task_id)
    if not isinstance(task, SWETask):
        check.errors["task"] = "not a SWE task: only synthesized SWE tasks are validated here"
        return check
    config = SandboxConfig(backend=backend, engine_url=engine_url)  # type: ignore[arg-type]
    checks: dict[str, Callable[[SWETask, SandboxConfig], tuple[bool, str]]] = {
        "gold": check_gold,
        "noop": check_noop,
        "expert": check_expert,
    }
    for name, run in checks.items():
        try:
            held, note = run(task, config)
        except (SandboxError, VerifyError, OSError) as exc:
            held, note = False, f"{type(exc).__name__}: {exc}"
        setattr(check, name, held)
        if note:
            check.errors[name] = note
    check.seconds = time.monotonic() - started
    return check


def validate(
    tasks: Sequence[Task],
    backend: str = "docker",
    workers: int = 2,
    engine_url: str | None = None,
    progress: Callable[[TaskCheck], None] | None = None,
) -> ValidationReport:
    """Check every task on `workers` threads; the report keeps the tasks' order."""
    started = time.monotonic()
    lock = threading.Lock()

    def one(task: Task) -> TaskCheck:
        check = check_task(task, backend, engine_url)
        if progress is not None:
            with lock:
                progress(check)
        return check

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="validate") as pool:
        checks = list(pool.map(one, tasks))
    return ValidationReport(checks, time.monotonic() - started, workers)


def _task_config(task: SWETask, base: SandboxConfig) -> SandboxConfig:
    return base.model_copy(update={"image": task.image, "workdir": task.workdir, "env": task.env, "disk": None})


def _unresolved(task: SWETask, statuses: dict[str, str]) -> str:
    failing = [test for test in [*task.FAIL_TO_PASS, *task.PASS_TO_PASS] if statuses.get(test) != "PASSED"]
    shown = ", ".join(f"{test} ({statuses.get(test, 'missing')})" for test in failing[:3])
    more = f" and {len(failing) - 3} more" if len(failing) > 3 else ""
    return f"with the gold patch these do not pass: {shown}{more}"
