"""A run's actors on Ray: the learners in a placement group, the generator, rollout workers pinned to nodes.

With no address, one local Ray instance is started (and stopped at `close`); with ``"auto"`` or ``"HOST:PORT"`` the
driver joins that cluster. A driver that is already connected (``ray.init`` called before) keeps its connection.
Every node must be able to import rock_gym (installed with the ``hf`` extra) and read the model directory.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from pathlib import Path
from typing import Any

import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from learners.base import trainable_path
from learners.distributed.generator import Generator, choose_engine
from learners.distributed.learner import LearnerWorker, combine_figures, shard_batch
from learners.distributed.rollout import RolloutWorker
from learners.distributed.sync import World, choose_transport
from learners.ipa.chunks import ChunkBatch
from learners.ipa.config import IPAConfig

#: Times Ray restarts a rollout worker whose process died.
RESTARTS = 4
#: Seconds to wait for the learners' placement group (resources a cluster does not have never come).
PLACEMENT_TIMEOUT_S = 600
#: Seconds to wait for a restarting actor to come back.
RESTART_WAIT_S = 300


def when_up(method: Any, *args: Any, timeout_s: float = RESTART_WAIT_S) -> Any:
    """The result of ``method.remote(*args)``, waiting out its actor's restart: Ray fails a call to a restarting
    actor at once (``ActorUnavailableError``); an actor out of restarts (``ActorDiedError``) fails for good."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return ray.get(method.remote(*args))
        except ray.exceptions.ActorUnavailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def connect(address: str | None, cpus: int = 1) -> bool:
    """Connect this process to Ray; whether it was not connected yet (so `Cluster.close` disconnects it, and stops
    the local instance it started). With no ``address``, a local instance with at least ``cpus`` logical CPUs (the
    run's actors need that many to be scheduled, whatever the machine has)."""
    if ray.is_initialized():
        return False
    if address is None:
        # A local instance needs no address but loopback.
        ray.init(num_cpus=max(os.cpu_count() or 1, cpus), log_to_driver=False, _node_ip_address="127.0.0.1")
    else:
        ray.init(address=address, log_to_driver=False)
    return True


def rollout_placement(index: int, resources: list[str] | None) -> dict[str, Any]:
    """Ray options that put rollout worker ``index`` on its node: one unit of its custom resource (cycling through
    ``resources``), or spread over the nodes when none are named.

    >>> rollout_placement(3, ["node_a", "node_b"])
    {'resources': {'node_b': 1}}
    """
    if resources:
        return {"resources": {resources[index % len(resources)]: 1}}
    return {"scheduling_strategy": "SPREAD"}


