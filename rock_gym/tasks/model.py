"""Task models: a SWE-bench style repository task and a Harbor style terminal task, told apart by `kind`."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from rock_gym.sandbox.config import DEFAULT_IMAGE
from rock_gym.tasks import verify as grading
from rock_gym.tasks.kind import Verdict

if TYPE_CHECKING:
    from rock_gym.sandbox import Sandbox, SandboxConfig

#: The SWE-bench harness names its per-instance images like this; "__" in the id becomes "_1776_".
SWEBENCH_IMAGE = "swebench/sweb.eval.x86_64.{name}:latest"
#: `{test_files}` is replaced by the test files named in FAIL_TO_PASS and PASS_TO_PASS.
DEFAULT_TEST_COMMAND = "python3 -m pytest -rA -p no:cacheprovider {test_files}"
#: Seconds a SWE task's hidden tests may run.
SWE_VERIFIER_TIMEOUT = 300.0


class TaskError(ValueError):
    """A task row or directory that cannot be read; the message names the row (or path) and the field."""


class ToolCall(BaseModel):
    """One tool call of a reference solution, e.g. `{"name": "bash", "arguments": {"command": "ls"}}`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    arguments: dict[str, Any] = Field(default_factory=dict)


#: A reference solution: one list of tool calls per assistant turn.
ExpertTurns = list[list[ToolCall]]


