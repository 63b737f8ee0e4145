"""The --short runs of the rollout and harness benchmarks, as CI runs them: each finishes and writes its figures.

Timings on a shared machine are noise, so only what does not depend on them is held to its target here: identical
trajectories in both collector modes, requests within the budget, the context policies' endings. The async/barrier
ratio is held to a loose floor (the full run's target is 2x).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"

pytestmark = [pytest.mark.container, pytest.mark.slow]


def run_short(script: str, out: Path) -> dict[str, Any]:
    """Run ``benchmarks/SCRIPT --short --out OUT`` and return the figures of the JSON it wrote."""
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--short", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    name = script.removesuffix(".py") + "_short"
    record = json.loads((out / f"{name}.json").read_text())
    assert record["benchmark"] == name and record["machine"]["cpus"]
    if importlib.util.find_spec("matplotlib") is not None:
        assert (out / f"{name}.png").stat().st_size > 0
    return record["figures"]


@pytest.mark.timeout(300)
def test_rollout_throughput_short(docker_engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    figures = run_short("rollout_throughput.py", tmp_path)
    barrier, asynchronous = figures["barrier"], figures["async"]
    assert figures["identical_trajectories"], figures["differing_episodes"]
    episodes, turns = figures["episodes"], figures["script"]["turns"] + 1  # the scripted turns, then the submit
    for mode in (barrier, asynchronous):
        assert mode["turns"] == episodes * turns and mode["env_exceptions"] == 0 and mode["endings"] == ["submitted"]
        assert mode["turns_per_s"] > 0 and mode["slow_steps"] > 0
    assert barrier["mean_batch"] == figures["num_envs"] and asynchronous["mean_batch"] < barrier["mean_batch"]
    assert figures["targets"]["async_vs_barrier_turns_per_s (>= 2)"] > 1.2, figures
    if importlib.util.find_spec("matplotlib") is not None:
        assert (tmp_path / "rollout_throughput_short_timeline.png").stat().st_size > 0


@pytest.mark.timeout(300)
def test_harness_overhead_short(docker_engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("transformers")
    figures = run_short("harness_overhead.py", tmp_path)
    policies, budget = figures["policies"], figures["budget_tokens"]
    assert figures["turns"] == 30 and figures["episode_ending"] == "submitted"
    assert figures["observation_tokens"] > 2 * budget, "the episode must overflow the budget to test the policies"
    assert set(policies) == {"unbounded", "keep", "elide", "drop", "summary", "elide+drop"}
    for name, policy in policies.items():
        assert policy["requests_rebuilt_from_record"], name
        assert policy["overhead"]["n"] > 0 and policy["overhead"]["median_ms"] > 0, name
        if name != "unbounded":
            assert policy["max_request_plus_new_tokens"] <= budget, name
    assert policies["keep"]["ending"] == "context" and policies["keep"]["turns_reached"] < 30
    for name in ("drop", "summary", "elide+drop"):
        assert policies[name]["reached_last_turn"] and policies[name]["segments"] > 1, name
        assert policies[name]["elided_tokens"] > 0, name
    if importlib.util.find_spec("matplotlib") is not None:
        assert (tmp_path / "harness_overhead_short_requests.png").stat().st_size > 0
