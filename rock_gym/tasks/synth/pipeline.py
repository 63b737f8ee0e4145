"""The synthesis pipeline: a project spec in, verified bug-fix tasks out (`out_dir/tasks.jsonl` and `summary.json`).

1. The project image and its passing baseline (`build_project_image`, reused when current).
2. The functions the suite covers (`coverage.project_coverage`, cached per image on the host).
3. Seeded candidate bugs in those functions (`mutate.mutations`), shuffled across files.
4. Workers in parallel, each keeping one sandbox from the project image: write the mutant, run the suite, put the
   original back. A candidate that passes the screen (`review(..., gold=None, rerun=None)` is `pending`) is run
   again as a mutant (rerun) and with the gold patch applied (the original file) before its final verdict.
5. Verdicts are committed in candidate order (so the output depends on the seed only, not on which worker was
   faster): duplicates are dropped, each accepted candidate becomes an `SWETask` with hidden test files, an
   issue-style statement and a reference solution, until `max_tasks` are accepted.

Examples:
    >>> from rock_gym.tasks.synth import spec_for
    >>> report = synth(spec_for("inflection"), max_tasks=5, out_dir="tasks/inflection")  # doctest: +SKIP
    >>> report.accepted, sorted(report.reasons)  # doctest: +SKIP
    (5, ['accepted', 'no_failure', ...])
"""

from __future__ import annotations

import base64
import json
import random
import shlex
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree

from rock_gym.sandbox import SandboxError
from rock_gym.tasks.model import SWETask
from rock_gym.tasks.synth.build import (
    RUN_ENV,
    SUITE_REPORT,
    WORKDIR,
    ProjectImage,
    build_project_image,
    run_suite,
    suite_command,
)
from rock_gym.tasks.synth.coverage import Coverage, project_coverage, sandbox_config
from rock_gym.tasks.synth.expert import expert_turns
from rock_gym.tasks.synth.mutate import Mutation, mutations
from rock_gym.tasks.synth.review import Deduper, Reason, Verdict, review, split_outcomes
from rock_gym.tasks.synth.specs import ProjectSpec, normalize_name
from rock_gym.tasks.synth.statements import problem_statement
from rock_gym.tasks.verify import _node_id, parse_junit

if TYPE_CHECKING:
    from rock_gym.sandbox.sandbox import Sandbox

#: Default cap on |FAIL_TO_PASS|: a bug breaking more tests is a broken module, not a localized bug.
DEFAULT_MAX_FAIL_TO_PASS = 50
#: A candidate's suite run may take this many times the unmodified suite's time (at least MIN_RUN_TIMEOUT): a
#: mutant that loops forever is cut off quickly.
RUN_TIMEOUT_FACTOR = 5.0
MIN_RUN_TIMEOUT = 30.0
#: A copy of /testbed made at a worker's start: mutated files are restored from it.
PRISTINE = "/tmp/rock_gym_pristine"
MUTANT_FILE = "/tmp/rock_gym_mutant.py"
#: Output kept per shell call: enough for a junit report of a few thousand tests (a larger one is read as a file).
REPORT_LIMIT = 16_000_000
#: Mutated files up to this size travel inside the run's shell command; larger ones through the engine's file API.
INLINE_LIMIT = 48_000
TASKS_FILE = "tasks.jsonl"
SUMMARY_FILE = "summary.json"


class SynthError(RuntimeError):
    """The pipeline cannot run for this project; the message says why."""


@dataclass(frozen=True)
class SynthProgress:
    """Passed to the progress callback after each committed candidate."""

    tried: int
    accepted: int
    max_tasks: int
    available: int
    reason: str


@dataclass
class Evaluation:
    """What a worker found out about one candidate.

    Attributes:
        verdict: the final verdict (before deduplication against earlier candidates).
        failures: FAIL_TO_PASS test id -> its failure text from the junit report (accepted candidates only).
        test_files: path -> content of the test files holding FAIL_TO_PASS tests (accepted candidates only).
        runs: suite runs spent on it.
        timeouts: runs of it cut off at the run timeout (a mutant that loops forever, or a very loaded machine).
    """

    mutation: Mutation
    verdict: Verdict
    failures: dict[str, str] = field(default_factory=dict)
    test_files: dict[str, str] = field(default_factory=dict)
    runs: int = 0
    timeouts: int = 0


