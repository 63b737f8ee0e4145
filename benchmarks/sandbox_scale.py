"""Sandbox scale: 16, 32, 64 sandboxes started at once; create-to-ready, failures, memory of an idle sandbox.

Per engine, runtime and level: P50/P99 create-to-ready, the failures' messages, the host memory one idle sandbox
costs (MemAvailable before the starts minus after, over the number started: host-wide, so other work on the host
shows in it, and the drift before the starts says how much) and what its own memory cgroup counts;
then all are closed at once and no rock_gym container may be left. Writes results/sandbox_scale[_short].json and
.png (P50/P99 against concurrency).

    python benchmarks/sandbox_scale.py                          # docker and podman, runc and runsc, 16 32 64
    python benchmarks/sandbox_scale.py --short --backend docker --runtime runc
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runner import RESULTS, pyplot, runtime_of, summary_ms, write  # noqa: E402

from rock_gym.sandbox import DEFAULT_IMAGE, Sandbox, SandboxConfig  # noqa: E402
from rock_gym.sandbox.engines import LABEL_OWNER_PID, Engine, wait_until  # noqa: E402

SETTLE_S = 2.0
CGROUP_ROOT = Path("/sys/fs/cgroup")
MB = 1024 * 1024


# -- starting and closing ----------------------------------------------------------------------------------------


def start_one(config: SandboxConfig) -> Sandbox | str:
    """A started sandbox, or what went wrong (a benchmark records failures, it does not stop at them)."""
    try:
        return Sandbox(config).start()
    except Exception as exc:  # noqa: BLE001
        return f"{type(exc).__name__}: {str(exc)[:300]}"


def start_all(config: SandboxConfig, count: int) -> tuple[list[Sandbox], list[str], float]:
    """Start `count` sandboxes at once, one thread each; the started ones, the failures, and the wall seconds."""
    began = time.perf_counter()
    with ThreadPoolExecutor(count) as pool:
        outcomes = list(pool.map(lambda _: start_one(config), range(count)))
    wall = time.perf_counter() - began
    started = [o for o in outcomes if isinstance(o, Sandbox)]
    return started, [o for o in outcomes if isinstance(o, str)], wall


def close_all(sandboxes: list[Sandbox]) -> float:
    began = time.perf_counter()
    if sandboxes:
        with ThreadPoolExecutor(len(sandboxes)) as pool:
            list(pool.map(lambda sb: sb.close(), sandboxes))
    return time.perf_counter() - began


def ours_left(engine: Engine) -> list[str]:
    """This process's rock_gym containers still there (other work on the host may have its own)."""
    pid = str(os.getpid())
    return [c["Id"] for c in engine.labelled_containers() if (c.get("Labels") or {}).get(LABEL_OWNER_PID) == pid]


# -- memory ------------------------------------------------------------------------------------------------------


def mem_available() -> int:
    """MemAvailable of the host, in bytes."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def memory_cgroup(pid: int) -> Path | None:
    """The memory cgroup directory of a process: the v1 memory controller's, else the v2 unified one."""
    v2 = None
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            candidate = CGROUP_ROOT / "memory" / path.lstrip("/")
            return candidate if candidate.is_dir() else None
        if controllers == "":
            v2 = CGROUP_ROOT / path.lstrip("/")
    return v2 if v2 is not None and (v2 / "memory.current").exists() else None


def cgroup_memory(directory: Path) -> dict[str, int]:
    """Bytes the cgroup is charged (page cache included) and its anonymous (rss) part."""
    v1 = (directory / "memory.usage_in_bytes").exists()
    usage = int((directory / ("memory.usage_in_bytes" if v1 else "memory.current")).read_text())
    stat = dict(line.split() for line in (directory / "memory.stat").read_text().splitlines())
    rss = int(stat.get("total_rss", stat.get("rss", 0)) if v1 else stat.get("anon", 0))
    return {"usage": usage, "rss": rss}


