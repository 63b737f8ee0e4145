"""Distributed IPA on a real two-node Ray cluster (two raylets on this machine): 2 learner actors training with DDP
(gloo), 2 generator actors, 2 rollout workers, one per node, each driving the node's docker.

One run serves every test here (actors take most of a minute to start on 2 cores): it trains two updates with
``max_weight_lag=1`` (the pipelined schedule); the fault test then kills a rollout worker's process mid-episode and
trains on. At the end no container of the run may be left.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

import learners

pytestmark = [pytest.mark.ray, pytest.mark.container, pytest.mark.slow, pytest.mark.timeout(600)]

SMALL = {
    "env_id": "rock/Terminal-v0",
    "num_envs": 1,
    "max_turns": 3,
    "tasks_per_update": 1,
    "rollouts_per_task": 2,
    "max_new_tokens": 8,
    "anchors": 2,
    "learning_rate": 1e-3,
}
RESOURCES = ["node_a", "node_b"]


@dataclass
class Trained:
    learner: Any
    initial: dict[str, Any]
    metrics: list[dict[str, float]]
    after: dict[str, Any]


def run_containers(docker_engine: Any, run_id: str, worker: str | None = None) -> list[dict[str, Any]]:
    labels = [f"rock_gym.run={run_id}"] + ([f"rock_gym.worker={worker}"] if worker else [])
    return docker_engine.api.containers(all=True, filters={"label": labels})


@pytest.fixture(scope="module")
def trained(ray_cluster, tiny_model, docker_engine) -> Iterator[Trained]:  # type: ignore[no-untyped-def]
    learner = learners.make(
        "ipa",
        policy=f"hf:{tiny_model}",
        ray_address=ray_cluster.address,
        rollout_workers=2,
        learner_workers=2,
        generator_workers=2,
        rollout_resources=RESOURCES,
        max_weight_lag=1,
        **SMALL,
    )
    try:
        initial = learner.cluster.digests()
        metrics = learner.train(2)
        yield Trained(learner, initial, metrics, learner.cluster.digests())
    finally:
        run_id = learner.cluster.run_id
        learner.close()
        assert run_containers(docker_engine, run_id) == [], "the run left containers behind"


def test_learners_built_on_ray(trained: Trained) -> None:
    assert type(trained.learner).__name__ == "DistributedIPALearner"
    assert len(trained.learner.cluster.learners) == 2 and len(trained.learner.cluster.workers) == 2
    for row in trained.metrics:
        assert row["episodes"] + row["dropped"] == 2 and row["tokens"] > 0


def test_each_rollout_worker_runs_on_the_node_its_resource_names(trained: Trained, ray_cluster) -> None:  # type: ignore[no-untyped-def]
    import ray

    nodes = {n["NodeID"]: n["Resources"] for n in ray.nodes() if n["Alive"]}
    places = trained.learner.cluster.where()
    for resource, place in zip(RESOURCES, places, strict=True):
        assert resource in place["resources"] and resource in nodes[place["node_id"]]
        others = [r for r in RESOURCES if r != resource]
        assert not any(r in nodes[place["node_id"]] for r in others)
    assert places[0]["node_id"] != places[1]["node_id"]


def test_ddp_learners_hold_identical_weights_and_the_generator_has_them(trained: Trained) -> None:
    learners_now, generators_now = trained.after["learners"], trained.after["generators"]
    assert len(set(learners_now + generators_now)) == 1 and len(generators_now) == 2
    assert learners_now[0] != trained.initial["learners"][0]  # the updates changed the weights
    assert len(set(trained.initial["learners"] + trained.initial["generators"])) == 1


def test_weight_versions_are_recorded_and_never_lag_past_the_limit(trained: Trained) -> None:
    assert [row["weight_version"] for row in trained.metrics] == [1.0, 2.0]
    for row in trained.metrics:
        assert 0 <= row["max_lag"] <= 1
        assert row["sync_bytes"] > 2 * 400_000 and row["sync_seconds"] > 0  # the weights, to each generator
    # The second update's batch was sampled while the first trained: weights 0 or 1, consumed at version 1.
    versions = [c.weight_version for t in trained.learner.last_rollouts for c in t.sampled]
    assert versions and all(v in (0, 1) for v in versions), versions
    # Rollouts asked for now are sampled with the generator's current weights, version 2.
    from learners.rollout import RolloutStats, StartState

    task = trained.learner._tasks()[0]
    fresh = trained.learner.rollouts([StartState(task), StartState(task)], RolloutStats())
    assert {c.weight_version for t in fresh for c in t.sampled} == {2}


def test_a_killed_rollout_worker_is_restarted_its_episodes_replayed_and_nothing_leaks(
    trained: Trained, docker_engine
) -> None:  # type: ignore[no-untyped-def]
    learner = trained.learner
    run_id = learner.cluster.run_id
    victim = learner.cluster.where()[0]
    seen_before = {c["Id"] for c in run_containers(docker_engine, run_id, "rollout-0")}
    killed: list[str] = []

    def kill_mid_episode() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            live = [c for c in run_containers(docker_engine, run_id, "rollout-0") if c["Id"] not in seen_before]
            if live:
                os.kill(victim["pid"], signal.SIGKILL)
                killed.append(live[0]["Id"])
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_mid_episode, daemon=True)
    killer.start()
    metrics = learner.train(2)
    killer.join(timeout=5)

    assert killed, "rollout-0 never started a sandbox to be killed in"
    assert sum(row["rollout_failures"] for row in metrics) >= 1
    for row in metrics:
        assert row["episodes"] + row["dropped"] == 2
    restarted = learner.cluster.where()[0]
    assert restarted["pid"] != victim["pid"] and restarted["node_id"] == victim["node_id"]
    assert restarted["removed_orphans"] >= 1  # the container the dead worker left
    assert not [c for c in run_containers(docker_engine, run_id, "rollout-0") if c["Id"] in killed]
    digests = learner.cluster.digests()
    assert len(set(digests["learners"] + digests["generators"])) == 1
