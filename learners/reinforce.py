"""`ReinforceLearner`: token-level policy gradient with a group baseline, the GRPO-style comparison point for IPA.

Per update: pick `tasks_per_update` tasks, play each `group_size` times, and give every trajectory the advantage
A = R − mean(R of its group) (divided by the group's std when `normalize_std`). The loss is

    L = − Σ_τ A_τ · Σ_{chunks c of τ} Σ_{t ∈ c} log π_θ(t | prompt_c, earlier tokens of c)  /  (completion tokens)

over every completion token of the kept trajectories: no importance ratio, no clipping, no KL, each token weighted
alike. Env-error trajectories are dropped (IPA's dynamic filtering) and counted; a group left with one trajectory
has no baseline and contributes nothing.

Examples:
    >>> learner = learners.make("reinforce", model="/tmp/tiny", group_size=4)   # doctest: +SKIP
    >>> learner.train(2)[-1]["mean_reward"]                                      # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym

from learners.base import Learner, LearnerConfig, load_trainer_state, trainable_policy, trainer_state
from learners.policies.base import Policy, require
from learners.rollout import collect
from learners.sft import clip_gradients
from rock_gym.agent.harness import HarnessConfig
from rock_gym.envs.record import Trajectory

torch = require("torch", "hf")


@dataclass
class ReinforceConfig(LearnerConfig):
    """REINFORCE with a group baseline (fields of `LearnerConfig`: env, seed)."""

    policy: str = ""
    """The policy to train: `hf:PATH` (or a bare PATH) of a model directory in `save_pretrained` layout."""
    tasks_per_update: int = 2
    """Distinct tasks per update; each is one group."""
    group_size: int = 4
    """Trajectories per task per update (G): the baseline is their mean reward."""
    max_new_tokens: int = 256
    """Tokens sampled per turn at most."""
    temperature: float = 1.0
    """Sampling temperature; at 1.0 the sampler's µ is the model's own π."""
    max_context_tokens: int | None = 4096
    """The harness's token budget (request plus `max_new_tokens`): episodes that cannot fit end truncated with
    ending "context" (a scored failure)."""
    context: str = "keep"
    """The harness's context policy (`rock_gym.agent.context`): "keep", "elide", "drop", "summary", ..."""
    learning_rate: float = 1e-5
    """AdamW's step size."""
    weight_decay: float = 0.0
    """AdamW's decoupled weight decay."""
    normalize_std: bool = False
    """Divide each group's advantages by its reward std (GRPO); off: Dr. GRPO-style plain mean baseline."""
    max_grad_norm: float = 1.0
    """Gradients are clipped to this total norm (0: no clipping); the metric is the norm before clipping."""
    micro_batch: int = 8
    """Chunks per forward pass when computing log π_θ."""
    device: str = "cpu"
    """Where the model trains and samples."""
    output_dir: str | None = None
    """Where `save()` writes when called without a path."""