def container_memory(sb: Sandbox) -> dict[str, int] | str:
    assert sb.engine is not None and sb.container_id is not None
    try:
        pid = int(sb.engine.api.inspect_container(sb.container_id)["State"]["Pid"])
        directory = memory_cgroup(pid)
        if directory is None:
            return f"no memory cgroup found for pid {pid}"
        return cgroup_memory(directory)
    except (OSError, ValueError, KeyError) as exc:
        return f"{type(exc).__name__}: {exc}"


def cgroup_figures(sandboxes: list[Sandbox]) -> dict[str, Any]:
    readings = [container_memory(sb) for sb in sandboxes]
    found = [r for r in readings if isinstance(r, dict)]
    figures: dict[str, Any] = {"read": len(found), "of": len(readings)}
    if found:
        figures["median_usage_mb"] = round(statistics.median(r["usage"] for r in found) / MB, 2)
        figures["median_rss_mb"] = round(statistics.median(r["rss"] for r in found) / MB, 2)
    errors = sorted({r for r in readings if isinstance(r, str)})
    if errors:
        figures["errors"] = errors[:3]
    return figures


# -- one level ---------------------------------------------------------------------------------------------------


def p99_ms(seconds: list[float]) -> float:
    ms = sorted(s * 1000 for s in seconds)
    return round(ms[min(len(ms) - 1, int(round(0.99 * (len(ms) - 1))))], 3)


def runtimes_used(sandboxes: list[Sandbox]) -> list[str]:
    """The runtimes a few of the sandboxes got (a config may ask for runsc before the engine layer passes it on)."""
    used = set()
    for sb in sandboxes[:3]:
        assert sb.engine is not None and sb.container_id is not None
        used.add(str(runtime_of(sb.engine, sb.container_id)))
    return sorted(used)


def level_figures(config: SandboxConfig, count: int) -> dict[str, Any]:
    engine = Engine.connect(config)
    # The host's drift over the same settle time with nothing started: the error bar of the host-memory figure.
    quiet = mem_available()
    time.sleep(SETTLE_S)
    available_before = mem_available()
    sandboxes, failures, wall = start_all(config, count)
    try:
        time.sleep(SETTLE_S)
        host_mb = (available_before - mem_available()) / MB
        ready = [sb.startup_seconds for sb in sandboxes if sb.startup_seconds is not None]
        used = runtimes_used(sandboxes)
        figures: dict[str, Any] = {
            "asked": count,
            "started": len(sandboxes),
            "failures": len(failures),
            "failure_messages": [f"{n}x {m}" for m, n in Counter(failures).most_common(5)],
            "start_wall_s": round(wall, 3),
            "create_to_ready": {**summary_ms(ready), "p99_ms": p99_ms(ready)} if ready else {},
            "runtime_used": used,
            "runtime_as_asked": used in ([], [config.runtime]),
            "host_mb_per_idle_sandbox": round(host_mb / len(sandboxes), 2) if sandboxes else None,
            "host_mb_drift_before": round((quiet - available_before) / MB, 2),
            "cgroup_per_sandbox": cgroup_figures(sandboxes),
        }
    finally:
        closed_in = close_all(sandboxes)
    # Removal is synchronous, but give a busy engine a moment before calling a container left behind.
    wait_until(lambda: not ours_left(engine), timeout=10, interval=0.5)
    figures["close_wall_s"] = round(closed_in, 3)
    figures["containers_left"] = len(ours_left(engine))
    return figures


def combo_figures(backend: str, runtime: str, image: str, levels: list[int]) -> dict[str, Any]:
    """All levels on one engine and runtime; what stops it is recorded, not raised."""
    figures: dict[str, Any] = {}
    try:
        config = SandboxConfig(backend=backend, runtime=runtime, image=image)
        Engine.connect(config)
    except Exception as exc:  # noqa: BLE001
        return {"error": f"{type(exc).__name__}: {str(exc)[:500]}"}
    for level in levels:
        try:
            figures[str(level)] = level_figures(config, level)
        except Exception as exc:  # noqa: BLE001
            figures[str(level)] = {"error": f"{type(exc).__name__}: {str(exc)[:500]}"}
    return figures