@dataclass
class SynthReport:
    """Figures of one `synth` run, also written to `summary.json`."""

    project: str
    image: str
    seed: int
    workers: int
    max_tasks: int
    max_fail_to_pass: int
    baseline_tests: int = 0
    covered_functions: int = 0
    candidates_available: int = 0
    candidates_tried: int = 0
    accepted: int = 0
    suite_runs: int = 0
    timed_out_runs: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    setup_seconds: float = 0.0
    out_dir: str = ""

    @property
    def tasks_per_minute(self) -> float:
        """Accepted (validated by the review's gold, rerun and no-op runs) tasks per minute of wall time."""
        return 60.0 * self.accepted / self.seconds if self.seconds else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "image": self.image,
            "seed": self.seed,
            "workers": self.workers,
            "max_tasks": self.max_tasks,
            "max_fail_to_pass": self.max_fail_to_pass,
            "baseline_tests": self.baseline_tests,
            "covered_functions": self.covered_functions,
            "candidates_available": self.candidates_available,
            "candidates_tried": self.candidates_tried,
            "accepted": self.accepted,
            "suite_runs": self.suite_runs,
            "timed_out_runs": self.timed_out_runs,
            "reasons": dict(self.reasons.most_common()),
            "seconds": round(self.seconds, 2),
            "setup_seconds": round(self.setup_seconds, 2),
            "tasks_per_minute": round(self.tasks_per_minute, 2),
            "out_dir": self.out_dir,
        }


# -- candidates ---------------------------------------------------------------------------------------------------


def candidates(spec: ProjectSpec, coverage: Coverage, seed: int, max_per_function: int | None = None) -> list[Mutation]:
    """Seeded bug candidates in the covered functions of every library file, in rounds: every function's first
    candidate (in a seeded order across files), then every function's second, and so on, so that a run stopped
    early has spread its tasks over the functions.

    >>> cov = Coverage({"m.py": "def f(a, b):\\n    return a < b\\n"}, {"m.py": {2}})
    >>> spec = ProjectSpec(name="m", version="1.0", sdist_sha256="0" * 64, source_paths=["m.py"])
    >>> sorted(m.operator for m in candidates(spec, cov, seed=0))
    ['swap_comparison', 'wrong_return']
    """
    found: list[Mutation] = []
    for path, text in sorted(coverage.files.items()):
        functions = coverage.functions_in(path, text)
        if functions:
            found.extend(mutations(path, text, seed, functions=functions, max_per_function=max_per_function))
    random.Random(f"{seed}:{spec.requirement}").shuffle(found)
    seen: Counter[tuple[str, str]] = Counter()
    ranked = []
    for mutation in found:
        key = (mutation.path, mutation.function)
        ranked.append((seen[key], mutation))
        seen[key] += 1
    return [mutation for _, mutation in sorted(ranked, key=lambda pair: pair[0])]


# -- tasks --------------------------------------------------------------------------------------------------------


def task_env(spec: ProjectSpec) -> dict[str, str]:
    """The environment of a task's shell: the suite's (no bytecode, one hash seed) and the spec's."""
    return {**RUN_ENV, **spec.env}


def task_test_command(spec: ProjectSpec) -> str:
    """The suite exactly as the baseline ran it (env, pytest args, ignores, deselects, test paths), for grading.

    >>> spec = ProjectSpec(name="m", version="1.0", sdist_sha256="0" * 64, source_paths=["m"], env={"A": "1"})
    >>> task_test_command(spec)
    'export PYTHONDONTWRITEBYTECODE=1 PYTHONHASHSEED=0 A=1 && python3 -m pytest -p no:cacheprovider -q tests'
    """
    exports = " ".join(f"{key}={shlex.quote(value)}" for key, value in task_env(spec).items())
    args = [
        *spec.pytest_args,
        *(f"--ignore={path}" for path in spec.ignore),
        *(f"--deselect={test_id}" for test_id in spec.deselect),
        *spec.test_paths,
    ]
    return f"export {exports} && {spec.test_command} {shlex.join(args)}"


def make_task(project: ProjectImage, evaluation: Evaluation, instance_id: str, seed: int) -> SWETask:
    """The SWETask of an accepted candidate: the bug as `setup_patch`, its reverse as `patch`, hidden test files."""
    spec, mutation, verdict = project.spec, evaluation.mutation, evaluation.verdict
    command = task_test_command(spec)
    failures = {test: evaluation.failures.get(test, "") for test in verdict.fail_to_pass}
    return SWETask(
        instance_id=instance_id,
        repo=spec.name,
        base_commit="",
        problem_statement=problem_statement(mutation, failures, seed),
        patch=mutation.gold_patch,
        setup_patch=mutation.diff,
        FAIL_TO_PASS=verdict.fail_to_pass,
        PASS_TO_PASS=verdict.pass_to_pass,
        version=spec.version,
        image=project.image,
        workdir=WORKDIR,
        test_command=command,
        test_files=evaluation.test_files,
        env=task_env(spec),
        expert_turns=expert_turns(mutation, WORKDIR, command),
        extra={
            "project": spec.requirement,
            "path": mutation.path,
            "function": mutation.function,
            "operator": mutation.operator,
            "line": mutation.line,
            "seed": seed,
        },
    )


