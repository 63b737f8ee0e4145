"""Sandbox load: many sandboxes on few cores, normal chunks beside hostile ones (fork bombs, CPU burns, output floods,
memory hogs, sleeps past their timeout), for a while. Normal chunks must not fail, nor take past their own timeouts;
nothing may be left behind.

    python benchmarks/sandbox_load.py --backend docker --sandboxes 32 --seconds 180
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runner import write  # noqa: E402

from rock_gym.sandbox import Sandbox, SandboxConfig, SandboxError  # noqa: E402
from rock_gym.sandbox.engines import LABEL_OWNER_PID, Engine, wait_until  # noqa: E402

NORMAL_TIMEOUT = 60.0
NORMAL_CHUNK = [
    "cd /tmp && echo $RANDOM > f && cat f > /dev/null && echo wrote",
    "python3 -c 'print(sum(range(200000)))'",
    "ls /usr/bin | wc -l | tr -d ' ' | grep -q . && echo listed",
]
NORMAL_EXPECTED = ["wrote\n", "19999900000\n", "listed\n"]
#: name -> (command, its timeout in seconds)
HOSTILE_CHUNKS = {
    "fork_bomb": ("bomb() { bomb | bomb & }; bomb; sleep 5", 3.0),
    "cpu_burn": ("for i in 1 2 3; do (while :; do :; done) & done; wait", 3.0),
    "output_flood": ("yes 'flood flood flood flood flood flood'", 3.0),
    "memory_hog": ('python3 -c "b = []\nwhile True: b.append(bytearray(32 << 20))"', 10.0),
    "sleep_past_timeout": ("sleep 60", 2.0),
}


@dataclass
class Tally:
    """What the workers saw; shared, guarded by a lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    normal_seconds: list[float] = field(default_factory=list)
    normal_failures: list[str] = field(default_factory=list)
    hostile: Counter[str] = field(default_factory=Counter)
    hostile_lost: Counter[str] = field(default_factory=Counter)
    replaced: int = 0


def run_normal(sandbox: Sandbox, tally: Tally) -> None:
    started = time.perf_counter()
    try:
        results = sandbox.run_many(NORMAL_CHUNK, timeout=NORMAL_TIMEOUT)
        failure = next(
            (
                f"{r.command!r}: exit {r.exit_code}, {r.output[-200:]!r}"
                for r, want in zip(results, NORMAL_EXPECTED, strict=True)
                if r.timed_out or r.exit_code != 0 or r.output != want
            ),
            None,
        )
    except SandboxError as exc:
        failure = f"sandbox lost: {exc}"
    took = time.perf_counter() - started
    with tally.lock:
        tally.normal_seconds.append(took)
        if failure:
            tally.normal_failures.append(failure)


def run_hostile(sandbox: Sandbox, name: str, tally: Tally) -> bool:
    """Run one hostile chunk; True when the sandbox still answers afterwards."""
    command, timeout = HOSTILE_CHUNKS[name]
    with tally.lock:
        tally.hostile[name] += 1
    try:
        sandbox.run(command, timeout=timeout)
        return sandbox.run("echo ok", timeout=20).output.endswith("ok\n")
    except SandboxError:
        with tally.lock:
            tally.hostile_lost[name] += 1
        return False


def worker(config: SandboxConfig, hostile: bool, deadline: float, seed: int, tally: Tally) -> None:
    rng = random.Random(seed)
    sandbox = Sandbox(config).start()
    try:
        while time.monotonic() < deadline:
            if not hostile:
                run_normal(sandbox, tally)
                time.sleep(rng.uniform(0.0, 0.5))
                continue
            if not run_hostile(sandbox, rng.choice(sorted(HOSTILE_CHUNKS)), tally):
                sandbox.close()  # a hostile sandbox that stopped answering is replaced, as an env would reset
                sandbox = Sandbox(config).start()
                with tally.lock:
                    tally.replaced += 1
    finally:
        sandbox.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else float("nan")


def run_load(backend: str = "docker", sandboxes: int = 32, seconds: float = 180.0, hostile_share: float = 0.25) -> dict:
    """Run the load and return its figures (see the module docstring)."""
    config = SandboxConfig(backend=backend, memory="256m", pids_limit=128, output_limit=16_000)  # type: ignore[arg-type]
    hostile_count = max(1, round(sandboxes * hostile_share))
    tally = Tally()
    started = time.monotonic()
    deadline = started + seconds
    with ThreadPoolExecutor(sandboxes) as pool:
        jobs = [pool.submit(worker, config, i < hostile_count, deadline, i, tally) for i in range(sandboxes)]
        errors = [repr(job.exception()) for job in jobs if job.exception() is not None]
    engine = Engine.connect(config)

    def ours() -> list[str]:
        return [c["Id"] for c in engine.labelled_containers() if c["Labels"].get(LABEL_OWNER_PID) == str(os.getpid())]

    wait_until(lambda: not ours(), 15)
    times = tally.normal_seconds
    return {
        "backend": backend,
        "sandboxes": sandboxes,
        "hostile_sandboxes": hostile_count,
        "seconds": round(time.monotonic() - started, 1),
        "normal_chunks": len(times),
        "normal_failures": len(tally.normal_failures),
        "normal_failure_examples": tally.normal_failures[:5],
        "normal_over_timeout": sum(t > NORMAL_TIMEOUT * len(NORMAL_CHUNK) for t in times),
        "normal_p50_s": round(percentile(times, 0.5), 3),
        "normal_p90_s": round(percentile(times, 0.9), 3),
        "normal_p99_s": round(percentile(times, 0.99), 3),
        "normal_max_s": round(max(times, default=float("nan")), 3),
        "hostile_chunks": dict(tally.hostile),
        "hostile_sandbox_lost": dict(tally.hostile_lost),
        "hostile_sandboxes_replaced": tally.replaced,
        "worker_errors": errors,
        "containers_left": len(ours()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["docker", "podman"], default="docker")
    parser.add_argument("--sandboxes", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--hostile-share", type=float, default=0.25)
    args = parser.parse_args()
    figures = run_load(args.backend, args.sandboxes, args.seconds, args.hostile_share)
    bars = {f"normal {q}": figures[f"normal_{q}_s"] for q in ("p50", "p90", "p99")}
    write(f"sandbox_load_{args.backend}", figures, bars, "seconds per normal chunk", "normal chunks under hostile load")
    if figures["normal_failures"] or figures["containers_left"] or figures["worker_errors"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
