"""What an env asks of a task, whatever its kind: the `TaskKind` protocol.

The env stays task-agnostic: it builds the task's image if needed (`prepare_image`), starts a sandbox from the task's
`image`, `workdir` and `env`, lets the task place itself (`setup`), shows the agent `prompt()`, and at the end lets
the task grade what the agent left (`verify`). A new kind of task is a new class with these members; the env does not
change. (To be read from rows too, it also joins the `kind`-tagged union in `rock_gym.tasks.model`.)

Examples:
    >>> from rock_gym.tasks import terminal_tasks
    >>> task = terminal_tasks(["count-matches"], seeds=[0])[0]
    >>> isinstance(task, TaskKind), task.task_id, task.verifier_timeout
    (True, 'count-matches-0', 120.0)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from rock_gym.sandbox import Sandbox, SandboxConfig


@dataclass(frozen=True)
class Verdict:
    """What a task's verifier found.

    Attributes:
        resolved: the task is solved.
        tests: per test (or checker), its outcome: a pytest status, or the reward a checker wrote.
    """

    resolved: bool
    tests: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class TaskKind(Protocol):
    """A task an env can play.

    Setup and grading run as root (`sandbox.as_root()`), whoever the agent's shell runs as; a verifier that cannot
    grade raises (`rock_gym.tasks.verify.VerifyError`, or the sandbox's `SandboxError`) and the env reports it as
    the verifier's error, never as the agent's failure.
    """

    @property
    def task_id(self) -> str:
        """The task's id, unique within a task set."""
        ...

    @property
    def image(self) -> str:
        """The image its sandbox starts from."""
        ...

    @property
    def workdir(self) -> str:
        """The agent's working directory (handed to the agent's user when the shell is unprivileged)."""
        ...

    @property
    def env(self) -> dict[str, str]:
        """Environment variables of the sandbox (and of the tests)."""
        ...

    @property
    def verifier_timeout(self) -> float:
        """Seconds the verifier may run."""
        ...

    def prompt(self) -> str:
        """What the agent is asked to do: the user message that opens the episode."""
        ...

    def prepare_image(self, base: SandboxConfig) -> None:
        """Make sure `image` exists on the engine of `base` (built, if the task says how) before a sandbox starts."""
        ...

    def setup(self, sandbox: Sandbox) -> str:
        """Place the task in a started sandbox; returns the base commit that verification compares against."""
        ...

    def verify(self, sandbox: Sandbox, base_commit: str) -> Verdict:
        """Grade what the agent left in `sandbox`.

        Raises:
            VerifyError: the verifier could not grade (it timed out, wrote no reward, the change does not apply).
        """
        ...
