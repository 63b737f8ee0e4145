"""Put a task into a sandbox and grade it: Harbor checkers for terminal tasks, pytest reports for SWE tasks.

Every function takes a started `rock_gym.sandbox.Sandbox` (or anything with its `run`, `write_file` and
`read_file`); nothing here starts containers.
"""

from __future__ import annotations

import base64
import json
import secrets
import shlex
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING
from xml.etree import ElementTree

if TYPE_CHECKING:
    from rock_gym.sandbox.sandbox import Sandbox
    from rock_gym.tasks.model import SWETask, TerminalTask

REWARD_DIR = "/logs/verifier"
PYTEST_LOG = "/tmp/rock_gym_pytest.log"
JUNIT_REPORT = "/tmp/rock_gym_junit.xml"
_GIT = "git -c user.email=rock-gym@localhost -c user.name=rock-gym"
#: Files up to this size go through the shell in one round trip; larger ones through the engine's archive API.
INLINE_LIMIT = 64_000
#: The largest agent change (a binary git diff) verification accepts.
MAX_DIFF_BYTES = 20_000_000
#: The environment tests run in: nothing of the agent's shell, a standard PATH; the task's own env goes on top.
CLEAN_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "PYTHONNOUSERSITE": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
}
#: Files that steer pytest or the interpreter wherever they sit: an agent's version of them is never used.
PROTECTED_NAMES = frozenset(
    {"conftest.py", "pytest.ini", "tox.ini", "setup.cfg", "pyproject.toml", "sitecustomize.py", "usercustomize.py"}
)
AGENT_DIFF = "/tmp/rock_gym_agent.diff"


class VerifyError(RuntimeError):
    """The task could not be placed or its checker did not report a reward."""


class UngradableWork(VerifyError):
    """The agent's own work cannot be graded: it removed the repository or its base commit, or its change is over
    the size limit. The agent did this, so the task grades it unresolved; it is no verifier failure (an env error
    would be dropped, and destroying one's work would become a free way out of a failing episode)."""


def setup_terminal(sandbox: Sandbox, task: TerminalTask) -> None:
    """Place the task's files (not its tests) and create its workdir."""
    sandbox.run(f"mkdir -p {shlex.quote(task.workdir)}")
    write_files(sandbox, task.files)


def write_files(sandbox: Sandbox, files: dict[str, str], root: str = "/") -> None:
    """Write files (paths absolute or relative to `root`), small ones together in one shell call.

    Each `Sandbox.write_file` is an engine API call (tens of ms); a task places tens of files at every reset.
    """
    inline = []
    for path, content in files.items():
        target = str(PurePosixPath(root) / path)
        data = content.encode()
        if len(data) > INLINE_LIMIT:
            sandbox.write_file(target, data)
            continue
        quoted = shlex.quote(target)
        encoded = base64.b64encode(data).decode()
        inline.append(f'mkdir -p -- "$(dirname -- {quoted})" && printf %s {encoded} | base64 -d > {quoted}')
    if inline:
        result = sandbox.run(" && ".join(inline))
        if not result.ok:
            raise VerifyError(f"could not write the task's files: {result.output[-2000:]}")


def grade_terminal(sandbox: Sandbox, task: TerminalTask) -> float:
    """Copy the hidden tests to /tests, run /tests/test.sh and return the reward it wrote.

    Raises:
        VerifyError: the checker wrote neither reward.txt nor reward.json.
    """
    sandbox.run(f"rm -rf {REWARD_DIR} /tests && mkdir -p {REWARD_DIR}")
    write_files(sandbox, task.tests)
    command = f"cd {shlex.quote(task.workdir)} && {clean_env_prefix(task.env)} bash /tests/test.sh"
    result = sandbox.run(command, timeout=task.timeouts.verifier)
    return read_reward(sandbox, detail=result.output[-2000:])


def read_reward(sandbox: Sandbox, detail: str = "") -> float:
    """The reward a Harbor checker left in /logs/verifier (reward.txt, else the `reward` of reward.json)."""
    try:
        return float(str(sandbox.read_file(f"{REWARD_DIR}/reward.txt")).strip())
    except FileNotFoundError:
        pass
    except ValueError as exc:
        raise VerifyError(f"{REWARD_DIR}/reward.txt does not hold a number: {exc}") from exc
    try:
        report = json.loads(sandbox.read_file(f"{REWARD_DIR}/reward.json"))
    except FileNotFoundError:
        raise VerifyError(
            f"the checker wrote no {REWARD_DIR}/reward.txt nor reward.json; its output:\n{detail}"
        ) from None
    return float(report["reward"] if isinstance(report, dict) else report)


