"""`IPAConfig`: every knob of the IPA learner, each documented (fields of `LearnerConfig`: env, seed)."""

from __future__ import annotations

from dataclasses import dataclass

from learners.base import LearnerConfig


@dataclass
class IPAConfig(LearnerConfig):
    """Interaction-Perceptive Agentic Policy Optimization (``shared/IPA.md``)."""

    policy: str = ""
    """The policy to train: `hf:PATH` (or a bare PATH) of a model directory in `save_pretrained` layout."""
    tasks_per_update: int = 4
    """Distinct tasks per update."""
    rollouts_per_task: int = 4
    """Rollouts per task per update (spread over the start anchors in parallel mode)."""
    gamma: float = 0.95
    """Chunk discount: G_k = γ^(K−k)·R."""
    failure_return: float = -1.0
    """Added to the env's return of a scored, unresolved trajectory, so failures carry a signal (IPA.md, §1)."""
    mask_low: float = 0.0
    """Lower bound of the train/inference mismatch mask on exp(mean(log π_old − log µ)) per chunk."""
    mask_high: float = 5.0
    """Upper bound of that mask: chunks whose sampler and trainer disagree more are dropped."""
    lambda_rl: float = 1.0
    """Weight of the chunk-level RL term."""
    lambda_il: float = 0.5
    """Weight of the imitation fallback on expert chunks up to a fork with no success."""
    resampling: str = "parallel"
    """Where rollouts start on the experts: "parallel" (anchors spread over the expert's chunks), "rollback"
    (sequential, from the last chunk back), or "none" (plain rollouts)."""
    anchors: int = 2
    """Start anchors per task in parallel mode (evenly spread from chunk 0 to the last)."""
    rollback_at: float = 0.5
    """Success rate at which a rollback start moves one chunk earlier."""
    fork_gap: float = 0.5
    """Rise in success rate across one chunk that marks it a crucial fork."""
    experts: str = "reference"
    """Where expert trajectories come from: "reference" (the tasks' reference solutions), "self" (the policy's own
    successes), or "both"."""
    imitation: bool = True
    """Add the imitation fallback when a start's rollouts all fail."""
    learning_rate: float = 1e-5
    """AdamW's step size."""
    weight_decay: float = 0.0
    """AdamW's decoupled weight decay."""
    max_grad_norm: float = 1.0
    """Gradients are clipped to this total norm (0: none); the metric is the norm before clipping."""
    epochs: int = 1
    """Optimizer passes over each update's batch (with more than one, ρ_c moves away from 1)."""
    micro_batch: int = 4
    """Segments per forward pass."""
    logprob_chunk: int = 1024
    """Positions projected through the output head at once (bounds the logits' memory)."""
    temperature: float = 1.0
    """Sampling temperature; π_old and π_θ are computed at the same temperature."""
    max_new_tokens: int = 128
    """Tokens a turn may sample."""
    max_context_tokens: int | None = 4096
    """The harness's budget per request (plus `max_new_tokens`); an episode that cannot fit fails with "context"."""
    context: str = "keep"
    """The harness's context policy ("keep", "elide", "drop", "summary", "elide+drop", ...)."""
    resample_env_errors: int = 2
    """Dynamic filtering: a rollout the env spoiled is played again from the same start up to this many times; one
    still spoiled is dropped, never scored."""
    device: str = "cpu"
    """Where the model trains and samples."""
    output_dir: str | None = None
    """Where `save()` writes when called without a path."""