class ReinforceLearner(Learner):
    """Token-level REINFORCE with a per-task group baseline, trained in place on an `HFPolicy`'s model.

    Attributes:
        policy: the `HFPolicy` whose model is trained.
        sampler: the policy that plays the episodes; the trained policy itself by default (on-policy).
        envs: the vector env, made on the first update and kept until `close()`.
    """

    config_class = ReinforceConfig
    config: ReinforceConfig

    def __init__(self, config: LearnerConfig) -> None:
        super().__init__(config)
        self.policy, self.optimizer = trainable_policy(self)
        self.model = self.policy.model
        self.sampler: Policy = self.policy
        self.rng = random.Random(self.config.seed)
        self.envs: list[gym.Env] | None = None
        self.updates_done = 0
        self.last_grad_norm = 0.0

    def train(self, updates: int) -> list[dict[str, float]]:
        return [self._update() for _ in range(updates)]

    def _update(self) -> dict[str, float]:
        started = time.perf_counter()
        harness = HarnessConfig(self.config.max_context_tokens, self.config.context, self.config.max_new_tokens)
        trajectories = collect(
            self._envs(),
            self.sampler,
            seed=self.config.seed * 100_003 + self.updates_done,
            temperature=self.config.temperature,
            task_ids=self._task_ids(),
            harness=harness,
            tokenizer=self.policy.tokenizer,  # a text-only sampler's turns are recorded as this model's tokens
        )
        kept = [t for t in trajectories if not t.env_error]
        advantages = group_advantages(kept, self.config.normalize_std)
        loss, tokens = self._step(kept, advantages)
        self.updates_done += 1
        rewards = [t.reward for t in kept]
        return {
            "update": float(self.updates_done),
            "mean_reward": _mean(rewards),
            "success_rate": _mean([float(t.resolved) for t in kept]),
            "loss": loss,
            "grad_norm": self.last_grad_norm,
            "kept": float(len(kept)),
            "dropped": float(len(trajectories) - len(kept)),
            "tokens": float(tokens),
            "mean_turns": _mean([float(len(t.chunks)) for t in kept]),
            "seconds": time.perf_counter() - started,
        }

    def _task_ids(self) -> list[str]:
        """`tasks_per_update` distinct tasks (fewer if the env has fewer), each `group_size` times in a row."""
        known = sorted(self._envs()[0].unwrapped.by_id)  # type: ignore[attr-defined]
        chosen = self.rng.sample(known, min(self.config.tasks_per_update, len(known)))
        return [task for task in chosen for _ in range(self.config.group_size)]

    def _step(self, trajectories: Sequence[Trajectory], advantages: Sequence[float]) -> tuple[float, int]:
        """One optimiser step on −Σ A·log π_θ / tokens; the loss and the token count."""
        pieces = [
            (trajectory.request_ids(chunk.index), chunk.completion_ids, advantage)
            for trajectory, advantage in zip(trajectories, advantages, strict=True)
            for chunk in trajectory.sampled
            if chunk.completion_ids and trajectory.segments
        ]
        tokens = sum(len(completion) for _, completion, _ in pieces)
        self.optimizer.zero_grad(set_to_none=True)
        self.model.train()
        total = 0.0
        weighted = [piece for piece in pieces if piece[2] != 0.0]  # zero advantage: zero gradient, skip the pass
        size = max(1, self.config.micro_batch)
        for start in range(0, len(weighted), size):
            total += self._backward(weighted[start : start + size], tokens)
        self.last_grad_norm = clip_gradients(self.model, self.config.max_grad_norm)
        if weighted:
            self.optimizer.step()
            self.sampler_update()
        return total, tokens

    def _backward(self, pieces: Sequence[tuple[list[int], list[int], float]], tokens: int) -> float:
        from learners.policies.hf import completion_logprobs

        pairs = [(prompt, completion) for prompt, completion, _ in pieces]
        logprobs = completion_logprobs(self.model, pairs, pad_id=self.policy.tokenizer.pad_token_id)
        loss = -sum(advantage * values.sum() for (_, _, advantage), values in zip(pieces, logprobs, strict=True))
        loss = loss / max(tokens, 1)
        loss.backward()
        return float(loss.detach())

    def sampler_update(self) -> None:
        """Hand the new weights to the sampling engine (a no-op when it is the trained `HFPolicy` itself)."""
        self.policy.update_weights(self.model)
        update = getattr(self.sampler, "update_weights", None)
        if self.sampler is not self.policy and update is not None:
            update(self.model)

    def _envs(self) -> list[gym.Env]:
        """The envs, made on the first update and kept (their sandboxes are replaced at each reset)."""
        if self.envs is None:
            self.envs = [self.config.env.make() for _ in range(self.config.env.num_envs)]
        return self.envs

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs besides the weights."""
        return trainer_state(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_trainer_state(self, state)

    def save(self, path: str | Path | None = None) -> None:
        """Write the model and tokenizer (``save_pretrained``) and ``reinforce_config.json``."""
        if not (path or self.config.output_dir):
            raise ValueError("save() needs a path, or output_dir in the config")
        target = Path(path or self.config.output_dir)  # type: ignore[arg-type]
        target.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(target)
        self.policy.tokenizer.save_pretrained(target)
        fields = dataclasses.asdict(self.config)
        state = {"config": fields, "updates": self.updates_done}
        (target / "reinforce_config.json").write_text(json.dumps(state, indent=2, default=str))

    def close(self) -> None:
        for env in self.envs or []:
            env.close()
        self.envs = None


def group_advantages(trajectories: Sequence[Trajectory], normalize_std: bool = False) -> list[float]:
    """Per trajectory, its reward less its task group's mean (over these trajectories), optionally / the std.

    >>> from rock_gym.envs.record import Trajectory
    >>> group = [Trajectory("a", reward=1.0), Trajectory("a", reward=0.0), Trajectory("b", reward=1.0)]
    >>> group_advantages(group)
    [0.5, -0.5, 0.0]
    """
    groups: dict[str, list[float]] = {}
    for trajectory in trajectories:
        groups.setdefault(trajectory.task_id, []).append(trajectory.reward)
    advantages = []
    for trajectory in trajectories:
        rewards = groups[trajectory.task_id]
        mean = sum(rewards) / len(rewards)
        advantage = trajectory.reward - mean
        if normalize_std and len(rewards) > 1:
            std = math.sqrt(sum((r - mean) ** 2 for r in rewards) / (len(rewards) - 1))
            advantage /= std + 1e-6
        advantages.append(advantage)
    return advantages


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0