def failure_texts(report: str) -> dict[str, str]:
    """Test id -> failure (or error) message and text, for the failed tests of a junit report (xunit1)."""
    cases = list(ElementTree.fromstring(report).iter("testcase"))
    modules = {c.get("file", "").removesuffix(".py").replace("/", ".") for c in cases if c.get("file")}
    texts = {}
    for case in cases:
        for tag in ("failure", "error"):
            element = case.find(tag)
            if element is not None:
                parts = [element.get("message", ""), element.text or ""]
                texts[_node_id(case, modules)] = "\n".join(part for part in parts if part.strip())
                break
    return texts


# -- workers ------------------------------------------------------------------------------------------------------


class CandidateSandbox:
    """One worker's sandbox from the project image, reused for every candidate: mutate, run, put the original back.

    Args:
        project: the project image and baseline.
        backend, engine_url: where sandboxes run.
        max_fail_to_pass: the review's cap.
        is_duplicate: asked after the screen, so that a candidate already covered by an accepted one skips the
            rerun and gold runs.
    """

    def __init__(
        self,
        project: ProjectImage,
        backend: str = "docker",
        engine_url: str | None = None,
        max_fail_to_pass: int = DEFAULT_MAX_FAIL_TO_PASS,
        is_duplicate: Callable[[Mutation, list[str]], bool] = lambda mutation, failing: False,
    ) -> None:
        self.project = project
        self.spec = project.spec
        self.baseline = set(project.baseline)
        self.config = sandbox_config(project, backend, engine_url)
        self.cap = max_fail_to_pass
        self.is_duplicate = is_duplicate
        self.run_timeout = self.spec.timeout
        self.timeouts = 0
        self.config = self.config.model_copy(update={"output_limit": REPORT_LIMIT})
        self.sandbox: Sandbox | None = None
        self._test_files: dict[str, str] = {}

    def start(self) -> CandidateSandbox:
        """Start the sandbox and time one run of the unmodified suite (it must pass) to set the runs' timeout."""
        from rock_gym.sandbox.sandbox import Sandbox

        self.sandbox = Sandbox(self.config).start()
        copied = self.sandbox.run(f"rm -rf {PRISTINE} && cp -a {WORKDIR} {PRISTINE}", timeout=300)
        if not copied.ok:
            raise SynthError(f"could not copy {WORKDIR} in the sandbox: {copied.output[-1000:]}")
        started = time.monotonic()
        outcomes = run_suite(self.sandbox, self.spec)
        broken = split_outcomes(self.baseline, outcomes)[0]
        if broken:
            raise SynthError(
                f"{self.spec.requirement}: {len(broken)} baseline tests do not pass in a fresh sandbox from "
                f"{self.project.image} (e.g. {broken[0]}): rebuild it with build_project_image(spec, rebuild=True)"
            )
        self.run_timeout = max(MIN_RUN_TIMEOUT, RUN_TIMEOUT_FACTOR * (time.monotonic() - started))
        return self

    def close(self) -> None:
        if self.sandbox is not None:
            self.sandbox.close()
            self.sandbox = None

    def __enter__(self) -> CandidateSandbox:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def evaluate(self, mutation: Mutation) -> Evaluation:
        """Screen a candidate with one run; a `pending` one gets a rerun, then a run with the gold patch."""
        before = self.timeouts
        try:
            evaluation = self._evaluate(mutation)
            evaluation.timeouts = self.timeouts - before
            return evaluation
        except SandboxError as exc:
            # The mutant took the sandbox down (or the engine hiccuped): start a fresh one for the next candidate.
            self.close()
            self.start()
            return Evaluation(mutation, Verdict(Reason.SUITE_ERROR, detail=f"the sandbox was lost: {exc}"), runs=1)

    def _evaluate(self, mutation: Mutation) -> Evaluation:
        mutant, report = self.run(mutation)
        verdict = review(self.baseline, mutant, None, None, self.cap)
        if verdict.reason is not Reason.PENDING:
            return Evaluation(mutation, verdict, runs=1)
        if self.is_duplicate(mutation, verdict.fail_to_pass):
            detail = f"same failing tests in {mutation.function} as an accepted candidate"
            return Evaluation(mutation, Verdict(Reason.DUPLICATE, verdict.fail_to_pass, detail=detail), runs=1)
        rerun, _ = self.run(mutation)
        gold, _ = self.run(None)  # the gold patch applied to the mutant gives the original file back
        verdict = review(self.baseline, mutant, gold, rerun, self.cap)
        evaluation = Evaluation(mutation, verdict, runs=3)
        if verdict.accepted:
            failures = failure_texts(report)
            evaluation.failures = {test: failures.get(test, "") for test in verdict.fail_to_pass}
            evaluation.test_files = self.test_files(verdict.fail_to_pass)
        return evaluation

    def run(self, mutation: Mutation | None) -> tuple[dict[str, str], str]:
        """One run of the suite, on `mutation` (put back to the original right after) or on the original code.

        Returns the statuses and the junit report; both empty when the run timed out or left no report. The whole
        run (write the mutant, run, restore, print the report) is one shell call: engine file-API calls cost more
        than a short suite's run.
        """
        sandbox = self._sandbox()
        steps = [f"rm -f {SUITE_REPORT}"]
        restore = ""
        if mutation is not None:
            target = shlex.quote(f"{WORKDIR}/{mutation.path}")
            restore = f"cp -p {shlex.quote(f'{PRISTINE}/{mutation.path}')} {target}"
            steps.append(f"{{ {self._write_command(mutation, target)} && {suite_command(self.spec)}; }}; {restore}")
        else:
            steps.append(suite_command(self.spec))
        steps.append(f"if [ -f {SUITE_REPORT} ]; then cat {SUITE_REPORT}; fi")
        result = sandbox.run("; ".join(steps), timeout=self.run_timeout)
        if result.timed_out:
            self.timeouts += 1
            if restore:
                sandbox.run(restore)
            return {}, ""
        report = result.output if not result.truncated else self._read_report()
        if not report.strip():
            return {}, ""
        try:
            return parse_junit(report), report
        except ElementTree.ParseError:
            return {}, ""

    def _write_command(self, mutation: Mutation, target: str) -> str:
        data = mutation.after.encode()
        if len(data) <= INLINE_LIMIT:
            return f"printf %s {base64.b64encode(data).decode()} | base64 -d > {target}"
        self._sandbox().write_file(MUTANT_FILE, data)
        return f"cp {MUTANT_FILE} {target}"

    def _read_report(self) -> str:
        try:
            return str(self._sandbox().read_file(SUITE_REPORT))
        except FileNotFoundError:
            return ""

    def test_files(self, tests: list[str]) -> dict[str, str]:
        """Path -> content (as in the image) of the files holding `tests`."""
        paths = sorted({test.split("::", 1)[0] for test in tests})
        for path in paths:
            if path not in self._test_files:
                self._test_files[path] = str(self._sandbox().read_file(f"{WORKDIR}/{path}"))
        return {path: self._test_files[path] for path in paths}

    def _sandbox(self) -> Sandbox:
        if self.sandbox is None:
            raise RuntimeError("start() the CandidateSandbox first")
        return self.sandbox