def setup_swe(sandbox: Sandbox, task: SWETask) -> str:
    """Prepare workdir for an episode and return the base commit's sha.

    Self-contained tasks (`repo_files`) and tasks built on a project image without git history (`setup_patch`,
    hidden `test_files` present in the image) get their files written, the setup patch applied, the hidden test
    files removed (unless `repo_files` gives a visible version), and a fresh git repo whose single base commit is
    what the agent sees. SWE-bench images already hold their repository at `base_commit`; nothing is changed.

    Returns:
        the base commit's sha (what verification restores test files from, whatever the agent commits later).
    """
    workdir = shlex.quote(task.workdir)
    if task.repo_files or task.setup_patch:
        write_files(sandbox, task.repo_files, root=task.workdir)
        if task.setup_patch:
            apply_patch(sandbox, task.workdir, task.setup_patch, path="/tmp/rock_gym_setup.patch")
            sandbox.run("rm -f /tmp/rock_gym_setup.patch")
        hidden = sorted(set(task.test_files) - set(task.repo_files))  # a repo file may ship a visible version
        if hidden:
            sandbox.run(f"cd {workdir} && rm -f -- {' '.join(shlex.quote(path) for path in hidden)}")
        result = sandbox.run(f"cd {workdir} && rm -rf .git && git init -q && git add -A && {_GIT} commit -qm base")
        if not result.ok:
            raise VerifyError(f"could not create the base commit in {task.workdir}: {result.output}")
    head = sandbox.run(f"git -C {workdir} rev-parse HEAD")
    return head.output.strip() if head.ok else task.base_commit or "HEAD"


def apply_hidden_tests(sandbox: Sandbox, task: SWETask, base: str = "HEAD") -> None:
    """Write `test_files` and apply `test_patch` in workdir (verification only), over whatever the agent left."""
    write_files(sandbox, task.test_files, root=task.workdir)
    if task.test_patch:
        restore_paths(sandbox, task.workdir, patched_paths(task.test_patch), base)
        apply_patch(sandbox, task.workdir, task.test_patch)


def patched_paths(patch: str) -> list[str]:
    """The files a unified diff touches (its `diff --git a/X b/X` headers, else its `+++ b/X` lines).

    >>> patched_paths("diff --git a/tests/t.py b/tests/t.py\\n--- a/tests/t.py\\n+++ b/tests/t.py\\n")
    ['tests/t.py']
    """
    paths = [line.split(" b/", 1)[1] for line in patch.splitlines() if line.startswith("diff --git a/")]
    if not paths:
        paths = [line[6:] for line in patch.splitlines() if line.startswith("+++ b/")]
    return sorted(set(paths))


def restore_paths(sandbox: Sandbox, workdir: str, paths: list[str], base: str = "HEAD") -> None:
    """Put `paths` back as the base commit has them (files the base lacks are removed), undoing agent edits."""
    if not paths:
        return
    quoted = " ".join(shlex.quote(p) for p in paths)
    sandbox.run(
        f"cd {shlex.quote(workdir)} && for f in {quoted}; do "
        f'git checkout -q {shlex.quote(base)} -- "$f" 2>/dev/null || rm -rf -- "$f"; done'
    )


def apply_patch(sandbox: Sandbox, workdir: str, patch: str, path: str = "/tmp/rock_gym.patch") -> None:
    """`git apply` a unified diff in `workdir`; VerifyError with git's message when it does not apply."""
    sandbox.write_file(path, patch)
    result = sandbox.run(f"cd {shlex.quote(workdir)} && git apply --whitespace=nowarn {path}")
    if not result.ok:
        raise VerifyError(f"patch does not apply in {workdir}: {result.output}")


@dataclass
class SWEGrade:
    """The outcome of a SWE task's tests.

    Attributes:
        statuses: pytest node id -> PASSED, FAILED, ERROR or SKIPPED, from pytest's junit XML report.
        fail_to_pass: FAIL_TO_PASS ids that passed.
        pass_to_pass: PASS_TO_PASS ids that passed.
        resolved: every FAIL_TO_PASS and PASS_TO_PASS id passed.
    """

    statuses: dict[str, str] = field(default_factory=dict)
    fail_to_pass: list[str] = field(default_factory=list)
    pass_to_pass: list[str] = field(default_factory=list)
    resolved: bool = False

    @property
    def reward(self) -> float:
        return 1.0 if self.resolved else 0.0


def clean_env_prefix(env: dict[str, str]) -> str:
    """`env -i NAME=value ...`: the clean environment of a test run, with the task's declared variables on top.

    >>> clean_env_prefix({"PYTHONPATH": "src"}).split()[-1]
    'PYTHONPATH=src'
    """
    merged = {**CLEAN_ENV, **env}
    return "env -i " + " ".join(shlex.quote(f"{name}={value}") for name, value in merged.items())


