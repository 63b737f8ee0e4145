"""Plain REINFORCE over a tabular softmax of candidate tool-call turns, in real rock_gym sandboxes.

The policy is one logit per candidate turn (give up, look around, run the task's reference steps); each episode
samples a candidate, renders it in the configured tool-call format and plays it in `rock/Terminal-v0`, and each
update moves the logits along the REINFORCE gradient with a leave-one-out baseline. No language model: the point is
the plugin path and the env loop, end to end.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import rock_gym
from learners.base import Learner, LearnerConfig
from rock_gym.envs.record import ResetInfo
from rock_gym.tasks import Task, TerminalTask
from rock_gym.tools import ToolCall

SUBMIT = ToolCall("submit", {})


def give_up(task: Task) -> list[ToolCall]:
    return [SUBMIT]


def look_around(task: Task) -> list[ToolCall]:
    return [ToolCall("bash", {"command": f"ls -la {shlex.quote(task.workdir)}"}), SUBMIT]


def reference_steps(task: Task) -> list[ToolCall]:
    """Every call of the task's expert turns in one turn, else its solve.sh; then submit."""
    expert = getattr(task, "expert_turns", None) or []
    calls = [ToolCall(call.name, dict(call.arguments)) for turn in expert for call in turn if call.name != "submit"]
    if not calls and isinstance(task, TerminalTask) and task.solution:
        calls = [ToolCall("bash", {"command": f"bash -c {shlex.quote(task.solution)}"})]
    return [*calls, SUBMIT]


#: Candidate turns by name: each builds the tool calls of one turn for a task.
CANDIDATES: dict[str, Callable[[Task], list[ToolCall]]] = {
    "submit": give_up,
    "look": look_around,
    "solve": reference_steps,
}


@dataclass
class PlainReinforceConfig(LearnerConfig):
    """Plain REINFORCE on candidate turns (fields of `LearnerConfig`: env_id, backend, seed)."""

    tasks: Any = None
    """Tasks to train on: anything `rock_gym.tasks.load` takes (Task objects, rows, a path); None: the env's own."""
    candidates: tuple[str, ...] = ("submit", "look", "solve")
    """The candidate turns the policy chooses between (names in `CANDIDATES`)."""
    episodes_per_update: int = 4
    """Episodes played per update; their gradients are averaged."""
    learning_rate: float = 1.0
    """Step size of the gradient ascent on the logits."""
    max_turns: int = 2
    """Turn limit of an episode; every candidate submits in its first turn, so 1 would do."""
    tool_format: str = "hermes"
    """Registered tool-call format the turns are rendered in (and the env parses)."""


class PlainReinforce(Learner):
    """REINFORCE with a leave-one-out baseline over `config.candidates`, one logit each.

    Examples:
        >>> learner = PlainReinforce.from_kwargs(tasks=[], candidates=("submit", "solve"))
        >>> learner.probabilities().tolist()
        [0.5, 0.5]
    """

    config_class = PlainReinforceConfig
    config: PlainReinforceConfig

    def __init__(self, config: LearnerConfig) -> None:
        super().__init__(config)
        unknown = [name for name in self.config.candidates if name not in CANDIDATES]
        if unknown or not self.config.candidates:
            raise ValueError(f"unknown candidates {unknown}: choose from {', '.join(CANDIDATES)}")
        self.logits = np.zeros(len(self.config.candidates))
        self.rng = np.random.default_rng(self.config.seed)
        self.render = rock_gym.get_plugin_manager().tool_formats.load(self.config.tool_format).render
        self.env: gym.Env | None = None
        self.updates_done = 0

    def probabilities(self) -> np.ndarray:
        shifted = np.exp(self.logits - self.logits.max())
        return shifted / shifted.sum()

    def train(self, updates: int) -> list[dict[str, float]]:
        return [self._update() for _ in range(updates)]

    def save(self, path: str | Path) -> None:
        config = {k: v for k, v in dataclasses.asdict(self.config).items() if k != "tasks"}
        config["env"].pop("tasks", None)  # task objects are not JSON; the env's own are named by env_id
        state = {"config": config, "logits": self.logits.tolist(), "updates": self.updates_done}
        Path(path).write_text(json.dumps(state, indent=2))

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None

    def _update(self) -> dict[str, float]:
        started = time.perf_counter()
        probs = self.probabilities()
        played = [self._episode(probs) for _ in range(self.config.episodes_per_update)]
        rewards = np.array([reward for _, reward in played])
        gradient = np.zeros_like(self.logits)
        for index, (arm, reward) in enumerate(played):
            others = np.delete(rewards, index)
            baseline = others.mean() if others.size else 0.0
            gradient += (reward - baseline) * (np.eye(len(probs))[arm] - probs)
        self.logits += self.config.learning_rate * gradient / len(played)
        self.updates_done += 1
        new_probs = self.probabilities()
        return {
            "update": float(self.updates_done),
            "mean_reward": float(rewards.mean()),
            "entropy": float(-(new_probs * np.log(new_probs)).sum()),
            "gradient_norm": float(np.linalg.norm(gradient / len(played))),
            "seconds": time.perf_counter() - started,
            **{f"p/{name}": float(p) for name, p in zip(self.config.candidates, new_probs, strict=True)},
        }

    def _episode(self, probs: np.ndarray) -> tuple[int, float]:
        """Play one episode with a sampled candidate; its index and total reward."""
        env = self._env()
        _, info = env.reset(seed=int(self.rng.integers(2**31)))
        task = env.unwrapped.by_id[ResetInfo.from_info(info).task_id]  # type: ignore[attr-defined]
        arm = int(self.rng.choice(len(probs), p=probs))
        action = self.render(CANDIDATES[self.config.candidates[arm]](task))
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(action)
            total, done = total + float(reward), terminated or truncated
            action = self.render([SUBMIT])
        return arm, total

    def _env(self) -> gym.Env:
        if self.env is None:
            self.env = gym.make(
                self.config.env_id,
                tasks=self.config.tasks,
                backend=self.config.backend,
                tool_format=self.config.tool_format,
                max_turns=self.config.max_turns,
            )
        return self.env
