"""Data-parallel IPA: N learner actors, each running `IPALearner.optimize` on its shard of every chunk batch.

The loss is the in-process learner's, term for term: each rank computes the IPA loss of its rows divided by the
*whole* batch's unmasked tokens (its count summed over the ranks), and the ranks sum their gradients before
clipping, so every rank holds the gradient of the whole batch's loss and takes the same AdamW step. This is DDP's
all-reduce (gloo on CPU, NCCL on GPU, in buckets), done once per pass after the micro-batches' backward passes rather
than from `DistributedDataParallel`'s hooks: the learner computes log-probs through the model's trunk and head
separately (`learners.ipa.logprobs`), never through ``forward``, which is where DDP's reducer prepares its hooks.
Rank 0 broadcasts its weights once at start, as DDP does, so the ranks start equal and stay equal.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist

from learners.distributed.sync import (
    Groups,
    World,
    broadcast_weights,
    cpu_state,
    distinct_tensors,
    join,
    leave,
    rendezvous_point,
    state_bytes,
    weights_digest,
)
from learners.ipa.chunks import ChunkBatch, Row
from learners.ipa.config import IPAConfig
from learners.ipa.learner import IPALearner

#: Gradient bytes all-reduced at once (DDP's default bucket).
BUCKET_BYTES = 25 * 2**20


def shard_batch(batch: ChunkBatch, ranks: int) -> list[ChunkBatch]:
    """Split a batch's rows over ``ranks`` shards, longest row first onto the lightest shard; every shard keeps the
    batch's per-chunk lists (rows name chunks by batch index). A shard left without rows gets one row with no loss
    positions, so that its rank still joins the collectives and takes the common step."""
    shards = [ChunkBatch([], batch.returns, batch.success, batch.imitation) for _ in range(ranks)]
    load = [0] * ranks
    for i in sorted(range(len(batch.rows)), key=lambda i: (-len(batch.rows[i].ids), i)):
        lightest = min(range(ranks), key=lambda r: (load[r], r))
        shards[lightest].rows.append(batch.rows[i])
        load[lightest] += len(batch.rows[i].ids)
    for shard in shards:
        if not shard.rows:
            shard.rows.append(Row(ids=[0, 0]))
    return shards


def shard_chunks(shard: ChunkBatch) -> int:
    """The chunks a shard's rows hold."""
    return len({c for row in shard.rows for c in row.chunks})


def combine_figures(figures: Sequence[dict[str, float]], shards: Sequence[ChunkBatch]) -> dict[str, float]:
    """One step's figures from the ranks': the loss is the sum of the shards' terms, the imitation share is already
    a share of the whole batch's tokens, the rest (gradient norm, tokens: equal on every rank) is rank 0's. Chunk
    averages (masked fraction, mean ratio) weigh each shard by its chunks; since `IPALearner.optimize` averages them
    per forward pass first, they follow how rows fall into passes, here as in process."""
    chunks = [shard_chunks(s) for s in shards]
    total = sum(chunks) or 1
    combined = dict(figures[0])
    combined["loss"] = sum(f["loss"] for f in figures)
    combined["imitation_share"] = sum(f["imitation_share"] for f in figures)
    for name in ("masked_fraction", "mean_ratio"):
        combined[name] = sum(f[name] * n for f, n in zip(figures, chunks, strict=True)) / total
    return combined


def all_reduce_gradients(parameters: Sequence[Any], group: Any, bucket_bytes: int = BUCKET_BYTES) -> None:
    """Sum the parameters' gradients over ``group`` in place, a bucket at a time (a missing gradient is zero)."""
    for p in parameters:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    bucket: list[Any] = []
    size = 0
    for p in parameters:
        bucket.append(p)
        size += p.grad.numel() * p.grad.element_size()
        if size >= bucket_bytes:
            _all_reduce_bucket(bucket, group)
            bucket, size = [], 0
    if bucket:
        _all_reduce_bucket(bucket, group)


def _all_reduce_bucket(bucket: list[Any], group: Any) -> None:
    flat = torch.cat([p.grad.reshape(-1) for p in bucket])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=group)
    offset = 0
    for p in bucket:
        n = p.grad.numel()
        p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
        offset += n


class ShardLearner(IPALearner):
    """`IPALearner` as one data-parallel rank: the normalizer and the gradients are summed over the learners."""

    def __init__(self, config: IPAConfig) -> None:
        super().__init__(config)
        self.groups: Groups | None = None

    def _batch_tokens(self, tokens: int) -> int:
        count = torch.tensor([tokens], dtype=torch.long, device=self.config.device)
        dist.all_reduce(count, op=dist.ReduceOp.SUM, group=self._groups().learners)
        return int(count.item())

    def _reduce_gradients(self) -> None:
        trained = [p for p in self.model.parameters() if p.requires_grad]
        all_reduce_gradients(trained, self._groups().learners)

    def _groups(self) -> Groups:
        if self.groups is None:
            raise RuntimeError("this learner has not joined its world: call LearnerWorker.join first")
        return self.groups


class LearnerWorker:
    """One learner rank (a Ray actor): the model, its optimizer, and its place in the run's world.

    Args:
        config: the run's config (its distribution fields are ignored here: this rank trains in process).
        rank: this learner's rank, from 0.
    """

    def __init__(self, config: IPAConfig, rank: int) -> None:
        local = dataclasses.replace(config, ray_address=None, rollout_workers=0, learner_workers=0)
        self.rank = rank
        self.learner = ShardLearner(local)

    def where(self) -> dict[str, Any]:
        import ray

        return {"rank": self.rank, "node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid()}

    def rendezvous_point(self) -> tuple[str, int]:
        """Where the world meets (called on rank 0)."""
        return rendezvous_point()

    def join(self, world: World) -> None:
        """Join the world (every member at once), then take rank 0's weights, as DDP does at start."""
        self.learner.groups = join(world, self.rank, self.learner.config.device)
        broadcast_weights(self.learner.model, self.learner.groups.learners, src=0)

    def step(self, shard: ChunkBatch) -> dict[str, float]:
        """`IPALearner.optimize` on this rank's shard (every rank at once)."""
        return self.learner.optimize(shard)

    def state(self) -> tuple[dict[str, Any], int]:
        """The weights on the CPU and their size in bytes (the object-store transport; call with num_returns=2)."""
        return cpu_state(self.learner.model), state_bytes(distinct_tensors(self.learner.model))

    def send(self) -> int:
        """Broadcast the weights to the generator (the collective transport; rank 0); the bytes sent."""
        groups = self.learner._groups()
        return broadcast_weights(self.learner.model, groups.sync, src=0)

    def digest(self) -> str:
        return weights_digest(distinct_tensors(self.learner.model))

    def save(self, path: str) -> None:
        self.learner.save(path)

    def optimizer_state(self) -> dict[str, Any]:
        return self.learner.optimizer.state_dict()

    def load_optimizer_state(self, state: dict[str, Any]) -> None:
        self.learner.optimizer.load_state_dict(state)

    def close(self) -> None:
        leave()