def run_swe_tests(sandbox: Sandbox, task: SWETask, timeout: float = 300.0, report_path: str = JUNIT_REPORT) -> SWEGrade:
    """Run the task's test command in workdir and grade FAIL_TO_PASS / PASS_TO_PASS from pytest's junit report.

    The command runs in a clean environment (`clean_env_prefix`): nothing the agent exported reaches it.

    Raises:
        VerifyError: the tests timed out, or the command left no junit report (it is not a pytest run).
    """
    sandbox.run(f"rm -f {report_path}")
    command = (
        f"cd {shlex.quote(task.workdir)} && {clean_env_prefix(task.env)} bash -c "
        + shlex.quote(f"{task.resolved_test_command()} --junitxml={report_path} -o junit_family=xunit1")
        + f" > {PYTEST_LOG} 2>&1"
    )
    result = sandbox.run(command, timeout=timeout)
    if result.timed_out:
        raise VerifyError(f"the tests did not finish within {timeout}s")
    try:
        report = str(sandbox.read_file(report_path))
    except FileNotFoundError:
        log = str(sandbox.read_file(PYTEST_LOG))[-2000:]
        raise VerifyError(
            f"the test command left no junit report (rock_gym grades pytest runs); its output:\n{log}"
        ) from None
    statuses = parse_junit(report)
    passed = {test_id for test_id, status in statuses.items() if status == "PASSED"}
    grade = SWEGrade(
        statuses=statuses,
        fail_to_pass=[test_id for test_id in task.FAIL_TO_PASS if test_id in passed],
        pass_to_pass=[test_id for test_id in task.PASS_TO_PASS if test_id in passed],
    )
    grade.resolved = len(grade.fail_to_pass) == len(task.FAIL_TO_PASS) and len(grade.pass_to_pass) == len(
        task.PASS_TO_PASS
    )
    return grade


def parse_junit(report: str) -> dict[str, str]:
    """pytest node id -> PASSED, FAILED, ERROR or SKIPPED, from a junit XML report written with junit_family=xunit1.

    >>> parse_junit('<testsuites><testsuite><testcase file="t/test_a.py" classname="t.test_a.TestX" name="test_b">'
    ...             '<failure message="boom"/></testcase></testsuite></testsuites>')
    {'t/test_a.py::TestX::test_b': 'FAILED'}
    """
    cases = list(ElementTree.fromstring(report).iter("testcase"))
    modules = {c.get("file", "").removesuffix(".py").replace("/", ".") for c in cases if c.get("file")}
    return {_node_id(case, modules): _junit_status(case) for case in cases}


def _node_id(case: ElementTree.Element, modules: set[str]) -> str:
    """The pytest node id of a junit testcase.

    `file` names where the test function is defined, which for a test inherited from a class in another file is not
    the node's own file; then (and for xunit2 reports, which have no `file`) the module is taken from `classname`:
    the longest prefix that another test's file names, else the parts before the first capitalised one (a class).
    """
    path, classname, name = case.get("file", ""), case.get("classname", ""), case.get("name", "")
    module = path.removesuffix(".py").replace("/", ".")
    if path and (classname == module or classname.startswith(module + ".")):
        rest = classname[len(module) :].strip(".")
    else:
        parts = classname.split(".")
        cut = next((i for i in range(len(parts), 0, -1) if ".".join(parts[:i]) in modules), None)
        if cut is None:
            cut = next((i for i, part in enumerate(parts) if part[:1].isupper()), len(parts)) or len(parts)
        module, rest = ".".join(parts[:cut]), ".".join(parts[cut:])
        path = module.replace(".", "/") + ".py"
    return "::".join([path, *(rest.split(".") if rest else []), name])


def _junit_status(case: ElementTree.Element) -> str:
    for tag, status in (("failure", "FAILED"), ("error", "ERROR"), ("skipped", "SKIPPED")):
        if case.find(tag) is not None:
            return status
    return "PASSED"


def grade_swe(sandbox: Sandbox, task: SWETask, timeout: float = 300.0, base: str = "HEAD") -> SWEGrade:
    """Apply the hidden tests (restoring test files from `base`), then run and grade them."""
    apply_hidden_tests(sandbox, task, base)
    return run_swe_tests(sandbox, task, timeout=timeout)


# -- grading an agent's change in a fresh sandbox ---------------------------------------------------------------


