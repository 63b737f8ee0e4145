"""`DistributedIPALearner`: IPA's update with rollouts, sampling and the optimizer step on Ray actors.

It is `IPALearner` wherever the update decides something: the task draw, the `StartSampler`'s starts, `batch`
(dynamic filtering, chunk returns, imitation targets), `optimize` (the loss, on each learner rank), `_metrics` and
the checkpoint state are the in-process learner's own code. What moves out of this process:

1. rollouts (`Fanout`): the starts are cut into contiguous slices, one per rollout worker, and episode ``j`` keeps
   the seed ``seed + j`` it has in process. A worker that dies mid-slice (its process killed, its node lost) costs
   only time: the slice is played again from the same starts by the next live worker, or by the restarted one;
2. the step (`Cluster.step`): each learner rank runs `IPALearner.optimize` on its shard, gradients summed;
3. the sync (`Cluster.sync`): rank 0's weights go to the generators as version ``updates_done``, and the metrics say
   how many bytes moved and how long it took (``sync_bytes``, ``sync_seconds``).

Weight lag: the batch consumed by update ``d`` (trained from weights version ``d``) is sampled at version
``d − max_weight_lag`` or newer: a generator waits rather than sample with older weights, and every sampled chunk
records its version (``Chunk.weight_version``; ``max_lag`` in the metrics). With a lag of 0 the order is the
in-process one. With 1 or more, the next update's rollouts start as soon as this update's batch is built (so the
sampler has recorded its outcomes) and play while the learners step: at weights ``d``, then ``d + 1`` once synced.

Examples:
    >>> learner = learners.make("ipa", policy="hf:/models/tiny", ray_address="auto", rollout_workers=2,
    ...                         learner_workers=2, rollout_resources=["node_a", "node_b"])        # doctest: +SKIP
    >>> learner.train(1)[0]["sync_bytes"]                                                       # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray

from learners.base import Learner, LearnerConfig
from learners.distributed.cluster import RESTARTS, Cluster, when_up
from learners.ipa.chunks import ChunkBatch
from learners.ipa.config import IPAConfig
from learners.ipa.learner import IPALearner
from learners.ipa.loss import LossSettings
from learners.ipa.resample import StartSampler
from learners.rollout import RolloutStats, StartState
from rock_gym.agent.harness import HarnessConfig
from rock_gym.envs.record import Trajectory


def slices(jobs: int, workers: int) -> list[range]:
    """``jobs`` cut into ``workers`` contiguous slices whose sizes differ by one at most.

    >>> slices(5, 2)
    [range(0, 3), range(3, 5)]
    """
    size, extra = divmod(jobs, workers)
    bounds = [0]
    for w in range(workers):
        bounds.append(bounds[-1] + size + (w < extra))
    return [range(a, b) for a, b in zip(bounds, bounds[1:], strict=False)]


def add_stats(total: RolloutStats, part: RolloutStats) -> None:
    """Add one worker's rollout figures to ``total``."""
    for f in dataclasses.fields(RolloutStats):
        setattr(total, f.name, getattr(total, f.name) + getattr(part, f.name))


@dataclass
class Launch:
    """Rollouts under way: their starts, seed and version floor, and which worker plays which slice."""

    starts: list[StartState]
    seed: int
    min_version: int
    pending: dict[Any, tuple[int, range]] = field(default_factory=dict)
    tries: dict[int, int] = field(default_factory=dict)
    failures: int = 0
    """Slices lost with their worker and played again."""


