"""From trajectories to what the IPA loss reads: one row per token segment, the positions its chunks own, and per
chunk its return, outcome and kind.

A chunk is one model turn: the tokens the policy sampled between two observations, read from the trajectory's
record (`Trajectory.segment_tokens`), never re-rendered. Observations and prompts carry no loss; replayed prefix
chunks carry none either, except as expert chunks of the imitation term. Each segment is one forward pass over its
packed tokens, so a K-turn trajectory costs one pass, not K passes over ever longer prompts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from learners.ipa.loss import chunk_returns
from rock_gym.envs.record import Trajectory


@dataclass
class Row:
    """One forward pass: a segment's ids, the positions whose tokens carry loss, their chunk and µ."""

    ids: list[int]
    positions: list[int] = field(default_factory=list)
    chunks: list[int] = field(default_factory=list)
    mu: list[float] = field(default_factory=list)


@dataclass
class ChunkBatch:
    """The rows of a batch and, per chunk (by its index in the batch), G_c, its trajectory's outcome and kind."""

    rows: list[Row] = field(default_factory=list)
    returns: list[float] = field(default_factory=list)
    success: list[bool] = field(default_factory=list)
    imitation: list[bool] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return sum(len(row.positions) for row in self.rows)

    def add_rollout(self, trajectory: Trajectory, reward: float, gamma: float) -> int:
        """Add the sampled chunks of a rollout whose return is ``reward``; how many were added.

        Chunks without µ (a text-only engine's turns) cannot be importance-weighted and are left out.
        """
        wanted = {c.index for c in trajectory.sampled if c.completion_ids and len(c.logprobs) == len(c.completion_ids)}
        success = trajectory.resolved
        return self._add(trajectory, wanted, reward, gamma, success=success, imitation=False)

    def add_imitation(self, expert: Trajectory, upto: int, gamma: float) -> int:
        """Add the expert's chunks 0..``upto`` (the prefix and the crucial chunk) for the imitation term."""
        wanted = {c.index for c in expert.chunks[: upto + 1] if c.completion_ids}
        return self._add(expert, wanted, 1.0, gamma, success=True, imitation=True)

    def _add(
        self, trajectory: Trajectory, wanted: set[int], reward: float, gamma: float, *, success: bool, imitation: bool
    ) -> int:
        if not wanted or not trajectory.segments:
            return 0
        last = trajectory.chunks[-1].index
        index = {}
        for k in sorted(wanted):
            index[k] = len(self.returns)
            self.returns.append(chunk_returns([k], last, reward, gamma)[0])
            self.success.append(success)
            self.imitation.append(imitation)
        for s in range(len(trajectory.segments)):
            packed = trajectory.segment_tokens(s)
            row = Row(packed.ids)
            for p, (owner, mu) in enumerate(zip(packed.owner, packed.logprobs, strict=True)):
                if owner in index and p > 0:
                    row.positions.append(p)
                    row.chunks.append(index[owner])
                    row.mu.append(mu)
            if row.positions:
                self.rows.append(row)
        return len(wanted)