class _Committer:
    """Commits evaluations in candidate order: dedupes, writes accepted tasks, counts reasons, says when to stop."""

    def __init__(
        self,
        project: ProjectImage,
        report: SynthReport,
        tasks_path: Path,
        progress: Callable[[SynthProgress], None] | None,
    ) -> None:
        self.project, self.report, self.tasks_path, self.progress = project, report, tasks_path, progress
        self.deduper = Deduper()
        self.accepted_keys: set[tuple[str, str, frozenset[str]]] = set()
        self.pending: dict[int, Evaluation] = {}
        self.next_index = 0
        self.tasks: list[SWETask] = []
        self.done = threading.Event()
        self.lock = threading.Lock()

    def is_duplicate(self, mutation: Mutation, failing: list[str]) -> bool:
        """Whether a committed accepted candidate has the same failing tests in the same function (so this one,
        later in candidate order, would be rejected as a duplicate whatever its rerun and gold runs give)."""
        with self.lock:
            return (mutation.path, mutation.function, frozenset(failing)) in self.accepted_keys

    def add(self, index: int, evaluation: Evaluation) -> None:
        with self.lock:
            self.report.suite_runs += evaluation.runs
            self.report.timed_out_runs += evaluation.timeouts
            self.pending[index] = evaluation
            while self.next_index in self.pending and not self.done.is_set():
                self._commit(self.pending.pop(self.next_index))
                self.next_index += 1

    def _commit(self, evaluation: Evaluation) -> None:
        report = self.report
        verdict = self.deduper.check(evaluation.mutation, evaluation.verdict)
        report.candidates_tried += 1
        report.reasons[verdict.reason.value] += 1
        if verdict.accepted:
            mutation = evaluation.mutation
            self.accepted_keys.add((mutation.path, mutation.function, frozenset(verdict.fail_to_pass)))
            instance_id = f"{normalize_name(self.project.spec.name)}.{report.seed}.{report.accepted + 1}"
            task = make_task(self.project, evaluation, instance_id, report.seed)
            with self.tasks_path.open("a") as stream:
                stream.write(task.model_dump_json() + "\n")
            self.tasks.append(task)
            report.accepted += 1
            if report.accepted >= report.max_tasks:
                self.done.set()
        if self.progress is not None:
            tried, available = report.candidates_tried, report.candidates_available
            self.progress(SynthProgress(tried, report.accepted, report.max_tasks, available, verdict.reason))