class Fanout:
    """Starts spread over the rollout workers; a dead worker's slice is played again elsewhere."""

    def __init__(self, workers: Sequence[Any], config: IPAConfig) -> None:
        self.workers, self.config = list(workers), config

    def launch(self, starts: Sequence[StartState], seed: int, min_version: int) -> Launch:
        launch = Launch(list(starts), seed, min_version)
        for index, jobs in enumerate(slices(len(starts), len(self.workers))):
            if jobs:
                self._submit(launch, index, jobs)
        return launch

    def gather(self, launch: Launch, stats: RolloutStats) -> list[Trajectory]:
        """Wait for every slice; the trajectories in start order."""
        began = time.perf_counter()
        results: dict[int, Trajectory] = {}
        lost: set[int] = set()
        while launch.pending:
            (ready,), _ = ray.wait(list(launch.pending), num_returns=1)
            index, jobs = launch.pending.pop(ready)
            try:
                trajectories, part = ray.get(ready)
            except ray.exceptions.RayActorError:
                launch.failures += 1
                lost.add(index)
                launch.tries[jobs.start] = launch.tries.get(jobs.start, 0) + 1
                if launch.tries[jobs.start] > RESTARTS:
                    raise
                stand_in = self._stand_in(index, lost)
                if stand_in in lost:  # every worker was lost: wait for this one's restart
                    when_up(self.workers[stand_in].where)
                self._submit(launch, stand_in, jobs)
                continue
            results.update(zip(jobs, trajectories, strict=True))
            add_stats(stats, part)
        stats.wall_seconds = time.perf_counter() - began
        return [results[j] for j in range(len(launch.starts))]

    def call(self, method: str, *args: Any) -> Any:
        """``method(*args)`` on the first worker that answers (a lost one is skipped; the last is waited for)."""
        for index, worker in enumerate(self.workers):
            try:
                if index == len(self.workers) - 1:
                    return when_up(getattr(worker, method), *args)
                return ray.get(getattr(worker, method).remote(*args))
            except ray.exceptions.RayActorError:
                if index == len(self.workers) - 1:
                    raise
        raise AssertionError("unreachable")

    def _submit(self, launch: Launch, index: int, jobs: range) -> None:
        c = self.config
        ref = self.workers[index].collect.remote(
            launch.starts[jobs.start : jobs.stop],
            seed=launch.seed + jobs.start,
            min_version=launch.min_version,
            harness=HarnessConfig(c.max_context_tokens, c.context, c.max_new_tokens),
            temperature=c.temperature,
            resample=c.resample_env_errors,
            max_env_exceptions=max(3, len(launch.starts)),
        )
        launch.pending[ref] = (index, jobs)

    def _stand_in(self, index: int, lost: set[int]) -> int:
        """The next worker after ``index`` that has not died during this gather; else ``index`` itself, restarted."""
        others = [(index + k) % len(self.workers) for k in range(1, len(self.workers))]
        return next((i for i in others if i not in lost), index)


class RemoteOptimizer:
    """The learner ranks' optimizer, as `trainer_state` reads and writes it: rank 0's state out, to every rank in."""

    def __init__(self, learners: Sequence[Any]) -> None:
        self.learners = list(learners)

    def state_dict(self) -> dict[str, Any]:
        return ray.get(self.learners[0].optimizer_state.remote())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        ray.get([learner.load_optimizer_state.remote(state) for learner in self.learners])