def agent_diff(sandbox: Sandbox, task: SWETask, base: str) -> bytes:
    """Everything the agent changed in workdir since `base`, as a binary git diff (commits and new files included).

    Raises:
        UngradableWork: git could not diff (the agent removed `.git` or `base`), or the diff is over `MAX_DIFF_BYTES`.
    """
    result = sandbox.run(
        f"cd {shlex.quote(task.workdir)} && git add -A >/dev/null 2>&1; git diff --cached --binary --no-renames "
        f"--no-ext-diff --no-textconv {shlex.quote(base)} > {AGENT_DIFF} && stat -c %s {AGENT_DIFF}"
    )
    size = result.output.strip().splitlines()[-1] if result.output.strip() else ""
    if not result.ok or not size.isdigit():
        raise UngradableWork(f"could not take the agent's change as a diff against {base}: {result.output[-1000:]}")
    if int(size) > MAX_DIFF_BYTES:
        raise UngradableWork(f"the agent's change is {size} bytes, over the limit of {MAX_DIFF_BYTES}")
    return sandbox.read_file(AGENT_DIFF, binary=True) if int(size) else b""  # type: ignore[return-value]


def test_directory(path: str) -> PurePosixPath | None:
    """The directory of tests a test file sits in (up to its first `test`/`tests`/`testing` part), if any.

    >>> test_directory("sympy/core/tests/test_basic.py"), test_directory("src/pkg/test_x.py")
    (PurePosixPath('sympy/core/tests'), None)
    """
    parts = PurePosixPath(path).parts[:-1]
    for depth, part in enumerate(parts, 1):
        if part in ("test", "tests", "testing"):
            return PurePosixPath(*parts[:depth])
    return None


def is_protected(path: str, test_dirs: set[PurePosixPath]) -> bool:
    """Whether an agent's version of `path` is ignored: test and pytest/interpreter config files, test directories.

    >>> is_protected("pkg/conftest.py", set()), is_protected("tests/helpers.py", {PurePosixPath("tests")})
    (True, True)
    >>> is_protected("lib/x.pth", set()), is_protected("pkg/core.py", {PurePosixPath("tests")})
    (True, False)
    """
    pure = PurePosixPath(path)
    if pure.name in PROTECTED_NAMES or pure.suffix == ".pth":
        return True
    return any(directory == pure.parent or directory in pure.parents for directory in test_dirs)


def grade_swe_change(sandbox: Sandbox, task: SWETask, diff: bytes, timeout: float = 300.0) -> SWEGrade:
    """Grade an agent's change in a fresh sandbox started from the task's image.

    The task is set up as at reset, the diff applied, every protected path it touches (`is_protected`) put back as
    the base has it, the hidden tests applied, and the tests run in a clean environment with their junit report
    written to a path nobody saw.

    Raises:
        VerifyError: the diff does not apply, or the tests fail to run (see `run_swe_tests`).
    """
    base = setup_swe(sandbox, task)
    touched = patched_paths(diff.decode("utf-8", errors="replace"))
    if diff:
        sandbox.write_file(AGENT_DIFF, diff)
        applied = sandbox.run(f"cd {shlex.quote(task.workdir)} && git apply --binary --whitespace=nowarn {AGENT_DIFF}")
        if not applied.ok:
            raise VerifyError(f"the agent's change does not apply to a fresh copy of the task: {applied.output[-800:]}")
    hidden = set(task.test_files) | set(patched_paths(task.test_patch or ""))
    test_dirs = {d for d in map(test_directory, hidden) if d is not None}
    restore_paths(sandbox, task.workdir, sorted(p for p in touched if p in hidden or is_protected(p, test_dirs)), base)
    apply_hidden_tests(sandbox, task, base)
    return run_swe_tests(sandbox, task, timeout=timeout, report_path=f"/tmp/rock_gym_{secrets.token_hex(8)}.xml")


def grade_in_fresh_sandbox(sandbox: Sandbox, task: SWETask, base: str) -> SWEGrade:
    """The agent's change as a binary diff against `base`, graded in a new sandbox of the episode's config.

    Nothing else of the episode reaches the tests: not its processes, files outside the repository, site-packages,
    PATH or environment; the tests and pytest's config files are restored (`grade_swe_change`).

    Raises:
        VerifyError: the change cannot be taken or applied, or the tests fail to run.
    """
    from rock_gym.sandbox.sandbox import Sandbox  # docker loads only when a task is graded

    diff = agent_diff(sandbox.as_root(), task, base)  # type: ignore[arg-type]
    with Sandbox(sandbox.config) as fresh:
        return grade_swe_change(fresh.as_root(), task, diff, timeout=task.verifier_timeout)  # type: ignore[arg-type]
