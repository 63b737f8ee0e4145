"""runc against runsc (gVisor): start-to-ready, per-call latency and a SWE task's test-suite run, per engine.

Both runtimes are measured in the same run, interleaved: every repetition runs runc and runsc back to back (in
alternating order), so load drift on the machine hits both alike. Failures are recorded, not raised.

    python benchmarks/runtime_compare.py                          # docker and podman
    python benchmarks/runtime_compare.py --backend docker --short
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runner import summary_ms, timed, write  # noqa: E402

from rock_gym.sandbox import DEFAULT_IMAGE, Sandbox, SandboxConfig  # noqa: E402
from rock_gym.tasks import verify as grading  # noqa: E402
from rock_gym.tasks.builtin import builtin_swe_tasks  # noqa: E402
from rock_gym.tasks.model import SWETask  # noqa: E402

RUNTIMES = ("runc", "runsc")
CHUNK_CALLS = 100
SINGLE_CALLS = 100
SUITE_TIMEOUT = 300.0
# Files that cross the engine's archive API (the gold patch in, the junit report out) stay off /tmp: under runsc
# /tmp is gVisor's own tmpfs, which the engine cannot see, so verify.py's /tmp defaults fail there. Same for both.
GOLD_PATCH = "/var/tmp/rock_gym_gold.patch"
JUNIT_REPORT = "/var/tmp/rock_gym_junit.xml"
FIGURES = ("start_to_ready", "call_in_chunk", "single_call", "suite")


class Failures(list[str]):
    """Exception messages, one line each, labelled with what was being measured."""

    def record(self, label: str, exc: BaseException) -> None:
        self.append(f"{label}: {type(exc).__name__}: {str(exc)[:600]}")


def rounds(n: int) -> Iterator[tuple[str, ...]]:
    """The runtime order of each of n repetitions; flipped every time so that neither always goes first."""
    for i in range(n):
        yield RUNTIMES if i % 2 == 0 else RUNTIMES[::-1]


def start_to_ready(configs: dict[str, SandboxConfig], n: int, failures: Failures) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {runtime: [] for runtime in configs}
    for order in rounds(n):
        for runtime in order:
            sb = Sandbox(configs[runtime])
            try:
                sb.start()
                times[runtime].append(sb.startup_seconds or 0.0)
            except Exception as exc:
                failures.record(f"{configs[runtime].backend} {runtime} start", exc)
            finally:
                sb.close()
    return times


def open_sandboxes(
    configs: dict[str, SandboxConfig], what: str, failures: Failures, prepare: Callable[[Sandbox], None] | None = None
) -> dict[str, Sandbox]:
    """A started (and prepared) sandbox per runtime; a runtime whose sandbox fails is left out and recorded."""
    sandboxes = {}
    for runtime, config in configs.items():
        sb = Sandbox(config)
        try:
            sb.start()
            if prepare is not None:
                prepare(sb)
            sandboxes[runtime] = sb
        except Exception as exc:
            failures.record(f"{config.backend} {runtime} {what}", exc)
            sb.close()
    return sandboxes


def interleaved(
    sandboxes: dict[str, Sandbox], n: int, measure: Callable[[Sandbox], float], what: str, failures: Failures
) -> dict[str, list[float]]:
    """n measurements per open sandbox, alternating between runtimes; a runtime that fails is dropped."""
    values: dict[str, list[float]] = {runtime: [] for runtime in sandboxes}
    broken: set[str] = set()
    for order in rounds(n):
        for runtime in order:
            if runtime not in sandboxes or runtime in broken:
                continue
            try:
                values[runtime].append(measure(sandboxes[runtime]))
            except Exception as exc:
                failures.record(f"{sandboxes[runtime].config.backend} {runtime} {what}", exc)
                broken.add(runtime)  # one message, not one per repetition
    return values


def call_in_chunk(sb: Sandbox) -> float:
    """Seconds per call of `true` inside one chunk of CHUNK_CALLS calls (the chunk's wall time, divided)."""
    results: list[Any] = []
    seconds = timed(lambda: results.extend(sb.run_many(["true"] * CHUNK_CALLS)))
    if any(r.exit_code != 0 for r in results):
        raise RuntimeError(f"`true` failed in a chunk: {[r.output for r in results if r.exit_code != 0][:1]}")
    return seconds / CHUNK_CALLS


def single_call(sb: Sandbox) -> float:
    return timed(lambda: sb.run("true"))


def call_latency(configs: dict[str, SandboxConfig], chunks: int, failures: Failures) -> dict[str, dict[str, Any]]:
    sandboxes = open_sandboxes(configs, "call sandbox", failures)
    try:
        chunked = interleaved(sandboxes, chunks, call_in_chunk, "call in chunk", failures)
        single = interleaved(sandboxes, SINGLE_CALLS, single_call, "single call", failures)
    finally:
        for sb in sandboxes.values():
            sb.close()
    return {"call_in_chunk": chunked, "single_call": single}


def prepare_swe(task: SWETask) -> Callable[[Sandbox], None]:
    """Set the task up as the env does at reset, apply the gold patch, then the hidden tests (as grading does)."""

    def prepare(sb: Sandbox) -> None:
        root = sb.as_root()
        base = grading.setup_swe(root, task)  # type: ignore[arg-type]
        grading.apply_patch(root, task.workdir, task.patch, path=GOLD_PATCH)  # type: ignore[arg-type]
        grading.apply_hidden_tests(root, task, base)  # type: ignore[arg-type]

    return prepare


def suite_runs(
    backend: str, task: SWETask, runs: int, failures: Failures
) -> tuple[dict[str, list[float]], dict[str, list[bool]]]:
    """Seconds of `run_swe_tests` (the test command, plus its junit report read back) and whether it resolved."""
    configs = {
        runtime: SandboxConfig(backend=backend, runtime=runtime, image=task.image, workdir=task.workdir, env=task.env)
        for runtime in RUNTIMES
    }
    sandboxes = open_sandboxes(configs, "suite setup", failures, prepare_swe(task))
    resolved: dict[str, list[bool]] = {runtime: [] for runtime in sandboxes}

    def measure(sb: Sandbox) -> float:
        grades: list[grading.SWEGrade] = []

        def run() -> None:
            grade = grading.run_swe_tests(sb.as_root(), task, timeout=SUITE_TIMEOUT, report_path=JUNIT_REPORT)  # type: ignore[arg-type]
            grades.append(grade)

        seconds = timed(run)
        resolved[sb.config.runtime].append(grades[0].resolved)
        return seconds

    try:
        times = interleaved(sandboxes, runs, measure, "suite", failures)
    finally:
        for sb in sandboxes.values():
            sb.close()
    return times, resolved


def engine_figures(backend: str, image: str, task: SWETask | None, args: argparse.Namespace) -> dict[str, Any]:
    failures = Failures()
    configs = {runtime: SandboxConfig(backend=backend, runtime=runtime, image=image) for runtime in RUNTIMES}
    samples = {"start_to_ready": start_to_ready(configs, args.starts, failures)}
    samples.update(call_latency(configs, args.chunks, failures))
    resolved: dict[str, list[bool]] = {}
    if task is not None:
        samples["suite"], resolved = suite_runs(backend, task, args.suite_runs, failures)
    per_runtime: dict[str, Any] = {}
    for runtime in RUNTIMES:
        figures: dict[str, Any] = {name: summarise(samples.get(name, {}).get(runtime, [])) for name in FIGURES}
        runs = resolved.get(runtime, [])
        figures["suite_passed"] = bool(runs) and all(runs)
        figures["suite_resolved_runs"] = runs
        per_runtime[runtime] = figures
    return {**per_runtime, "runsc_vs_runc": ratios(per_runtime), "failures": list(failures)}


def summarise(seconds: list[float]) -> dict[str, float] | None:
    return summary_ms(seconds) if seconds else None


def median(figures: dict[str, Any], name: str) -> float | None:
    summary = figures.get(name)
    return summary["median_ms"] if summary else None


def ratios(per_runtime: dict[str, Any]) -> dict[str, float | None]:
    """runsc median / runc median of each figure; None where either side has no measurement."""
    out: dict[str, float | None] = {}
    for name in FIGURES:
        runc, runsc = median(per_runtime["runc"], name), median(per_runtime["runsc"], name)
        out[name] = round(runsc / runc, 3) if runc and runsc else None
    return out


def bars_of(engines: dict[str, Any]) -> dict[str, float]:
    labels = {"start_to_ready": "start", "call_in_chunk": "call", "single_call": "round trip", "suite": "suite"}
    bars = {}
    for name, label in labels.items():
        for backend, figures in engines.items():
            for runtime in RUNTIMES:
                value = median(figures[runtime], name)
                if value:
                    bars[f"{backend} {runtime} {label}"] = value
    return bars


def first_task(failures: list[str]) -> SWETask | None:
    try:
        return builtin_swe_tasks()[0]
    except Exception as exc:
        failures.append(f"built-in SWE tasks: {type(exc).__name__}: {exc}")
        return None


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["docker", "podman"], action="append", help="repeatable; default both")
    parser.add_argument("--image", default=DEFAULT_IMAGE, help="image of the start and call measurements")
    parser.add_argument("--starts", type=int, default=10)
    parser.add_argument("--chunks", type=int, default=5)
    parser.add_argument("--suite-runs", type=int, default=3)
    parser.add_argument("--short", action="store_true", help="starts 3, chunks 2, suite-runs 1")
    args = parser.parse_args(argv)
    if args.short:
        args.starts, args.chunks, args.suite_runs = 3, 2, 1
    backends = list(dict.fromkeys(args.backend or ["docker", "podman"]))
    setup_failures: list[str] = []
    task = first_task(setup_failures)
    engines = {backend: engine_figures(backend, args.image, task, args) for backend in backends}
    figures = {
        "image": args.image,
        "task": task.instance_id if task else None,
        "task_image": task.image if task else None,
        "starts": args.starts,
        "chunks": f"{args.chunks} x {CHUNK_CALLS} calls",
        "single_calls": SINGLE_CALLS,
        "suite_runs": args.suite_runs,
        "engines": engines,
        "failures": setup_failures,
    }
    write(
        "runtime_compare",
        figures,
        bars_of(engines),
        "milliseconds (median, log scale)",
        f"runc vs runsc (gVisor): {', '.join(backends)}",
    )
    return figures


if __name__ == "__main__":
    main()