# -- output ------------------------------------------------------------------------------------------------------


def summary_lines(figures: dict[str, Any]) -> list[str]:
    lines = []
    for combo, levels in figures["results"].items():
        if "error" in levels:
            lines.append(f"{combo}: {levels['error']}")
            continue
        for level, fig in levels.items():
            if "error" in fig:
                lines.append(f"{combo} x{level}: {fig['error']}")
                continue
            ready = fig["create_to_ready"]
            lines.append(
                f"{combo} x{level}: P50 {ready.get('median_ms')} ms, P99 {ready.get('p99_ms')} ms, "
                f"failures {fig['failures']}, idle {fig['host_mb_per_idle_sandbox']} MB/sandbox (host), "
                f"{fig['cgroup_per_sandbox'].get('median_usage_mb')} MB (cgroup), left {fig['containers_left']}"
            )
    return lines


def reached(levels: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """The levels (ascending) of one engine and runtime where some sandbox became ready."""
    if "error" in levels:
        return []
    return sorted(((int(k), v) for k, v in levels.items() if v.get("create_to_ready")), key=lambda kv: kv[0])


def bars_of(figures: dict[str, Any]) -> dict[str, float]:
    """P99 create-to-ready at the highest level reached, per engine and runtime."""
    bars = {}
    for combo, levels in figures["results"].items():
        points = reached(levels)
        if points:
            level, fig = points[-1]
            bars[f"{combo} x{level} P99"] = fig["create_to_ready"]["p99_ms"]
    return bars


def plot_levels(figures: dict[str, Any], path: Path, title: str) -> None:
    """P50 (solid) and P99 (dashed) create-to-ready against concurrency, one colour per engine and runtime."""
    plt = pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, (combo, levels) in enumerate(figures["results"].items()):
        points = [(level, fig["create_to_ready"]) for level, fig in reached(levels)]
        if not points:
            continue
        x = [level for level, _ in points]
        colour = f"C{i}"
        ax.plot(x, [r["median_ms"] for _, r in points], "o-", color=colour, label=f"{combo} P50")
        ax.plot(x, [r["p99_ms"] for _, r in points], "s--", color=colour, label=f"{combo} P99")
    ax.set_xscale("log", base=2)
    ax.set_xticks(figures["levels"], [str(level) for level in figures["levels"]])
    ax.set_xlabel("sandboxes started at once")
    ax.set_ylabel("create-to-ready ms")
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", action="append", choices=["docker", "podman"], help="repeatable; default both")
    parser.add_argument("--runtime", action="append", choices=["runc", "runsc"], help="repeatable; default both")
    parser.add_argument("--levels", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--image", default=DEFAULT_IMAGE)
    parser.add_argument("--short", action="store_true", help="levels 4 and 8: a few minutes, for CI")
    args = parser.parse_args(argv)
    args.backend = args.backend or ["docker", "podman"]
    args.runtime = args.runtime or ["runc", "runsc"]
    if args.short:
        args.levels = [4, 8]
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    figures: dict[str, Any] = {"image": args.image, "levels": args.levels, "results": {}}
    for backend in args.backend:
        for runtime in args.runtime:
            figures["results"][f"{backend}/{runtime}"] = combo_figures(backend, runtime, args.image, args.levels)
    figures["summary"] = summary_lines(figures)
    # Short runs (CI) keep apart from the full run's record.
    name = "sandbox_scale" + ("_short" if args.short else "")
    title = f"rock_gym sandboxes started at once ({', '.join(args.backend)})"
    write(name, figures, bars_of(figures), "milliseconds (P99 create-to-ready, log scale)", title)
    # The lines say more than runner.write's bars: they replace its PNG.
    plot_levels(figures, RESULTS / f"{name}.png", title)
    return figures


if __name__ == "__main__":
    main()