def synth(
    project_spec: ProjectSpec,
    max_tasks: int,
    out_dir: str | Path,
    backend: str = "docker",
    workers: int = 2,
    seed: int = 0,
    max_fail_to_pass: int = DEFAULT_MAX_FAIL_TO_PASS,
    max_per_function: int | None = None,
    progress: Callable[[SynthProgress], None] | None = None,
    engine_url: str | None = None,
) -> SynthReport:
    """Synthesize up to `max_tasks` verified bug-fix tasks from a real project into `out_dir`.

    Writes `out_dir/tasks.jsonl` (one `SWETask` a line, in candidate order; load with `rock_gym.tasks.load(out_dir)`)
    and `out_dir/summary.json` (`SynthReport.to_json`). The same spec and seed give the same tasks.

    Args:
        project_spec: the project (see `rock_gym.tasks.synth.specs`).
        max_tasks: stop once this many candidates are accepted.
        out_dir: where to write; an existing tasks.jsonl there is replaced.
        backend, engine_url: the engine that builds the project image and runs the sandboxes.
        workers: sandboxes evaluating candidates in parallel.
        seed: picks the candidates, their order and the statements' wording.
        max_fail_to_pass: the most FAIL_TO_PASS tests an accepted task may have.
        max_per_function: the most candidates drawn per covered function (None: every valid mutation).
        progress: called after each candidate's verdict is committed.

    Raises:
        SynthError: the baseline does not pass in a fresh sandbox, or there are no candidates.
        rock_gym.tasks.synth.BuildError: the project image could not be built.
    """
    started = time.monotonic()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    project = build_project_image(project_spec, backend, engine_url)
    coverage = project_coverage(project, backend, engine_url)
    found = candidates(project_spec, coverage, seed, max_per_function)
    report = SynthReport(
        project=project_spec.requirement,
        image=project.image,
        seed=seed,
        workers=workers,
        max_tasks=max_tasks,
        max_fail_to_pass=max_fail_to_pass,
        baseline_tests=len(project.baseline),
        covered_functions=len(coverage.functions()),
        candidates_available=len(found),
        out_dir=str(out),
    )
    if not found:
        raise SynthError(
            f"{project_spec.requirement}: no candidate bug in its {report.covered_functions} covered functions"
        )
    tasks_path = out / TASKS_FILE
    tasks_path.write_text("")
    committer = _Committer(project, report, tasks_path, progress)
    report.setup_seconds = time.monotonic() - started
    _run_workers(project, found, committer, workers, backend, engine_url, max_fail_to_pass)
    report.seconds = time.monotonic() - started
    (out / SUMMARY_FILE).write_text(json.dumps(report.to_json(), indent=1) + "\n")
    return report


def _run_workers(
    project: ProjectImage,
    found: list[Mutation],
    committer: _Committer,
    workers: int,
    backend: str,
    engine_url: str | None,
    cap: int,
) -> None:
    """Evaluate candidates on `workers` threads, each with its own sandbox, until done or out of candidates."""
    queue = iter(enumerate(found))
    queue_lock = threading.Lock()
    errors: list[BaseException] = []

    def next_candidate() -> tuple[int, Mutation] | None:
        with queue_lock:
            if committer.done.is_set() or errors:
                return None
            return next(queue, None)

    def work() -> None:
        try:
            with CandidateSandbox(project, backend, engine_url, cap, committer.is_duplicate) as runner:
                while (item := next_candidate()) is not None:
                    committer.add(item[0], runner.evaluate(item[1]))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
            errors.append(exc)

    threads = [threading.Thread(target=work, name=f"synth-{n}", daemon=True) for n in range(max(1, workers))]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.5)
    except KeyboardInterrupt:
        committer.done.set()  # workers finish their current candidate and close their sandboxes
        for thread in threads:
            thread.join()
        raise
    if errors:
        raise errors[0]
