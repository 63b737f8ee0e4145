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
    """Segments per forward pass; with ``pack_tokens`` > 0, packed rows per forward pass (and the segments in them)."""
    logprob_chunk: int = 1024
    """Positions projected through the output head at once (bounds the logits' memory)."""
    pack_tokens: int = 4096
    """Tokens per packed row: segments share rows up to this length (first-fit decreasing), each with its own
    position ids and attention (`learners.ipa.packing`); a longer segment gets a row of its own. 0: one segment per
    row, right-padded."""
    bf16: bool | None = None
    """Forward passes under bf16 autocast; weights, gradients and optimizer state stay fp32 (the master copy).
    None: on CUDA only; True: on any device (bf16 on CPU is slow); False: never."""
    gradient_checkpointing: bool = False
    """Recompute each decoder layer's activations in the backward pass instead of keeping them: far less activation
    memory for about a third more compute."""
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

    # -- distributed mode (`learners.distributed`): Ray actors for rollouts, generation and DDP training ------------

    ray_address: str | None = None
    """The Ray cluster to run on: "auto", "HOST:PORT", or None (one local Ray instance when workers are asked for,
    else everything in this process, as without Ray)."""
    rollout_workers: int = 0
    """Rollout actors, each owning ``env.num_envs`` envs on its node (0: one when distributed)."""
    learner_workers: int = 0
    """Learner actors training with DDP, each on a shard of every batch (0: one when distributed)."""
    rollout_resources: list[str] | None = None
    """Per rollout actor, the custom node resource it asks one unit of (``ray start --resources='{"node_a": 2}'``),
    cycling when shorter: how actors are pinned to nodes. None: actors spread over the nodes."""
    max_weight_lag: int = 0
    """Updates the generator's weights may lag behind the learner's when a chunk is sampled (0: on-policy; 1 or more
    lets the next batch be sampled while this one trains)."""
    generator: str = "auto"
    """The generator actors' engine: "hf", "vllm", or "auto" (vLLM where installed and on CUDA, else HF)."""
    generator_workers: int = 1
    """Generator actors; rollout worker i samples from generator i mod this many."""
    weight_sync: str = "auto"
    """How weights reach the generators: "object_store" (Ray's), "collective" (a torch.distributed broadcast from
    learner rank 0), or "auto" (collective on CUDA, where NCCL moves them device to device; else the object store)."""

    @property
    def distributed(self) -> bool:
        """Whether this config runs on Ray (`learners.distributed`): an address or workers are given."""
        return self.ray_address is not None or self.rollout_workers > 0 or self.learner_workers > 0