class Cluster:
    """The actors of one run, and the calls that span them (join, step, weight sync, close).

    Attributes:
        run_id: labels the run's containers (`learners.distributed.rollout.RUN_LABEL`).
        learners: the `LearnerWorker` actors, rank order.
        generators: the `Generator` actors; rollout worker i samples from generator i mod their number.
        workers: the `RolloutWorker` actors.
        transport: how weights reach the generators ("object_store" or "collective").
    """

    def __init__(self, config: IPAConfig) -> None:
        generators = max(1, config.generator_workers)
        self.owns_ray = connect(config.ray_address, cpus=max(1, config.learner_workers) + generators)
        self.run_id = uuid.uuid4().hex[:12]
        path = str(Path(trainable_path(config.policy)).resolve())  # the actors' working directories differ
        env = config.env
        if isinstance(env.tasks, str) and Path(env.tasks).exists():
            env = env.replace(tasks=str(Path(env.tasks).resolve()))
        gpu = int(config.device.startswith("cuda"))
        engine = choose_engine(config.generator, config.device)
        self.transport = choose_transport(config.weight_sync, config.device, engine)
        bundles = [{"CPU": 1.0, "GPU": 1.0} if gpu else {"CPU": 1.0} for _ in range(max(1, config.learner_workers))]
        self.placement = placement_group(bundles, strategy="PACK")
        try:
            ray.get(self.placement.ready(), timeout=PLACEMENT_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            raise RuntimeError(
                f"the cluster cannot place {len(bundles)} learners of {bundles[0]} within {PLACEMENT_TIMEOUT_S} s: "
                "add nodes with those resources, or lower learner_workers"
            ) from None
        self.learners: list[Any] = [
            ray.remote(LearnerWorker)
            .options(num_cpus=1, num_gpus=gpu, scheduling_strategy=PlacementGroupSchedulingStrategy(self.placement, i))
            .remote(config, i)
            for i in range(len(bundles))
        ]
        workers = max(1, config.rollout_workers)
        names = [f"rock_gym-generator-{self.run_id}-{g}" for g in range(generators)]
        callers = -(-workers // generators)  # rollout workers per generator, at most
        self.generators: list[Any] = [
            ray.remote(Generator)
            .options(name=name, num_cpus=1, num_gpus=gpu, max_concurrency=callers + 4)
            .remote(path, engine, config.device)
            for name in names
        ]
        for g in self.generators:
            self._wait_placed(g.describe.remote(), f"{generators} generators (1 CPU{', 1 GPU' if gpu else ''} each)")
        self.workers: list[Any] = [
            ray.remote(RolloutWorker)
            .options(
                num_cpus=0, max_restarts=RESTARTS, max_task_retries=0, **rollout_placement(i, config.rollout_resources)
            )
            .remote(env, path, names[i % generators], f"rollout-{i}", self.run_id)
            for i in range(workers)
        ]
        self._join()

    @staticmethod
    def _wait_placed(ready: Any, what: str) -> None:
        """Wait for a first call to an actor: a cluster without room for it keeps it, and its callers, pending."""
        try:
            ray.get(ready, timeout=PLACEMENT_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            raise RuntimeError(
                f"the cluster cannot place {what} within {PLACEMENT_TIMEOUT_S} s: free resources (another run's "
                "actors?) or add a node"
            ) from None

    def _join(self) -> None:
        """Form the torch.distributed world: the learners, and the generators for the collective transport."""
        address, port = ray.get(self.learners[0].rendezvous_point.remote())
        collective = self.transport == "collective"
        world = World(address, port, len(self.learners), len(self.generators) if collective else 0)
        joining = [learner.join.remote(world) for learner in self.learners]
        if collective:
            joining += [g.join.remote(world, world.learners + i) for i, g in enumerate(self.generators)]
        ray.get(joining)

    # -- the learner step and the weight sync ----------------------------------------------------------------------

    def step(self, batch: ChunkBatch) -> dict[str, float]:
        """One optimizer step of every learner, each on its shard; the step's figures."""
        shards = shard_batch(batch, len(self.learners))
        figures = ray.get([learner.step.remote(s) for learner, s in zip(self.learners, shards, strict=True)])
        return combine_figures(figures, shards)

    def sync(self, version: int) -> tuple[int, float]:
        """Move rank 0's weights to every generator as ``version``; the bytes that arrived (the weights' size times
        the generators) and the seconds it took."""
        began = time.perf_counter()
        if self.transport == "collective":
            _, *received = ray.get(
                [self.learners[0].send.remote(), *[g.receive.remote(version) for g in self.generators]]
            )
            moved = sum(received)
        else:  # one copy in the object store, fetched once per generator's node
            state, size = self.learners[0].state.options(num_returns=2).remote()
            ray.get([g.load.remote(state, version) for g in self.generators])
            moved = ray.get(size) * len(self.generators)
        return int(moved), time.perf_counter() - began

    def set_version(self, version: int) -> None:
        ray.get([g.set_version.remote(version) for g in self.generators])

    # -- checkpoints and tests ----------------------------------------------------------------------------------

    def digests(self) -> dict[str, Any]:
        """Hashes of every learner's weights and of every generator's."""
        return {
            "learners": ray.get([learner.digest.remote() for learner in self.learners]),
            "generators": ray.get([g.digest.remote() for g in self.generators]),
        }

    def where(self) -> list[dict[str, Any]]:
        """Where each rollout worker runs (`RolloutWorker.where`)."""
        return [when_up(worker.where) for worker in self.workers]

    def close(self) -> None:
        """Close the workers' envs (their sandboxes), then end the actors, the placement group and, when this
        process started it, the Ray connection."""
        for worker in self.workers:
            # A restarting worker is waited for: its start removes what its predecessor left. One that cannot come
            # back leaves them to `rock-gym gc` on its node.
            with contextlib.suppress(ray.exceptions.RayError):
                when_up(worker.close)
        for actor in [*self.workers, *self.learners, *self.generators]:
            ray.kill(actor, no_restart=True)
        remove_placement_group(self.placement)
        if self.owns_ray:
            ray.shutdown()
