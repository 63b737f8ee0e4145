"""Env throughput: SWE reset vs a bare container run, the env's per-step overhead, and a vector env's steps/s.

    python benchmarks/env_throughput.py --backend docker     # or podman

(a) `reset` of a built-in SWE task (and the `close` that removes its container) against
    `ENGINE run --rm IMAGE true` (which starts, runs and removes), measured in the same run;
(b) what a step costs beyond its commands: step wall time minus the tool results' own durations, for one `true`;
(c) `gym.make_vec("rock/Terminal-v0", num_envs=N)` stepping a cheap bash action: failures and steps/s.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runner import summary_ms, timed, write  # noqa: E402
from sandbox_latency import bare_run  # noqa: E402

import rock_gym.envs  # noqa: E402, F401 - registers rock/*
from rock_gym.envs.record import StepInfo  # noqa: E402
from rock_gym.envs.swe import SWEEnv  # noqa: E402
from rock_gym.envs.vector import env_info  # noqa: E402
from rock_gym.sandbox import DEFAULT_IMAGE  # noqa: E402
from rock_gym.tasks import builtin_swe_tasks  # noqa: E402
from rock_gym.tools import ToolCall, get_format  # noqa: E402

TRUE = get_format("hermes").render([ToolCall("bash", {"command": "true"})])
CHEAP = get_format("hermes").render([ToolCall("bash", {"command": "echo ok"})])


def swe_resets(backend: str, n: int) -> tuple[list[float], list[float]]:
    """Seconds per `reset` of a built-in SWE task (sandbox start + task setup), and per `close` (its removal)."""
    tasks = builtin_swe_tasks()
    env = SWEEnv(tasks=tasks, backend=backend)
    resets, closes = [], []
    try:
        for i in range(n):
            options = {"task_id": tasks[i % len(tasks)].instance_id}
            resets.append(timed(lambda: env.reset(options=options)))  # noqa: B023 - called at once
            closes.append(timed(env.close))
    finally:
        env.close()
    return resets, closes


def step_overheads(backend: str, n: int) -> tuple[list[float], list[float]]:
    """Per step of one `true` call: the env's overhead (wall time minus the call's own duration), and the wall time."""
    env = SWEEnv(tasks=builtin_swe_tasks(), backend=backend, max_turns=n + 10)
    overheads, walls = [], []
    try:
        env.reset(seed=0)
        for _ in range(5):  # warm up the session
            env.step(TRUE)
        for _ in range(n):
            started = time.perf_counter()
            *_, info = env.step(TRUE)
            wall = time.perf_counter() - started
            walls.append(wall)
            overheads.append(wall - sum(result.duration for result in StepInfo.from_info(info).tool_results))
    finally:
        env.close()
    return overheads, walls


def failures(infos: dict[str, Any], num_envs: int) -> int:
    """Envs of a vector step whose info reports an error, a format error, or a failed or timed-out call."""
    steps = [StepInfo.from_info(env_info(infos, i)) for i in range(num_envs)]
    return sum(
        bool(step.error or step.format_error or step.verifier_error)
        or any(result.timed_out or result.exit_code != 0 for result in step.tool_results)
        for step in steps
    )


def vector_run(backend: str, num_envs: int, steps: int) -> dict[str, Any]:
    """`steps` vector steps of a cheap bash action over `num_envs` Terminal envs."""
    envs = gym.make_vec("rock/Terminal-v0", num_envs=num_envs, backend=backend)
    bad = 0
    try:
        reset_s = timed(lambda: envs.reset(seed=0))
        step_times = []
        for _ in range(steps):
            started = time.perf_counter()
            *_, info = envs.step([CHEAP] * num_envs)
            step_times.append(time.perf_counter() - started)
            bad += failures(info, num_envs)
    finally:
        envs.close()
    return {
        "num_envs": num_envs,
        "steps": steps,
        "reset_s": round(reset_s, 3),
        "vector_step": summary_ms(step_times),
        "env_steps_per_s": round(num_envs * steps / sum(step_times), 1),
        "failures": bad,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["docker", "podman"], default="docker")
    parser.add_argument("--resets", type=int, default=20)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--num-envs", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--vector-steps", type=int, default=10)
    args = parser.parse_args()

    resets, closes = swe_resets(args.backend, args.resets)
    bare = bare_run(args.backend, DEFAULT_IMAGE, args.resets)
    overheads, walls = step_overheads(args.backend, args.steps)
    vectors = {f"vector_{n}x{args.vector_steps}": vector_run(args.backend, n, args.vector_steps) for n in args.num_envs}

    figures: dict[str, Any] = {
        "backend": args.backend,
        "image": DEFAULT_IMAGE,
        "swe_reset": summary_ms(resets),
        "swe_close": summary_ms(closes),
        "bare_run_true": summary_ms(bare),
        "step_true_wall": summary_ms(walls),
        "step_overhead": summary_ms(overheads),
        **vectors,
    }
    figures["targets"] = {
        "step_overhead_median_ms (<= 5)": figures["step_overhead"]["median_ms"],
        "swe_reset_and_close_vs_bare_run": round(
            (figures["swe_reset"]["median_ms"] + figures["swe_close"]["median_ms"])
            / figures["bare_run_true"]["median_ms"],
            3,
        ),
        "swe_reset_vs_bare_run": round(figures["swe_reset"]["median_ms"] / figures["bare_run_true"]["median_ms"], 3),
        "vector_failures (== 0)": sum(v["failures"] for v in vectors.values()),
    }
    bars = {
        "SWE reset": figures["swe_reset"]["median_ms"],
        f"{args.backend} run --rm true": figures["bare_run_true"]["median_ms"],
        "step (true), wall": figures["step_true_wall"]["median_ms"],
        "step overhead": figures["step_overhead"]["median_ms"],
        **{f"vector step, N={v['num_envs']}": v["vector_step"]["median_ms"] for v in vectors.values()},
    }
    write(
        "env_throughput",
        figures,
        bars,
        "milliseconds (median, log scale)",
        f"rock_gym env throughput ({args.backend})",
    )


if __name__ == "__main__":
    main()
