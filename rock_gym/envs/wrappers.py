"""Gymnasium wrappers of rock_gym envs: `RecordTrajectory` writes every episode as one line of the typed record."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, SupportsFloat

import gymnasium as gym

from rock_gym.envs.record import Chunk, Ending, ResetInfo, StepInfo, Trajectory, append_line, decide_outcome


class RecordTrajectory(gym.Wrapper):
    """Append each episode of `env` to `path` as one JSON line: a version-2 `Trajectory.to_dict()`.

    A line holds the task, the seed, the tool format, the start messages and tool schemas (from `ResetInfo`), one
    `Chunk` per turn (its action, observation, reward and `StepInfo`), the prefix turns `reset` replayed first (as
    replayed chunks, with their observations), the return, how and why the episode ended, and `decide_outcome`'s
    verdict. Read the file back with `load_trajectories`; `replay_options` turns a line into a `reset` that rebuilds
    the state after any of its turns.

    A line is appended when the episode ends, or, unfinished (no ending, no outcome), when it is abandoned by `reset`
    or `close`. Each is written with a single `os.write` on a file opened with O_APPEND, so a crash loses at most the
    episode in flight and several recorders (threads or processes) may share one file.

    Put it outside `TimeLimit` to see the limit's truncations (recorded as a turn limit); inside, such an episode is
    written as unfinished at the next `reset` or `close`.

    >>> env = RecordTrajectory(gym.make("rock/Terminal-v0"), "runs/trajectories.jsonl")  # doctest: +SKIP
    >>> env.reset(options=replay_options(load_trajectories("runs/trajectories.jsonl")[0], turns=2))  # doctest: +SKIP
    """

    def __init__(self, env: gym.Env, path: str | os.PathLike[str]) -> None:
        super().__init__(env)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._trajectory: Trajectory | None = None
        self._started = 0.0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        self._write_unfinished()
        observation, info = self.env.reset(seed=seed, options=options)
        self._trajectory = started(ResetInfo.from_info(info), seed)
        self._started = time.monotonic()
        return observation, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        observation, reward, terminated, truncated, info = self.env.step(action)
        trajectory = self._trajectory
        if trajectory is not None:
            step = StepInfo.from_info(info)
            trajectory.chunks.append(Chunk(len(trajectory.chunks), str(action), str(observation), float(reward), step))
            trajectory.reward += float(reward)
            if terminated or truncated:
                finish(trajectory, step, bool(terminated), bool(truncated))
                self._write(trajectory)
        return observation, reward, terminated, truncated, info

    def close(self) -> None:
        try:
            self._write_unfinished()
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
        finally:
            super().close()

    def _write_unfinished(self) -> None:
        if self._trajectory is not None:
            self._write(self._trajectory)  # no ending, no outcome: a learner reads it as unfinished

    def _write(self, trajectory: Trajectory) -> None:
        if self._fd is None:
            raise RuntimeError(f"the recorder of {self.path} is closed")
        trajectory.seconds = time.monotonic() - self._started
        append_line(self._fd, trajectory.to_dict())
        self._trajectory = None


def started(reset: ResetInfo, seed: int | None) -> Trajectory:
    """The trajectory a reset opens: its start messages and tools, and the replayed prefix as its first chunks."""
    replayed = [
        Chunk(index, turn.action, turn.observation, step=turn.info, replayed=True)
        for index, turn in enumerate(reset.prefix)
    ]
    return Trajectory(
        reset.task_id,
        seed,
        reset.tool_format,
        messages=list(reset.messages),
        tools=list(reset.tools),
        chunks=replayed,
        start=len(replayed),
    )


def finish(trajectory: Trajectory, step: StepInfo, terminated: bool, truncated: bool) -> None:
    """Copy the ending step's report onto the trajectory and decide its outcome."""
    # A wrapper's truncation (`TimeLimit`) comes with no ending of the env's: it is a turn limit all the same.
    ending = step.ending or (Ending.TURN_LIMIT.value if truncated else None)
    trajectory.terminated, trajectory.truncated, trajectory.ending = terminated, truncated, ending
    trajectory.verification, trajectory.error = step.verification, step.error
    trajectory.outcome = decide_outcome(ending, step.resolved, step.verifier_error)
