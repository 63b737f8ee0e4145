"""`rock-gym train --ray-address` trains IPA on the two-node Ray cluster of conftest.py, and resumes from its
checkpoint (its own module, so that the other run's actors are gone: the cluster has 4 CPUs, a run takes 2 to 4)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from rock_gym.cli import main

pytestmark = [pytest.mark.ray, pytest.mark.container, pytest.mark.slow, pytest.mark.timeout(600)]

FIELDS = {"max_turns": 3, "tasks_per_update": 1, "rollouts_per_task": 2, "max_new_tokens": 8, "rollout_workers": 1}


def test_rock_gym_train_with_a_ray_address_trains_on_the_cluster_and_resumes(ray_cluster, tiny_model, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "run"
    sets = [arg for k, v in FIELDS.items() for arg in ("--set", f"{k}={v}")]
    args = ["train", "--learner", "ipa", "--env", "rock/Terminal-v0", "--policy", f"hf:{tiny_model}", "--out", str(out)]
    result = CliRunner().invoke(main, [*args, "--updates", "1", "--ray-address", ray_cluster.address, *sets])
    assert result.exit_code == 0, result.output
    (row,) = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert row["weight_version"] == 1.0 and row["sync_bytes"] > 0 and row["episodes"] + row["dropped"] == 2
    assert f'ray_address = "{ray_cluster.address}"' in (out / "config.toml").read_text()
    assert (out / "checkpoints" / "1" / "config.json").exists()  # written by learner rank 0
    resumed = CliRunner().invoke(main, ["train", "--resume", str(out), "--updates", "1"])
    assert resumed.exit_code == 0, resumed.output
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(r["update"], r["weight_version"]) for r in rows] == [(1.0, 1.0), (2.0, 2.0)]
