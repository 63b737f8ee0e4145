"""Record episodes as JSON lines, and turn a recorded episode back into `reset` options that replay its prefix.

One line per episode, appended when the episode ends (or, marked unfinished, when it is abandoned by `reset` or
`close`). Each line is written with a single `os.write` on a file opened with O_APPEND, so a crash loses at most the
episode in flight and several recorders may share one file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, SupportsFloat

import gymnasium as gym

#: `info` keys a step may carry that are copied into the turn's record when present.
STEP_KEYS = ("format_error", "error", "verifier_error", "ending", "safety")
#: `info` keys copied onto the episode's record from the step that ended it.
ENDING_KEYS = ("verification", "error", "verifier_error", "ending")


class RecordTrajectory(gym.Wrapper):
    """Append each episode of `env` to `path` as one JSON line.

    A line holds `task_id`, `seed`, `prefix` (the actions replayed by `reset`), `observation` (what `reset`
    returned), `turns` (per step: `action`, `tool_calls`, `tool_results`, `observation`, `reward`, `terminated`,
    `truncated`, `step_seconds`, `safety` (the safety monitor's events), and `format_error`/`error`/
    `verifier_error`/`ending` when set), `return`, `terminated`, `truncated`, `unfinished`, and from the last step
    `verification`, `error`, `verifier_error`.

    Put it outside `TimeLimit` to see the limit's truncations; inside, such an episode is written as unfinished at
    the next `reset` or `close`.

    >>> env = RecordTrajectory(gym.make("rock/Terminal-v0"), "runs/trajectories.jsonl")  # doctest: +SKIP
    >>> env.reset(options=replay_options(load_trajectories("runs/trajectories.jsonl")[0], turns=2))  # doctest: +SKIP
    """

    def __init__(self, env: gym.Env, path: str | os.PathLike[str]) -> None:
        super().__init__(env)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._episode: dict[str, Any] | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        self._write_unfinished("reset")
        observation, info = self.env.reset(seed=seed, options=options)
        prefix = [turn["action"] if isinstance(turn, dict) else turn for turn in (options or {}).get("prefix", [])]
        self._episode = {
            "task_id": info.get("task_id"),
            "seed": seed,
            "prefix": prefix,
            "observation": observation,
            "turns": [],
        }
        return observation, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        observation, reward, terminated, truncated, info = self.env.step(action)
        if self._episode is not None:
            self._episode["turns"].append(turn_record(action, observation, reward, terminated, truncated, info))
            if terminated or truncated:
                self._write(ended(self._episode, info, terminated, truncated))
                self._episode = None
        return observation, reward, terminated, truncated, info

    def close(self) -> None:
        try:
            self._write_unfinished("close")
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
        finally:
            super().close()

    def _write_unfinished(self, by: str) -> None:
        if self._episode is not None:
            self._write({**ended(self._episode, {}, False, False), "unfinished": True, "abandoned_by": by})
            self._episode = None

    def _write(self, record: dict[str, Any]) -> None:
        if self._fd is None:
            raise RuntimeError(f"the recorder of {self.path} is closed")
        data = (json.dumps(record, default=str) + "\n").encode()
        while data:  # one write for a regular file; the loop only guards a short write
            data = data[os.write(self._fd, data) :]


def turn_record(
    action: Any, observation: Any, reward: SupportsFloat, terminated: bool, truncated: bool, info: dict[str, Any]
) -> dict[str, Any]:
    """One step as the recorder stores it."""
    record = {
        "action": action,
        "tool_calls": info.get("tool_calls", []),
        "tool_results": info.get("tool_results", []),
        "observation": observation,
        "reward": float(reward),
        "terminated": bool(terminated),
        "truncated": bool(truncated),
        "step_seconds": info.get("step_seconds"),
    }
    record.update({key: info[key] for key in STEP_KEYS if info.get(key) is not None})
    return record


def ended(episode: dict[str, Any], info: dict[str, Any], terminated: bool, truncated: bool) -> dict[str, Any]:
    """The episode's line: its turns, totals, and the final step's verification and errors."""
    record = {
        **episode,
        "return": sum(turn["reward"] for turn in episode["turns"]),
        "terminated": bool(terminated),
        "truncated": bool(truncated),
        "unfinished": not (terminated or truncated),
        "verification": info.get("verification"),
        "error": info.get("error"),
        "verifier_error": info.get("verifier_error"),
    }
    if info.get("ending") is not None:
        record["ending"] = info["ending"]
    return record


def load_trajectories(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every episode recorded in `path`, in order; a torn last line (a crash mid-write) is skipped."""
    trajectories = []
    lines = Path(path).read_text().splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            trajectories.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise ValueError(f"{path}:{number} is not a JSON line: was it written by RecordTrajectory?") from None
    return trajectories


def replay_options(trajectory: dict[str, Any], turns: int) -> dict[str, Any]:
    """`reset` options that rebuild the state the recorded episode had after its first `turns` turns.

    The recorded episode's own `prefix` (if it started from one) is replayed first.

    >>> turn = {"action": "ls", "terminated": False, "truncated": False}
    >>> replay_options({"task_id": "t", "prefix": ["pwd"], "turns": [turn, turn]}, turns=1)
    {'task_id': 't', 'prefix': ['pwd', 'ls']}
    """
    recorded = trajectory["turns"]
    if not 0 <= turns <= len(recorded):
        raise ValueError(f"turns must be between 0 and {len(recorded)} (the turns recorded), got {turns}")
    if turns and (recorded[turns - 1]["terminated"] or recorded[turns - 1]["truncated"]):
        raise ValueError(
            f"turn {turns} ended the recorded episode, so it cannot be replayed as a prefix: use turns={turns - 1}"
        )
    actions = [turn["action"] for turn in recorded[:turns]]
    return {"task_id": trajectory["task_id"], "prefix": [*trajectory.get("prefix", []), *actions]}
