"""Chunk-level initialized resampling: where rollouts start on each task's expert trajectory.

A start at chunk k replays the expert's chunks 0..k−1 in a fresh sandbox (`StartState.prefix`) and lets the policy
sample from chunk k on; k = 0 is a plain rollout. Success rates are kept per (task, k).

- ``parallel`` (Parallelized Initialization, the paper's preferred mode): each task's rollouts are spread over
  ``anchors`` starts, evenly from 0 to the last expert chunk, all in the same batch.
- ``rollback`` (Sequential Rollback): each task starts at its last expert chunk, and the start moves one chunk
  earlier whenever the success rate there reaches ``rollback_at`` (a curriculum back to k = 0).
- ``none``: every rollout starts at k = 0.

A chunk k is a *crucial fork* when success starting just after it is much higher than starting just before it:
``rate(k + 1) − rate(k) ≥ fork_gap``. When every rollout from a start k failed, the learner adds the imitation term
over the expert's chunks up to the fork the policy did not get past: the first crucial fork at or after k, else k.

Experts come from the tasks' reference solutions (played once by the `ExpertPolicy`, recorded with the policy's
tokenizer), or from the policy's own successes (``self``): a success replaces a longer expert of its task.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from learners.rollout import StartState
from rock_gym.envs.record import Trajectory

MODES = ("parallel", "rollback", "none")


@dataclass
class Imitation:
    """An imitation target: the expert's chunks 0..``upto`` of ``task_id``."""

    task_id: str
    upto: int


class StartSampler:
    """Chooses start states, keeps success rates per (task, start chunk), finds forks, holds the experts.

    Args:
        mode: ``"parallel"``, ``"rollback"`` or ``"none"``.
        anchors: starts per task in parallel mode.
        rollback_at: success rate that moves a rollback start one chunk earlier.
        fork_gap: the rise in success rate across one chunk that makes it a crucial fork.
        seed: seeds the sampler's own choices (none today: anchors are evenly spread; kept for state).
    """

    def __init__(
        self, mode: str = "parallel", anchors: int = 2, rollback_at: float = 0.5, fork_gap: float = 0.5, seed: int = 0
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown resampling mode {mode!r}: use one of {', '.join(MODES)}")
        self.mode, self.anchors, self.rollback_at, self.fork_gap = mode, max(1, anchors), rollback_at, fork_gap
        self.rng = random.Random(seed)
        self.experts: dict[str, Trajectory] = {}
        self.tries: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])  # attempts, successes
        self.position: dict[str, int] = {}

    # -- starts ---------------------------------------------------------------------------------------------------

    def starts(self, task_ids: list[str], rollouts: int) -> list[StartState]:
        """``rollouts`` starts per task, task by task."""
        return [start for task in task_ids for start in self._task_starts(task, rollouts)]

    def _task_starts(self, task: str, rollouts: int) -> list[StartState]:
        expert = self.experts.get(task)
        if expert is None or self.mode == "none":
            return [StartState(task)] * rollouts
        last = len(expert.chunks) - 1
        if self.mode == "rollback":
            k = self.position.setdefault(task, last)
            return [self.start(task, k)] * rollouts
        anchors = anchor_points(last, self.anchors)
        return [self.start(task, anchors[i % len(anchors)]) for i in range(rollouts)]

    def start(self, task: str, k: int) -> StartState:
        """The start that replays the expert's first ``k`` chunks of ``task``."""
        expert = self.experts.get(task)
        prefix = tuple(c.action for c in expert.chunks[:k]) if expert is not None and k else ()
        return StartState(task, prefix)

    # -- what rollouts showed -------------------------------------------------------------------------------------

    def record(self, start: StartState, trajectory: Trajectory) -> None:
        """Count a scored rollout from ``start``; move a rollback start when its rate is reached."""
        key = (trajectory.task_id, len(start.prefix))
        self.tries[key][0] += 1
        self.tries[key][1] += int(trajectory.resolved)
        at_rollback = self.mode == "rollback" and key[1] == self.position.get(key[0]) and key[1] > 0
        if at_rollback and self.rate(*key) >= self.rollback_at:
            self.position[key[0]] = key[1] - 1
            self.tries.pop((key[0], key[1] - 1), None)  # a fresh count at the new start

    def rate(self, task: str, k: int) -> float:
        attempts, successes = self.tries.get((task, k), (0, 0))
        return successes / attempts if attempts else 0.0

    def crucial_forks(self, task: str) -> list[int]:
        """Chunks k where the success rate starting after k exceeds the rate starting before it by ``fork_gap``."""
        known = sorted(k for (t, k) in self.tries if t == task)
        return [
            k
            for k in known
            if (task, k + 1) in self.tries and self.rate(task, k + 1) - self.rate(task, k) >= self.fork_gap
        ]

    def imitation(self, groups: dict[tuple[str, int], list[Trajectory]]) -> list[Imitation]:
        """The imitation targets of an update: per (task, start) group with rollouts and no success, the expert's
        chunks up to the fork the policy did not get past."""
        targets = []
        for (task, k), rollouts in sorted(groups.items()):
            expert = self.experts.get(task)
            if expert is None or not rollouts or any(t.resolved for t in rollouts):
                continue
            forks = [f for f in self.crucial_forks(task) if f >= k]
            upto = min(forks[0] if forks else k, len(expert.chunks) - 1)
            targets.append(Imitation(task, upto))
        return targets

    def offer(self, trajectory: Trajectory) -> bool:
        """Keep a resolved trajectory with token ids as its task's expert when it has none or a longer one."""
        if not (trajectory.resolved and trajectory.segments):
            return False
        held = self.experts.get(trajectory.task_id)
        if held is not None and len(held.chunks) <= len(trajectory.chunks):
            return False
        self.experts[trajectory.task_id] = trajectory
        return True

    # -- checkpoints ----------------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "experts": {task: t.to_dict() for task, t in self.experts.items()},
            "tries": [[task, k, a, s] for (task, k), (a, s) in self.tries.items()],
            "position": dict(self.position),
            "rng": self.rng.getstate(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.experts = {task: Trajectory.from_dict(data) for task, data in state["experts"].items()}
        self.tries = defaultdict(lambda: [0, 0], {(task, k): [a, s] for task, k, a, s in state["tries"]})
        self.position = dict(state["position"])
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))


def anchor_points(last: int, anchors: int) -> list[int]:
    """``anchors`` start chunks spread evenly over 0..``last`` (both ends included when there are two or more).

    >>> anchor_points(3, 2), anchor_points(3, 3), anchor_points(0, 3)
    ([0, 3], [0, 2, 3], [0])
    """
    if anchors == 1 or last == 0:
        return [0]
    return sorted({round(i * last / (anchors - 1)) for i in range(anchors)})
