"""IPA end to end on real containers: `rock-gym train --learner ipa` runs and resumes; a checkpoint gives the same
next update as the run that wrote it; expert starts replay in fresh sandboxes; the imitation term appears when a
start has no success."""

from __future__ import annotations

import json
import math

import pytest
import torch
from click.testing import CliRunner

import learners
from learners.rollout import RolloutStats
from learners.run import Run
from rock_gym.cli import main

pytestmark = pytest.mark.container

SMALL = {
    "tasks_per_update": 1,
    "rollouts_per_task": 2,
    "max_new_tokens": 8,
    "anchors": 2,
    "learning_rate": 1e-3,
}


def test_rock_gym_train_ipa_runs_two_updates_then_resumes(docker: str, tiny_model, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "ipa1"
    sets = [arg for k, v in {**SMALL, "max_turns": 4}.items() for arg in ("--set", f"{k}={v}")]
    args = ["train", "--learner", "ipa", "--env", "rock/Terminal-v0", "--policy", f"hf:{tiny_model}"]
    result = CliRunner().invoke(main, [*args, "--out", str(out), "--updates", "2", "--num-envs", "2", *sets])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["update"] for r in rows] == [1.0, 2.0]
    for row in rows:
        assert row["episodes"] >= 1 and math.isfinite(row["loss"]) and row["tokens"] > 0
        assert 0.0 <= row["masked_fraction"] <= 1.0 and 0.0 <= row["imitation_share"] <= 1.0
    config = (out / "config.toml").read_text()
    assert 'learner = "ipa"' in config and "gamma = 0.95" in config and 'env_id = "rock/Terminal-v0"' in config
    assert (out / "checkpoints" / "2" / "learner_state.pkl").exists() and (out / "metrics.png").exists()
    resumed = CliRunner().invoke(main, ["train", "--resume", str(out), "--updates", "1"])
    assert resumed.exit_code == 0, resumed.output
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["update"] for r in rows] == [1.0, 2.0, 3.0]
    assert (out / "checkpoints" / "3").exists()


def test_a_checkpoint_gives_the_same_next_update_as_the_run_that_wrote_it(docker: str, tiny_model, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = {"policy": f"hf:{tiny_model}", "env_id": "rock/Terminal-v0", "num_envs": 2, "max_turns": 3, **SMALL}
    run = Run.start("ipa", tmp_path / "run", settings)
    try:
        run.train(1)
        again = Run.resume(tmp_path / "run")
        try:
            a, b = run.learner, again.learner
            tasks = a._tasks()
            assert b._tasks() == tasks  # the task RNG was restored
            starts = a.sampler.starts(tasks, 2)
            assert b.sampler.starts(tasks, 2) == starts
            rollouts = a.rollouts(starts, RolloutStats())
            for learner in (a, b):
                batch, _ = learner.batch(starts, rollouts)
                learner.optimize(batch)
            for (name, p), q in zip(a.model.named_parameters(), b.model.parameters(), strict=True):
                assert torch.allclose(p, q, atol=1e-6), name
        finally:
            again.close()
    finally:
        run.close()


def test_expert_starts_replay_in_fresh_sandboxes_and_failed_starts_add_imitation(docker: str, tiny_model) -> None:  # type: ignore[no-untyped-def]
    learner = learners.make(
        "ipa", policy=f"hf:{tiny_model}", env_id="rock/Terminal-v0", num_envs=2, max_turns=4, **SMALL
    )
    try:
        tasks = learner._tasks()
        learner._ensure_experts(tasks)
        expert = learner.sampler.experts[tasks[0]]
        starts = learner.sampler.starts(tasks, 2)
        assert [len(s.prefix) for s in starts] == [0, len(expert.chunks) - 1]
        rollouts = learner.rollouts(starts, RolloutStats())
        late = rollouts[1]
        replayed = [c for c in late.chunks if c.replayed]
        assert [c.observation for c in replayed] == [c.observation for c in expert.chunks[: len(replayed)]]
        batch, groups = learner.batch(starts, rollouts)
        failed_starts = [key for key, group in groups.items() if not any(t.resolved for t in group)]
        assert sum(batch.imitation) > 0 if failed_starts else sum(batch.imitation) == 0
        metrics = learner.optimize(batch)
        assert metrics["tokens"] > 0 and (metrics["imitation_share"] > 0) == bool(failed_starts)
    finally:
        learner.close()
