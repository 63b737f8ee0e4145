"""Sandbox latency: start-to-ready, per-call round trip, chunks, warm pool, 16 concurrent sandboxes.

Each figure is measured in the same run as the plain-engine figure it is compared with.

    python benchmarks/sandbox_latency.py --backend docker     # or podman
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runner import summary_ms, timed, write  # noqa: E402

from rock_gym.sandbox import DEFAULT_IMAGE, Sandbox, SandboxConfig, SandboxPool  # noqa: E402
from rock_gym.sandbox.engines import Engine  # noqa: E402

CHUNK = ["true", "echo hello", "ls / > /dev/null"]


def start_to_ready(config: SandboxConfig, n: int) -> list[float]:
    times = []
    for _ in range(n):
        sb = Sandbox(config)
        times.append(timed(sb.start))
        sb.close()
    return times


def bare_run(cli: str, image: str, n: int) -> list[float]:
    return [
        timed(
            lambda: subprocess.run(
                [cli, "run", "--rm", "--network", "none", image, "true"], check=True, capture_output=True
            )
        )
        for _ in range(n)
    ]


def call_round_trips(sb: Sandbox, n: int) -> tuple[list[float], list[float]]:
    """Per-call cost of `true` inside a chunk of n calls, and of whole 3-call chunks."""
    per_call = []
    for _ in range(20):
        results = sb.run_many(["true"] * n)
        per_call.append(sum(r.duration for r in results) / n)
    chunks = [timed(lambda: sb.run_many(CHUNK)) for _ in range(100)]
    return per_call, chunks


def exec_round_trips(engine: Engine, cli: str, container_id: str, n: int) -> tuple[list[float], list[float]]:
    sdk = [timed(lambda: engine.client.containers.get(container_id).exec_run(["true"])) for _ in range(n)]
    plain = [timed(lambda: subprocess.run([cli, "exec", container_id, "true"], check=True)) for _ in range(n)]
    return sdk, plain


def pool_acquire(config: SandboxConfig, n: int) -> list[float]:
    times = []
    with SandboxPool(config, size=4) as pool:
        for _ in range(n):
            pool.wait_full(timeout=120)
            started = time.perf_counter()
            sb = pool.acquire()
            times.append(time.perf_counter() - started)
            sb.close()
    return times


def concurrent_sandboxes(config: SandboxConfig, count: int, chunks: int) -> dict[str, float]:
    failures = 0

    def work(_: int) -> int:
        bad = 0
        with Sandbox(config) as sb:
            for _ in range(chunks):
                results = sb.run_many(CHUNK)
                bad += sum(1 for r in results if r.exit_code != 0)
        return bad

    started = time.perf_counter()
    with ThreadPoolExecutor(count) as pool:
        failures = sum(pool.map(work, range(count)))
    return {"wall_s": round(time.perf_counter() - started, 3), "failures": failures}


def concurrent_exec_run(engine: Engine, config: SandboxConfig, count: int, chunks: int) -> dict[str, float]:
    """The same work with the docker SDK: a container per worker, one exec_run per call."""
    spec = engine.container_spec(config)

    def work(_: int) -> int:
        bad = 0
        container_id = engine.api.create_container(**spec)["Id"]
        try:
            engine.api.start(container_id)
            container = engine.client.containers.get(container_id)
            for _ in range(chunks):
                for command in CHUNK:
                    bad += container.exec_run(["bash", "-c", command]).exit_code != 0
        finally:
            engine.remove(container_id)
        return bad

    started = time.perf_counter()
    with ThreadPoolExecutor(count) as pool:
        failures = sum(pool.map(work, range(count)))
    return {"wall_s": round(time.perf_counter() - started, 3), "failures": failures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["docker", "podman"], default="docker")
    parser.add_argument("--image", default=DEFAULT_IMAGE)
    parser.add_argument("--starts", type=int, default=20)
    parser.add_argument("--concurrent", type=int, default=16)
    parser.add_argument("--chunks", type=int, default=10)
    args = parser.parse_args()
    config = SandboxConfig(backend=args.backend, image=args.image)
    engine = Engine.connect(config)
    cli = args.backend

    ready = start_to_ready(config, args.starts)
    bare = bare_run(cli, args.image, args.starts)
    with Sandbox(config) as sb:
        assert sb.container_id is not None
        per_call, chunk = call_round_trips(sb, 10)
        sdk_exec, cli_exec = exec_round_trips(engine, cli, sb.container_id, 30)
    acquire = pool_acquire(config, 20)
    ours = concurrent_sandboxes(config, args.concurrent, args.chunks)
    theirs = concurrent_exec_run(engine, config, args.concurrent, args.chunks)
    left = [c["Id"] for c in engine.labelled_containers()]

    figures = {
        "backend": args.backend,
        "image": args.image,
        "start_to_ready": summary_ms(ready),
        "bare_run_true": summary_ms(bare),
        "call_in_chunk": summary_ms(per_call),
        "chunk_of_3": summary_ms(chunk),
        "exec_run_sdk": summary_ms(sdk_exec),
        "exec_cli": summary_ms(cli_exec),
        "pool_acquire": summary_ms(acquire),
        f"concurrent_{args.concurrent}x{args.chunks}_sandbox": ours,
        f"concurrent_{args.concurrent}x{args.chunks}_exec_run": theirs,
        "containers_left": len(left),
    }
    figures["targets"] = {
        "call_vs_exec_run (<= 0.05)": round(
            figures["call_in_chunk"]["median_ms"] / figures["exec_run_sdk"]["median_ms"], 4
        ),
        "start_vs_bare_run (<= 1.5)": round(
            figures["start_to_ready"]["median_ms"] / figures["bare_run_true"]["median_ms"], 3
        ),
        "pool_acquire_median_ms (<= 50)": figures["pool_acquire"]["median_ms"],
        "concurrent_wall_vs_exec_run (<= 0.5)": round(ours["wall_s"] / theirs["wall_s"], 3),
        "concurrent_failures (== 0)": ours["failures"],
        "containers_left (== 0)": len(left),
    }
    bars = {
        "call in chunk": figures["call_in_chunk"]["median_ms"],
        "chunk of 3": figures["chunk_of_3"]["median_ms"],
        "exec_run (SDK)": figures["exec_run_sdk"]["median_ms"],
        f"{cli} exec (CLI)": figures["exec_cli"]["median_ms"],
        "pool acquire": figures["pool_acquire"]["median_ms"],
        "start to ready": figures["start_to_ready"]["median_ms"],
        f"{cli} run --rm true": figures["bare_run_true"]["median_ms"],
    }
    write(
        f"sandbox_latency_{args.backend}",
        figures,
        bars,
        "milliseconds (median, log scale)",
        f"rock_gym sandbox latency ({args.backend})",
    )


if __name__ == "__main__":
    main()