class DistributedIPALearner(IPALearner):
    """`IPALearner` on Ray: rollout workers on the nodes, generator actors, DDP learner actors.

    Made by ``learners.make("ipa", ...)`` when the config asks for Ray (`IPAConfig.distributed`). It holds no model:
    `save` writes learner rank 0's weights, to a path every node can reach.

    Attributes:
        cluster: the run's actors (`learners.distributed.cluster.Cluster`).
        last_rollouts: the trajectories of the latest update, each sampled chunk with its ``weight_version``.
    """

    def __init__(self, config: LearnerConfig) -> None:
        Learner.__init__(self, config)
        c = self.config
        if not c.policy:
            raise ValueError("IPALearner needs policy='hf:PATH': a model directory saved with save_pretrained")
        self.sampler = StartSampler(c.resampling, c.anchors, c.rollback_at, c.fork_gap, c.seed)
        self.settings = LossSettings(c.gamma, c.mask_low, c.mask_high, c.lambda_rl, c.lambda_il)
        self.rng = random.Random(c.seed)
        self.envs = None
        self.updates_done = 0
        self.cluster = Cluster(c)
        self.fanout = Fanout(self.cluster.workers, c)
        self.optimizer = RemoteOptimizer(self.cluster.learners)
        self.known_tasks: list[str] | None = None
        self.next: Launch | None = None
        self.last_rollouts: list[Trajectory] = []

    # -- one update -----------------------------------------------------------------------------------------------

    def update(self) -> dict[str, float]:
        started = time.perf_counter()
        launch, self.next = self.next or self._launch(self.updates_done), None
        stats = RolloutStats()
        rollouts = self.last_rollouts = self.fanout.gather(launch, stats)
        lag = self.max_lag(rollouts)
        batch, groups = self.batch(launch.starts, rollouts)
        if self.config.max_weight_lag > 0:
            self.next = self._launch(self.updates_done + 1)  # plays while the learners step
        optimized = self.optimize(batch)
        self.updates_done += 1
        metrics = self._metrics(rollouts, groups, batch, optimized, stats, time.perf_counter() - started)
        return {**metrics, "max_lag": float(lag), "rollout_failures": float(launch.failures)}

    def rollouts(self, starts: list[StartState], stats: RolloutStats) -> list[Trajectory]:
        """Play the starts on the rollout workers at the current weights (env-spoiled rollouts resampled)."""
        launch = self.fanout.launch(starts, self._seed(self.updates_done), self.updates_done)
        return self.fanout.gather(launch, stats)

    def optimize(self, batch: ChunkBatch) -> dict[str, float]:
        """The learners' step on the batch's shards, then the weights to the generators as the next version."""
        version = self.updates_done + 1
        if not batch.rows:  # no step: the weights stay, the version moves on
            self.cluster.set_version(version)
            figures = super().optimize(batch)
            return {**figures, "sync_bytes": 0.0, "sync_seconds": 0.0, "weight_version": float(version)}
        figures = self.cluster.step(batch)
        sent, seconds = self.cluster.sync(version)
        return {**figures, "sync_bytes": float(sent), "sync_seconds": seconds, "weight_version": float(version)}

    def max_lag(self, rollouts: list[Trajectory]) -> int:
        """The largest number of updates by which a sampled chunk's weights trail the ones this update trains.

        Raises:
            RuntimeError: a chunk lags more than ``max_weight_lag`` (a generator's guard failed).
        """
        versions = [c.weight_version for t in rollouts for c in t.sampled if c.weight_version is not None]
        lag = max((self.updates_done - v for v in versions), default=0)
        if lag > self.config.max_weight_lag:
            allowed = self.config.max_weight_lag
            raise RuntimeError(f"a chunk was sampled {lag} updates stale, past max_weight_lag={allowed}")
        return lag

    def _launch(self, update: int) -> Launch:
        """Draw the tasks and starts of update ``update`` and start playing them."""
        tasks = self._tasks()
        self._ensure_experts(tasks)
        starts = self.sampler.starts(tasks, self.config.rollouts_per_task)
        return self.fanout.launch(starts, self._seed(update), update - self.config.max_weight_lag)

    def _seed(self, update: int) -> int:
        return self.config.seed * 100_003 + update * 1_009

    # -- tasks, experts ----------------------------------------------------------------------------------------------

    def _tasks(self) -> list[str]:
        if self.known_tasks is None:
            self.known_tasks = list(self.fanout.call("task_ids"))
        return self.rng.sample(self.known_tasks, min(self.config.tasks_per_update, len(self.known_tasks)))

    def _ensure_experts(self, tasks: list[str]) -> None:
        """As `IPALearner._ensure_experts`, the reference solutions played on a rollout worker."""
        if self.config.experts == "self" or self.config.resampling == "none" and not self.config.imitation:
            return
        missing = [t for t in tasks if t not in self.sampler.experts]
        if not missing:
            return
        for trajectory in self.fanout.call("experts", missing, self.config.resample_env_errors):
            if trajectory.resolved:
                self.sampler.experts[trajectory.task_id] = trajectory

    # -- checkpoints ---------------------------------------------------------------------------------------------------

    def save(self, path: str | Path | None = None) -> None:
        """Learner rank 0 writes the model and tokenizer (``save_pretrained``) to ``path``, on its node."""
        if not str(path or self.config.output_dir or ""):
            raise ValueError("save() needs a path, or output_dir in the config")
        target = Path(path or self.config.output_dir or "").resolve()
        target.mkdir(parents=True, exist_ok=True)
        ray.get(self.cluster.learners[0].save.remote(str(target)))

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.cluster.set_version(self.updates_done)

    def close(self) -> None:
        try:
            if self.next is not None:  # let the pipelined rollouts end, so that their sandboxes close
                self.fanout.gather(self.next, RolloutStats())
        finally:
            self.next = None
            self.cluster.close()
