"""`IPALearner`: chunk-level policy optimization with initialized resampling and an imitation fallback.

One update:
1. pick ``tasks_per_update`` tasks; the `StartSampler` gives ``rollouts_per_task`` starts on each (expert prefixes
   replayed in fresh sandboxes, per the resampling mode);
2. play them with the policy through the harness (token-exact records); rollouts the env spoiled are played again
   from the same start, and dropped if still spoiled (dynamic filtering);
3. build the chunk batch (`learners.ipa.chunks`): each rollout's sampled chunks with G_k, plus the expert chunks of
   starts whose rollouts all failed (the imitation fallback);
4. recompute π_old at the sampling temperature, then take ``epochs`` optimizer passes on the IPA loss
   (`learners.ipa.loss`): token segments packed into rows of ``pack_tokens`` (`learners.ipa.packing`), bf16 autocast
   on CUDA, log-probs through the head in slices.

Examples:
    >>> learner = learners.make("ipa", policy="hf:/tmp/tiny", env_id="rock/Terminal-v0")   # doctest: +SKIP
    >>> learner.train(2)[-1]["success_rate"]                                               # doctest: +SKIP
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Self

import gymnasium as gym

from learners.base import Learner, LearnerConfig, load_trainer_state, trainable_policy, trainer_state
from learners.ipa.chunks import ChunkBatch
from learners.ipa.config import IPAConfig
from learners.ipa.logprobs import taken_logprobs
from learners.ipa.loss import ChunkTokens, LossSettings, ipa_loss, unmasked_tokens
from learners.ipa.packing import first_fit_decreasing, packed_logprobs
from learners.ipa.resample import StartSampler
from learners.policies.base import require
from learners.rollout import RolloutStats, StartState, collect
from learners.sft import clip_gradients
from rock_gym.agent.harness import HarnessConfig
from rock_gym.envs.record import Trajectory

torch = require("torch", "hf")


class IPALearner(Learner):
    """IPA on an `HFPolicy`'s model, trained in place (the sampler samples with the latest weights).

    Attributes:
        policy: the `HFPolicy` whose model is trained and which samples the rollouts.
        sampler: the `StartSampler` (experts, success rates per start, rollback positions).
        envs: the envs, made on the first update and kept until `close()`.
    """

    config_class = IPAConfig
    config: IPAConfig

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> Self:
        """The learner for these config fields: on Ray (`learners.distributed`) when they ask for it."""
        config = cls.config_class.from_kwargs(**kwargs)
        if cls is IPALearner and config.distributed:  # type: ignore[attr-defined]
            from learners.distributed.driver import DistributedIPALearner

            return DistributedIPALearner(config)  # type: ignore[return-value]
        return cls(config)

    def __init__(self, config: LearnerConfig) -> None:
        super().__init__(config)
        self.policy, self.optimizer = trainable_policy(self)
        self.model = self.policy.model
        c = self.config
        if c.gradient_checkpointing:  # transformers 5 names it activation checkpointing; 4.x, gradient checkpointing
            enable = getattr(self.model, "activation_checkpointing_enable", self.model.gradient_checkpointing_enable)
            enable({"use_reentrant": False})
        self.sampler = StartSampler(c.resampling, c.anchors, c.rollback_at, c.fork_gap, c.seed)
        self.settings = LossSettings(c.gamma, c.mask_low, c.mask_high, c.lambda_rl, c.lambda_il)
        self.rng = random.Random(c.seed)
        self.envs: list[gym.Env] | None = None
        self.updates_done = 0

    # -- one update -----------------------------------------------------------------------------------------------

    def train(self, updates: int) -> list[dict[str, float]]:
        return [self.update() for _ in range(updates)]

    def update(self) -> dict[str, float]:
        started = time.perf_counter()
        tasks = self._tasks()
        self._ensure_experts(tasks)
        starts = self.sampler.starts(tasks, self.config.rollouts_per_task)
        stats = RolloutStats()
        rollouts = self.rollouts(starts, stats)
        batch, groups = self.batch(starts, rollouts)
        optimized = self.optimize(batch)
        self.updates_done += 1
        return self._metrics(rollouts, groups, batch, optimized, stats, time.perf_counter() - started)

    def rollouts(self, starts: list[StartState], stats: RolloutStats) -> list[Trajectory]:
        """Play the starts with the current weights (env-spoiled rollouts resampled, then marked)."""
        c = self.config
        return collect(
            self._envs(),
            self.policy,
            starts=starts,
            harness=HarnessConfig(c.max_context_tokens, c.context, c.max_new_tokens),
            seed=c.seed * 100_003 + self.updates_done * 1_009,
            temperature=c.temperature,
            resample=c.resample_env_errors,
            stats=stats,
            max_env_exceptions=max(3, len(starts)),
        )

    def batch(
        self, starts: list[StartState], rollouts: list[Trajectory]
    ) -> tuple[ChunkBatch, dict[tuple[str, int], list[Trajectory]]]:
        """The chunk batch of an update (scored rollouts, imitation targets) and the rollouts by (task, start)."""
        batch = ChunkBatch()
        groups: dict[tuple[str, int], list[Trajectory]] = defaultdict(list)
        for start, trajectory in zip(starts, rollouts, strict=True):
            if not trajectory.scored:  # dynamic filtering: still spoiled after resampling
                continue
            self.sampler.record(start, trajectory)
            groups[(trajectory.task_id, len(start.prefix))].append(trajectory)
            batch.add_rollout(trajectory, self.return_of(trajectory), self.config.gamma)
            if self.config.experts in ("self", "both"):
                self.sampler.offer(trajectory)
        if self.config.imitation:
            for target in self.sampler.imitation(groups):
                batch.add_imitation(self.sampler.experts[target.task_id], target.upto, self.config.gamma)
        return batch, groups

    def return_of(self, trajectory: Trajectory) -> float:
        """R(τ): the env's return, plus ``failure_return`` when the trajectory failed."""
        return trajectory.reward + (0.0 if trajectory.resolved else self.config.failure_return)

    # -- the gradient step ----------------------------------------------------------------------------------------

    def optimize(self, batch: ChunkBatch) -> dict[str, float]:
        """π_old for the batch, then ``epochs`` passes of the IPA loss; the step's figures."""
        if not batch.rows:
            return {
                "loss": 0.0,
                "tokens": 0.0,
                "grad_norm": 0.0,
                "masked_fraction": 0.0,
                "imitation_share": 0.0,
                "mean_ratio": 1.0,
            }
        groups = self._micro_batches(batch)
        with torch.no_grad():
            old = [self._logprobs(rows) for rows in groups]
        tensors = [self._tokens(batch, rows, lp_old) for rows, lp_old in zip(groups, old, strict=True)]
        normalizer = self._batch_tokens(
            sum(unmasked_tokens(t.logp_old, t.logp_mu, t.chunk, t.imitation, self.settings) for t in tensors)
        )
        figures: dict[str, float] = {}
        self.model.train()
        for _ in range(self.config.epochs):
            self.optimizer.zero_grad(set_to_none=True)
            outputs = []
            for rows, t in zip(groups, tensors, strict=True):
                t.logp = self._logprobs(rows)
                out = ipa_loss(t, self.settings, normalizer)
                out.loss.backward()
                outputs.append(out)
            self._reduce_gradients()
            figures["grad_norm"] = clip_gradients(self.model, self.config.max_grad_norm)
            self.optimizer.step()
            figures["loss"] = sum(float(o.loss.detach()) for o in outputs)
        self.policy.update_weights(self.model)
        chunks = sum(o.chunks for o in outputs) or 1
        figures["tokens"] = float(normalizer)
        figures["masked_fraction"] = sum(o.masked_fraction * o.chunks for o in outputs) / chunks
        figures["mean_ratio"] = sum(o.mean_ratio * o.chunks for o in outputs) / chunks
        figures["imitation_share"] = sum(o.imitation_share * o.tokens for o in outputs) / max(normalizer, 1)
        return figures

    def _batch_tokens(self, tokens: int) -> int:
        """The loss's normalizer: the batch's unmasked tokens (a data-parallel rank, `learners.distributed`, sums
        its shard's over all ranks)."""
        return tokens

    def _reduce_gradients(self) -> None:
        """Where data-parallel ranks sum their gradients before clipping (`learners.distributed`); here, nothing."""

    def _micro_batches(self, batch: ChunkBatch) -> list[list[Any]]:
        """The rows of each forward pass: ``micro_batch`` segments, or the segments of ``micro_batch`` packed rows."""
        size = max(1, self.config.micro_batch)
        if self.config.pack_tokens <= 0:
            return [batch.rows[i : i + size] for i in range(0, len(batch.rows), size)]
        bins = first_fit_decreasing([len(row.ids) for row in batch.rows], self.config.pack_tokens)
        return [[batch.rows[i] for b in bins[k : k + size] for i in b] for k in range(0, len(bins), size)]

    def _logprobs(self, rows: list[Any]) -> Any:
        c = self.config
        pad_id = self.policy.tokenizer.pad_token_id or 0
        with self._precision():
            if c.pack_tokens > 0:
                return packed_logprobs(self.model, rows, c.temperature, c.logprob_chunk, c.pack_tokens, pad_id)
            ids, positions = [r.ids for r in rows], [r.positions for r in rows]
            return taken_logprobs(self.model, ids, positions, c.temperature, c.logprob_chunk, pad_id)

    def _precision(self) -> Any:
        """bf16 autocast where the config asks for it (``bf16``: CUDA only by default), else a no-op context."""
        device = torch.device(self.config.device).type
        enabled = self.config.bf16 if self.config.bf16 is not None else device == "cuda"
        return torch.autocast(device, dtype=torch.bfloat16, enabled=enabled)

    def _tokens(self, batch: ChunkBatch, rows: list[Any], logp_old: Any) -> ChunkTokens:
        """The micro-batch's tokens, with its chunks renumbered from 0."""
        device = logp_old.device
        global_ids = sorted({c for r in rows for c in r.chunks})
        local = {c: i for i, c in enumerate(global_ids)}
        chunk = torch.tensor([local[c] for r in rows for c in r.chunks], dtype=torch.long, device=device)
        return ChunkTokens(
            logp=None,
            logp_old=logp_old,
            logp_mu=torch.tensor([m for r in rows for m in r.mu], device=device),
            chunk=chunk,
            chunk_return=torch.tensor([batch.returns[c] for c in global_ids], device=device),
            success=torch.tensor([batch.success[c] for c in global_ids], dtype=torch.bool, device=device),
            imitation=torch.tensor([batch.imitation[c] for c in global_ids], dtype=torch.bool, device=device),
        )

    # -- tasks, experts, envs --------------------------------------------------------------------------------------

    def _tasks(self) -> list[str]:
        known = sorted(self._envs()[0].unwrapped.by_id)  # type: ignore[attr-defined]
        return self.rng.sample(known, min(self.config.tasks_per_update, len(known)))

    def _ensure_experts(self, tasks: list[str]) -> None:
        """Play the reference solution of each task that has no expert yet, recorded with the model's tokenizer."""
        if self.config.experts == "self" or self.config.resampling == "none" and not self.config.imitation:
            return
        missing = [t for t in tasks if t not in self.sampler.experts]
        if not missing:
            return
        from learners.policies.expert import ExpertPolicy

        env = self._envs()[0].unwrapped
        expert = ExpertPolicy(self.config.env.tool_format, tasks=env.tasks)  # type: ignore[attr-defined]
        played = collect(
            self._envs(),
            expert,
            task_ids=missing,
            tokenizer=self.policy.tokenizer,
            resample=self.config.resample_env_errors,
        )
        for trajectory in played:
            if trajectory.resolved:
                self.sampler.experts[trajectory.task_id] = trajectory

    def _envs(self) -> list[gym.Env]:
        if self.envs is None:
            self.envs = [self.config.env.make() for _ in range(self.config.env.num_envs)]
        return self.envs

    # -- metrics, checkpoints --------------------------------------------------------------------------------------

    def _metrics(
        self,
        rollouts: list[Trajectory],
        groups: dict,
        batch: ChunkBatch,
        optimized: dict[str, float],
        stats: RolloutStats,
        seconds: float,
    ) -> dict[str, float]:
        scored = [t for t in rollouts if t.scored]
        plain = [t for (_, k), ts in groups.items() if k == 0 for t in ts]
        rl_returns = [r for r, imitated in zip(batch.returns, batch.imitation, strict=True) if not imitated]
        return {
            "update": float(self.updates_done),
            "success_rate": _mean([float(t.resolved) for t in scored]),
            "plain_success_rate": _mean([float(t.resolved) for t in plain]) if plain else float("nan"),
            "chunk_return": _mean(rl_returns),
            "episodes": float(len(scored)),
            "dropped": float(len(rollouts) - len(scored)),
            "env_errors": float(stats.env_errors),
            "mean_turns": _mean([float(len(t.sampled)) for t in scored]),
            "imitation_targets": float(sum(batch.imitation)),
            "seconds": seconds,
            **optimized,
        }

    def save(self, path: str | Path | None = None) -> None:
        """Write the model and tokenizer (``save_pretrained``; load with ``HFPolicy(path)``)."""
        target = Path(path or self.config.output_dir or "")
        if not str(path or self.config.output_dir or ""):
            raise ValueError("save() needs a path, or output_dir in the config")
        target.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(target)
        self.policy.tokenizer.save_pretrained(target)

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs besides the weights: optimizer, sampler, RNGs, the update count."""
        return {**trainer_state(self), "sampler": self.sampler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_trainer_state(self, state)
        self.sampler.load_state_dict(state["sampler"])

    def close(self) -> None:
        for env in self.envs or []:
            env.close()
        self.envs = None


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0
