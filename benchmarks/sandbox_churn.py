"""Sandbox churn: thousands of start -> call -> close cycles in a row; nothing may slow down, spin or be left behind.

Per engine: the first and last cycles' medians (last / first <= 1.2), start against a bare `run --rm IMAGE true`
through the same engine API in the same run (<= 1.5), the engine's CPU when idle afterwards, the storage layer's
entries before and after, and rock_gym containers left. Writes results/sandbox_churn[_runsc][_short].json, its bars
(.png) and the rolling cycle time (_cycles.png); a --short run keeps apart from the full run's record.

    python benchmarks/sandbox_churn.py                        # 2000 cycles on docker and podman, runc
    python benchmarks/sandbox_churn.py --short --backend docker --runtime runsc
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runner import RESULTS, pyplot, runtime_of, summary_ms, timed, write  # noqa: E402

from rock_gym.sandbox import DEFAULT_IMAGE, Sandbox, SandboxConfig  # noqa: E402
from rock_gym.sandbox.config import DEFAULT_ENGINE_URLS  # noqa: E402
from rock_gym.sandbox.engines import LABEL_OWNER_PID, Engine  # noqa: E402

BARE_RUNS = 20
IDLE_WINDOW_S = 10.0
ROLLING = 20
#: A runtime that cannot start anything should not cost thousands of timeouts: give up on the engine after this many.
MAX_FAILURES_IN_A_ROW = 10
#: Marks the bare containers, which must not count as rock_gym sandboxes left behind.
BARE_LABEL = "rock_gym.bench.bare"

T = TypeVar("T")


@dataclass
class Cycle:
    """One start -> call -> close, in seconds."""

    index: int
    start: float
    call: float
    close: float

    @property
    def total(self) -> float:
        return self.start + self.call + self.close


# -- the churn ---------------------------------------------------------------------------------------------------


def one_cycle(config: SandboxConfig, index: int) -> Cycle:
    sb = Sandbox(config)
    try:
        start = timed(sb.start)
        began = time.perf_counter()
        result = sb.run("true")
        call = time.perf_counter() - began
        if result.exit_code != 0:
            raise RuntimeError(f"`true` exited {result.exit_code}: {result.output[-200:]!r}")
    finally:
        close = timed(sb.close)
    return Cycle(index, start, call, close)


def churn(config: SandboxConfig, cycles: int) -> tuple[list[Cycle], list[str]]:
    """Run the cycles in a row; failures are recorded (not raised) and the churn goes on."""
    done: list[Cycle] = []
    failures: list[str] = []
    in_a_row = 0
    for index in range(cycles):
        try:
            done.append(one_cycle(config, index))
            in_a_row = 0
        except Exception as exc:  # noqa: BLE001 - a benchmark reports what broke, it does not stop at it
            failures.append(f"cycle {index}: {type(exc).__name__}: {str(exc)[:300]}")
            in_a_row += 1
            if in_a_row >= MAX_FAILURES_IN_A_ROW:
                failures.append(f"gave up after {MAX_FAILURES_IN_A_ROW} failures in a row, at cycle {index}")
                break
    return done, failures


def sandbox_runtime(engine: Engine, config: SandboxConfig) -> str | None:
    """The runtime a sandbox from `config` gets: a config may ask for runsc before the engine layer passes it on."""
    with Sandbox(config) as sb:
        assert sb.container_id is not None
        return runtime_of(engine, sb.container_id)


def create_bare(engine: Engine, config: SandboxConfig) -> str:
    """A plain `true` container: no init, limits or shell, as `docker run --rm --network none IMAGE true` makes."""
    host_config = engine.api.create_host_config(network_mode="none", runtime=config.runtime)
    return engine.api.create_container(
        config.image, ["true"], network_disabled=True, labels={BARE_LABEL: "1"}, host_config=host_config
    )["Id"]


def bare_runtime(engine: Engine, config: SandboxConfig) -> str | None:
    container_id = create_bare(engine, config)
    try:
        return runtime_of(engine, container_id)
    finally:
        engine.remove(container_id)


def bare_runs(engine: Engine, config: SandboxConfig, n: int) -> list[float]:
    """Bare runs through the engine API (podman's CLI would bypass its service): create, start, wait, remove."""

    def run_once() -> None:
        container_id = create_bare(engine, config)
        try:
            engine.api.start(container_id)
            engine.api.wait(container_id, timeout=60)
        finally:
            engine.remove(container_id)

    return [timed(run_once) for _ in range(n)]


# -- the engine afterwards ---------------------------------------------------------------------------------------


def processes() -> Iterator[tuple[int, list[str]]]:
    """Pid and argv of every process on the host, through /proc (those that exit meanwhile are skipped)."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                yield int(entry), Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace").split("\0")
            except OSError:
                continue


def engine_processes(backend: str) -> list[tuple[int, list[str]]]:
    """Pid and argv of every dockerd, or every `podman ... system service`."""
    found = []
    for pid, argv in processes():
        name = os.path.basename(argv[0])
        if (backend == "docker" and name == "dockerd") or (name == "podman" and "system" in argv and "service" in argv):
            found.append((pid, argv))
    return found


#: Per-container helper processes of the engines: a churn run must not leave them piling up (podman's exec sessions
#: keep two conmon processes each for `exit_command_delay` after they end; `scripts/setup` sets it to 10 s).
HELPERS = ("conmon", "containerd-shim", "containerd-shim-runc-v2", "runsc-gofer", "runsc-sandbox", "runsc")


def helper_processes() -> int:
    return sum(os.path.basename(argv[0]) in HELPERS for _, argv in processes())


def engine_pid(backend: str, url: str) -> int | None:
    """The process serving `url`: one that names its socket, else (for the standard socket) one that names none.

    There may be several (a podman service per runtime, a test's private dockerd).
    """
    processes = engine_processes(backend)
    address = url.removeprefix("unix://")
    for pid, argv in processes:
        if any(address in arg for arg in argv):
            return pid
    if url != DEFAULT_ENGINE_URLS[backend]:
        return None
    unnamed = [pid for pid, argv in processes if not any("://" in arg or arg in ("-H", "--host") for arg in argv)]
    return unnamed[0] if unnamed else None


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_cpu_percent(engine: Engine, window: float) -> dict[str, Any]:
    """The engine's CPU over `window` seconds in which nothing is asked of it (100 = one core busy)."""
    pid = engine_pid(engine.backend, engine.url)
    if pid is None:
        return {"pid": None, "error": f"no process serving {engine.url} found in /proc (a remote engine?)"}
    try:
        before, began = cpu_seconds(pid), time.monotonic()
        time.sleep(window)
        used, took = cpu_seconds(pid) - before, time.monotonic() - began
    except OSError as exc:
        return {"pid": pid, "error": f"could not read /proc/{pid}/stat: {exc}"}
    return {"pid": pid, "window_s": round(took, 2), "cpu_percent": round(100 * used / took, 3)}


def storage_dir(engine: Engine) -> Path | None:
    """The engine's storage-layer directory: DockerRootDir/overlay2 (docker), GraphRoot/overlay (podman)."""
    info = engine.api.info()
    store = libpod_store(engine) if engine.backend == "podman" else {}
    # Podman's compat /info has no `store`, but its DockerRootDir is the same GraphRoot: the fallback.
    root = store.get("graphRoot") or info.get("DockerRootDir")
    driver = store.get("graphDriverName") or info.get("Driver")
    return Path(root) / driver if root and driver else None


def libpod_store(engine: Engine) -> dict[str, Any]:
    """The `store` section of podman's own /libpod/info (the Docker API's /info has none)."""
    try:
        response = engine.api.get(f"{engine.api.base_url}/v4.0.0/libpod/info", timeout=30)
        response.raise_for_status()
        return dict(response.json().get("store") or {})
    except Exception:  # noqa: BLE001 - an older podman: the compat fields will do
        return {}


def count_entries(path: Path | None) -> int | None:
    try:
        return len(os.listdir(path)) if path is not None else None
    except OSError:
        return None


def containers_left(engine: Engine) -> dict[str, int]:
    """rock_gym containers still there: this process's (the figure) and anyone's (other work may be running)."""
    labelled = engine.labelled_containers()
    mine = [c for c in labelled if (c.get("Labels") or {}).get(LABEL_OWNER_PID) == str(os.getpid())]
    return {"ours": len(mine), "any_owner": len(labelled)}


# -- figures -----------------------------------------------------------------------------------------------------


def ratio(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 3) if denominator else None


def window_figures(cycles: list[Cycle]) -> dict[str, Any]:
    if not cycles:
        return {}
    return {
        "cycles": f"{cycles[0].index}..{cycles[-1].index}",
        "cycle": summary_ms([c.total for c in cycles]),
        "start": summary_ms([c.start for c in cycles]),
    }


def attempt(problems: list[str], what: str, action: Callable[[], T]) -> T | None:
    """`action()`, or None with what went wrong added to `problems`: one broken step must not hide the others."""
    try:
        return action()
    except Exception as exc:  # noqa: BLE001
        problems.append(f"{what}: {type(exc).__name__}: {str(exc)[:300]}")
        return None


def summary_or_empty(seconds: list[float]) -> dict[str, float]:
    return summary_ms(seconds) if seconds else {}


def engine_figures(config: SandboxConfig, cycles: int, window: int) -> tuple[dict[str, Any], list[Cycle]]:
    """Everything measured on one engine; an engine that cannot be reached gives an `error` instead."""
    try:
        engine = Engine.connect(config)
        storage = storage_dir(engine)
    except Exception as exc:  # noqa: BLE001
        return {"runtime": config.runtime, "error": f"{type(exc).__name__}: {str(exc)[:500]}"}, []
    entries_before = count_entries(storage)
    helpers_before = helper_processes()
    problems: list[str] = []
    runtime = attempt(problems, "sandbox runtime probe", lambda: sandbox_runtime(engine, config))
    plain_runtime = attempt(problems, "bare runtime probe", lambda: bare_runtime(engine, config))
    bare_before = attempt(problems, "bare runs before", lambda: bare_runs(engine, config, BARE_RUNS)) or []
    done, failures = churn(config, cycles)
    bare_after = attempt(problems, "bare runs after", lambda: bare_runs(engine, config, BARE_RUNS)) or []
    figures: dict[str, Any] = {
        "runtime": config.runtime,
        "runtime_used": {"sandbox": runtime, "bare_run": plain_runtime},
        "cycles_asked": cycles,
        "cycles_done": len(done),
        "failures": len(failures),
        "failure_messages": failures[:10],
        "other_problems": problems,
        "all": {
            "cycle": summary_or_empty([c.total for c in done]),
            "start": summary_or_empty([c.start for c in done]),
            "call": summary_or_empty([c.call for c in done]),
            "close": summary_or_empty([c.close for c in done]),
        },
        "first": window_figures(done[:window]),
        "last": window_figures(done[-window:]),
        "bare_run_before": summary_or_empty(bare_before),
        "bare_run_after": summary_or_empty(bare_after),
        "bare_run": summary_or_empty(bare_before + bare_after),
        "engine_idle_after": idle_cpu_percent(engine, IDLE_WINDOW_S),
        "storage": {"path": str(storage), "entries_before": entries_before, "entries_after": count_entries(storage)},
        "containers_left": containers_left(engine),
        "helper_processes": {"before": helpers_before, "after_idle": helper_processes()},
    }
    figures["targets"] = targets(figures)
    return figures, done


def targets(figures: dict[str, Any]) -> dict[str, Any]:
    return {
        "cycle_last_vs_first (<= 1.2)": last_vs_first(figures, "cycle"),
        "start_last_vs_first": last_vs_first(figures, "start"),
        "start_vs_bare_run (<= 1.5)": ratio(
            figures["all"]["start"].get("median_ms", 0.0), figures["bare_run"].get("median_ms", 0.0)
        ),
        "failures (== 0)": figures["failures"],
        "containers_left (== 0)": figures["containers_left"]["ours"],
        "runtime_as_asked (sandbox, bare run)": [
            used == figures["runtime"] for used in figures["runtime_used"].values()
        ],
        "engine_idle_cpu_percent": figures["engine_idle_after"].get("cpu_percent"),
        "helper_processes_added (== 0)": delta(
            figures["helper_processes"]["before"], figures["helper_processes"]["after_idle"]
        ),
        "storage_entries_added": delta(figures["storage"]["entries_before"], figures["storage"]["entries_after"]),
    }


def last_vs_first(figures: dict[str, Any], what: str) -> float | None:
    first, last = figures["first"], figures["last"]
    return ratio(last[what]["median_ms"], first[what]["median_ms"]) if first and last else None


def delta(before: int | None, after: int | None) -> int | None:
    return after - before if before is not None and after is not None else None


def bars_of(figures: dict[str, Any], backends: list[str]) -> dict[str, float]:
    bars = {}
    for backend in backends:
        fig = figures[backend]
        if not fig.get("first"):
            continue
        bars[f"{backend} cycle, first"] = fig["first"]["cycle"]["median_ms"]
        bars[f"{backend} cycle, last"] = fig["last"]["cycle"]["median_ms"]
        bars[f"{backend} start, first"] = fig["first"]["start"]["median_ms"]
        bars[f"{backend} start, last"] = fig["last"]["start"]["median_ms"]
        bars[f"{backend} run --rm true"] = fig["bare_run"]["median_ms"]
    return bars


def plot_cycles(per_engine: dict[str, list[Cycle]], path: Path, title: str) -> None:
    """Cycle time (rolling median) against cycle number, one line per engine: a slow creep shows as a slope."""
    plt = pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(8, 4))
    for backend, cycles in per_engine.items():
        if len(cycles) < ROLLING:
            continue
        totals = [c.total * 1000 for c in cycles]
        rolling = [statistics.median(totals[i - ROLLING + 1 : i + 1]) for i in range(ROLLING - 1, len(totals))]
        ax.plot([c.index for c in cycles[ROLLING - 1 :]], rolling, label=backend, linewidth=1)
    ax.set_xlabel("cycle")
    ax.set_ylabel(f"cycle ms (rolling median of {ROLLING})")
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", action="append", choices=["docker", "podman"], help="repeatable; default both")
    parser.add_argument("--runtime", choices=["runc", "runsc"], default="runc")
    parser.add_argument("--image", default=DEFAULT_IMAGE)
    parser.add_argument("--cycles", type=int, default=2000)
    parser.add_argument("--window", type=int, default=100, help="cycles in the first and last windows")
    parser.add_argument("--short", action="store_true", help="300 cycles, windows of 50: a few minutes, for CI")
    args = parser.parse_args(argv)
    args.backend = args.backend or ["docker", "podman"]
    if args.short:
        args.cycles, args.window = 300, 50
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    figures: dict[str, Any] = {"runtime": args.runtime, "image": args.image, "cycles": args.cycles}
    figures["window"] = args.window
    per_engine: dict[str, list[Cycle]] = {}
    for backend in args.backend:
        try:
            config = SandboxConfig(backend=backend, runtime=args.runtime, image=args.image)
        except ValueError as exc:  # a SandboxConfig without `runtime` yet
            figures[backend] = {"runtime": args.runtime, "error": f"bad config: {exc}"}
            continue
        figures[backend], per_engine[backend] = engine_figures(config, args.cycles, args.window)
    # Short runs (CI) keep apart from the full run's record.
    name = "sandbox_churn" + ("" if args.runtime == "runc" else f"_{args.runtime}") + ("_short" if args.short else "")
    title = f"rock_gym sandbox churn ({args.runtime}, {args.cycles} cycles)"
    write(name, figures, bars_of(figures, args.backend), "milliseconds (median, log scale)", title)
    plot_cycles(per_engine, RESULTS / f"{name}_cycles.png", title)
    return figures


if __name__ == "__main__":
    main()