class SWETask(BaseModel):
    """A repository task in SWE-bench's shape: fix `repo` at `base_commit` so that FAIL_TO_PASS tests pass.

    Columns this model does not know (`created_at`, `hints_text`, ...) are kept in `extra`.

    Examples:
        >>> task = SWETask(instance_id="astropy__astropy-12907", repo="astropy/astropy", base_commit="d16bfe0",
        ...                problem_statement="...", FAIL_TO_PASS='["t.py::test_a"]')
        >>> task.image
        'swebench/sweb.eval.x86_64.astropy_1776_astropy-12907:latest'
        >>> task.FAIL_TO_PASS
        ['t.py::test_a']
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["swe"] = "swe"
    instance_id: str = Field(min_length=1)
    repo: str = ""
    base_commit: str = ""
    problem_statement: str
    patch: str = Field(default="", description="The gold patch (unified diff, applies with `git apply` in workdir).")
    test_patch: str = Field(default="", description="Diff adding the hidden tests; applied only at verification.")
    FAIL_TO_PASS: list[str] = Field(default_factory=list, description="pytest node ids that the fix must make pass.")
    PASS_TO_PASS: list[str] = Field(default_factory=list, description="pytest node ids that must keep passing.")
    version: str = ""
    environment_setup_commit: str = ""
    image: str = Field(default="", description="Image to start; default: the SWE-bench harness image of the instance.")
    workdir: str = "/testbed"
    test_command: str = Field(default=DEFAULT_TEST_COMMAND, description="Shell command run in workdir to grade.")
    test_files: dict[str, str] = Field(
        default_factory=dict, description="Hidden test files (path relative to workdir -> content), verification only."
    )
    repo_files: dict[str, str] = Field(
        default_factory=dict, description="Files written under workdir at reset, for self-contained tasks."
    )
    setup_patch: str = Field(
        default="",
        description="A diff applied in workdir at reset, before the base commit (a synthesized task's bug); the agent "
        "sees its result, never the diff.",
    )
    env: dict[str, str] = Field(default_factory=dict)
    expert_turns: ExpertTurns | None = None
    extra: dict[str, Any] = Field(default_factory=dict, description="Columns of the source row this model ignores.")

    @model_validator(mode="before")
    @classmethod
    def _keep_unknown_columns(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        known = set(cls.model_fields)
        unknown = {key: value for key, value in data.items() if key not in known}
        if not unknown:
            return data
        kept = {key: value for key, value in data.items() if key in known}
        kept["extra"] = {**data.get("extra", {}), **unknown}
        return kept

    @field_validator("FAIL_TO_PASS", "PASS_TO_PASS", mode="before")
    @classmethod
    def _decode_json_list(cls, value: Any) -> Any:
        # Real SWE-bench rows store these lists as JSON-encoded strings.
        if isinstance(value, str):
            try:
                return json.loads(value) if value.strip() else []
            except json.JSONDecodeError as exc:
                raise ValueError(f"not a list of test ids nor a JSON-encoded one: {exc}") from exc
        return value

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) else value

    @model_validator(mode="after")
    def _default_image(self) -> SWETask:
        if not self.image:
            self.image = SWEBENCH_IMAGE.format(name=self.instance_id.replace("__", "_1776_")).lower()
        return self

    @property
    def task_id(self) -> str:
        """The id shared by every kind of task."""
        return self.instance_id

    def test_file_paths(self) -> list[str]:
        """The distinct test files named by FAIL_TO_PASS and PASS_TO_PASS, in first-seen order."""
        paths = (test_id.split("::", 1)[0] for test_id in [*self.FAIL_TO_PASS, *self.PASS_TO_PASS])
        return list(dict.fromkeys(paths))

    def resolved_test_command(self) -> str:
        """`test_command` with `{test_files}` filled in."""
        return self.test_command.replace("{test_files}", " ".join(self.test_file_paths())).strip()

    # -- as a `TaskKind` --------------------------------------------------------------------------------------

    @property
    def verifier_timeout(self) -> float:
        return SWE_VERIFIER_TIMEOUT

    def prompt(self) -> str:
        return (
            f"Fix the following issue in the repository at {self.workdir}.\n\n{self.problem_statement}\n\n"
            "Edit the source files (not the tests), then call `submit`."
        )

    def prepare_image(self, base: SandboxConfig) -> None:
        """Nothing to build here: SWE-bench images come from their harness, project images from `rock-gym tasks`."""

    def setup(self, sandbox: Sandbox) -> str:
        """The repository at its base commit, the bug applied and the hidden tests removed (`verify.setup_swe`)."""
        return grading.setup_swe(sandbox.as_root(), self)  # type: ignore[arg-type]

    def verify(self, sandbox: Sandbox, base_commit: str) -> Verdict:
        """Only the agent's change crosses to a fresh sandbox, where the hidden tests run (`grade_in_fresh_sandbox`).

        Work the agent made ungradable (its repository removed, a change over the size limit) is unresolved.
        """
        try:
            grade = grading.grade_in_fresh_sandbox(sandbox, self, base_commit)
        except grading.UngradableWork as exc:
            return Verdict(False, {"agent_change": f"ungradable: {exc}"})
        return Verdict(grade.resolved, grade.statuses)


class Timeouts(BaseModel):
    """Seconds an agent may work and the verifier may run (Harbor's `[agent]` and `[verifier]` timeout_sec)."""

    model_config = ConfigDict(extra="forbid")

    agent: float = Field(default=600.0, gt=0)
    verifier: float = Field(default=120.0, gt=0)


class TerminalTask(BaseModel):
    """A Harbor (terminal-bench) style task: an instruction, files placed before the episode, a hidden checker.

    The checker convention: `tests/test.sh` runs in the container as `/tests/test.sh` and writes a number to
    `/logs/verifier/reward.txt` (or a JSON object to `/logs/verifier/reward.json`).

    Examples:
        >>> task = TerminalTask(task_id="hello", instruction="Create /out/hello.txt containing hi.",
        ...                     tests={"tests/test.sh": "grep -qx hi /out/hello.txt && echo 1 > ..."})
        >>> task.image, task.timeouts.agent
        ('rock-gym/base:bookworm', 600.0)
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["terminal"] = "terminal"
    task_id: str = Field(min_length=1)
    instruction: str = Field(min_length=1)
    image: str = Field(default=DEFAULT_IMAGE, min_length=1)
    workdir: str = "/"
    files: dict[str, str] = Field(
        default_factory=dict,
        description="Container path (absolute, or relative to workdir) -> content, placed before the episode.",
    )
    tests: dict[str, str] = Field(
        default_factory=dict,
        description='Hidden checker files by task-relative path, e.g. {"tests/test.sh": ...}; '
        "a file tests/X is placed at /tests/X at verification.",
    )
    solution: str | None = Field(default=None, description="Reference solve.sh text.")
    timeouts: Timeouts = Field(default_factory=Timeouts)
    env: dict[str, str] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict, description="Free-form (Harbor's [metadata] table).")
    dockerfile: str | None = Field(
        default=None,
        description="Set when the Harbor Dockerfile does more than FROM/WORKDIR/ENV/COPY: `image` must then "
        "be built from it, with `build_files` as its context.",
    )
    build_files: dict[str, str] = Field(default_factory=dict, description="Build context of `dockerfile`.")
    expert_turns: ExpertTurns | None = None

    @field_validator("tests")
    @classmethod
    def _tests_under_tests_dir(cls, value: dict[str, str]) -> dict[str, str]:
        outside = [path for path in value if not path.startswith("tests/")]
        if outside:
            raise ValueError(f"checker files must live under tests/, got {outside}")
        return value

    @model_validator(mode="after")
    def _absolute_file_paths(self) -> TerminalTask:
        # One spelling per file, so that tasks compare equal however their paths were written.
        self.files = {str(PurePosixPath(self.workdir) / path): text for path, text in self.files.items()}
        return self

    # -- as a `TaskKind` --------------------------------------------------------------------------------------

    @property
    def verifier_timeout(self) -> float:
        return self.timeouts.verifier

    def prompt(self) -> str:
        return f"{self.instruction}\n\nWhen you are done, call `submit`."

    def prepare_image(self, base: SandboxConfig) -> None:
        """Build `image` from the task's Dockerfile when it has one and the engine lacks the image."""
        if self.dockerfile:
            from rock_gym.tasks.build import build_task_image  # it starts sandboxes: docker loads only here

            build_task_image(self, base)

    def setup(self, sandbox: Sandbox) -> str:
        """The task's files placed (not its tests); a terminal task has no base commit."""
        grading.setup_terminal(sandbox.as_root(), self)  # type: ignore[arg-type]
        return "HEAD"

    def verify(self, sandbox: Sandbox, base_commit: str) -> Verdict:
        """Harbor's convention: the checker runs in the episode's own sandbox, its reward directory cleared first."""
        reward = grading.grade_terminal(sandbox.as_root(), self)  # type: ignore[arg-type]
        return Verdict(reward >= 1.0, {"tests/test.sh": reward})


#: Either kind of task, chosen by its `kind` field.
Task = Annotated[SWETask | TerminalTask, Field(discriminator="kind")]
_TASK_ADAPTER: TypeAdapter[SWETask | TerminalTask] = TypeAdapter(Task)


def parse_task(row: dict[str, Any], index: int | None = None) -> SWETask | TerminalTask:
    """Validate one row into a task; a row without `kind` is a SWE-bench row.

    Raises:
        TaskError: naming the row (index and id) and each bad field.
    """
    if not isinstance(row, dict):
        raise TaskError(f"{_row_label(index, None)}: expected a mapping, got {type(row).__name__}")
    data = row if "kind" in row else {**row, "kind": "swe"}
    try:
        return _TASK_ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise TaskError(_describe(exc, _row_label(index, row))) from exc


def parse_tasks(rows: Iterable[dict[str, Any]]) -> list[SWETask | TerminalTask]:
    """Validate rows (e.g. a SWE-bench split) into tasks; the first bad row raises TaskError."""
    return [parse_task(row, index) for index, row in enumerate(rows)]


def read_jsonl(path: str | Path) -> list[SWETask | TerminalTask]:
    """Read tasks from a JSON Lines file (one row a line; blank lines skipped).

    Raises:
        TaskError: naming the file, the line and the bad field.
    """
    tasks = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TaskError(f"{path}:{number}: not JSON: {exc}") from exc
        try:
            tasks.append(parse_task(row))
        except TaskError as exc:
            raise TaskError(f"{path}:{number}: {exc}") from exc
    return tasks


def _row_label(index: int | None, row: Any) -> str:
    ident = None
    if isinstance(row, dict):
        ident = row.get("instance_id") or row.get("task_id")
    parts = [f"row {index}" if index is not None else "row", f"({ident!r})" if ident else ""]
    return " ".join(part for part in parts if part)


def _describe(exc: ValidationError, label: str) -> str:
    problems = []
    for error in exc.errors():
        # The first location item is the union tag ("swe"/"terminal"); the rest is the field path.
        loc = [str(part) for part in error["loc"]]
        if loc and loc[0] in ("swe", "terminal"):
            loc = loc[1:]
        problems.append(f"field {'.'.join(loc) or 'kind'!r}: {error['msg']}")
    return f"{label}: invalid task: " + "; ".join(problems)
