"""IPA's chunk-level objective (``shared/IPA.md``, paper §3.2.4), on flat per-token tensors.

Every token of a batch carries the chunk it belongs to. Per chunk c of trajectory τ with K chunks and return R:

- return          G_c = γ^(K−k) · R                                  (k: the chunk's position, K: the last one's)
- ratio           ρ_c = exp( mean_{t∈c} [log π_θ(t) − log π_old(t)] )
- mismatch mask   m_c = 1[ low ≤ exp( mean_{t∈c} [log π_old(t) − log µ(t)] ) ≤ high ]
- weight          w_c = G_c · m_c                       on successful trajectories (no importance weight)
                  w_c = sg(clip(ρ_c, 0, 1)) · G_c · m_c  on failed ones
- loss            L_RL = − Σ_c w_c · Σ_{t∈c} log π_θ(t)  /  (unmasked tokens)

µ is the sampler's *processed* distribution: the log-probability of each token under the distribution it was drawn
from, after temperature (and top-k/top-p renormalisation) — what `HFPolicy.sample` returns. π_old and π_θ are
recomputed by the trainer at the same temperature, so the mask compares like with like (mixing a processed µ with a
raw π_old is the bias TRL #6789 describes). With top-k/top-p on, µ is renormalised over the kept tokens and the mask
also absorbs that difference; this learner samples with both off.

The imitation fallback adds, for expert chunks up to a crucial fork that no rollout got past,
``L_IL = λ_IL · Σ_c G_c · (−Σ_{t∈c} log π_θ(t))`` (no ratio, no mask: the expert's tokens were never sampled), and
the total is ``λ_RL · L_RL + L_IL`` over the unmasked tokens of both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class LossSettings:
    """The objective's constants (`IPAConfig` fields of the same names)."""

    gamma: float = 0.95
    mask_low: float = 0.0
    mask_high: float = 5.0
    lambda_rl: float = 1.0
    lambda_il: float = 1.0


@dataclass
class ChunkTokens:
    """A batch's tokens, flat, with their chunks.

    Attributes:
        logp: log π_θ per token (differentiable).
        logp_old: log π_old per token (no gradient).
        logp_mu: log µ per token (the sampler's; ignored on imitation chunks).
        chunk: per token, the index of its chunk in the per-chunk tensors.
        chunk_return: per chunk, G_c.
        success: per chunk, whether its trajectory succeeded.
        imitation: per chunk, an expert chunk trained by the imitation term (not the RL term).
    """

    logp: Any
    logp_old: Any
    logp_mu: Any
    chunk: Any
    chunk_return: Any
    success: Any
    imitation: Any


@dataclass
class LossOutput:
    """The loss and what it was made of (floats, for the metrics)."""

    loss: Any
    tokens: int
    chunks: int
    masked_fraction: float
    mean_ratio: float
    clipped_fraction: float
    """Of the failed trajectories' chunks, those whose ratio exceeded 1 and was clipped."""
    imitation_share: float


def chunk_returns(positions: list[int], last: int, reward: float, gamma: float) -> list[float]:
    """G_k = γ^(K−k)·R for chunks at ``positions`` of a trajectory whose last chunk is at ``last``.

    >>> chunk_returns([0, 1, 2], 2, 1.0, 0.5)
    [0.25, 0.5, 1.0]
    """
    return [reward * gamma ** (last - k) for k in positions]


def chunk_mean(values: Any, chunk: Any, chunks: int) -> Any:
    """Per chunk, the mean of its tokens' values (0 for a chunk with no token)."""
    sums = torch.zeros(chunks, dtype=values.dtype, device=values.device).index_add(0, chunk, values)
    counts = torch.zeros(chunks, dtype=values.dtype, device=values.device).index_add(0, chunk, torch.ones_like(values))
    return sums / counts.clamp(min=1)


def ipa_loss(batch: ChunkTokens, settings: LossSettings, normalizer: int | None = None) -> LossOutput:
    """The IPA loss of one batch (see the module docstring); an empty or all-masked batch gives a zero loss.

    ``normalizer`` is the unmasked token count to divide by when this batch is one micro-batch of a larger one
    (`unmasked_tokens` of the whole); by default this batch's own.
    """
    chunks = int(batch.chunk_return.numel())
    if chunks == 0 or batch.logp.numel() == 0:
        return LossOutput(batch.logp.sum() * 0.0, 0, 0, 0.0, 1.0, 0.0, 0.0)
    with torch.no_grad():
        ratio = chunk_mean(batch.logp - batch.logp_old, batch.chunk, chunks).exp()
        kept = kept_chunks(batch.logp_old, batch.logp_mu, batch.chunk, batch.imitation, settings)
        clipped = ratio.clamp(0.0, 1.0)
        importance = torch.where(batch.success | batch.imitation, torch.ones_like(ratio), clipped)
        scale = torch.where(
            batch.imitation, torch.full_like(ratio, settings.lambda_il), torch.full_like(ratio, settings.lambda_rl)
        )
        weight = importance * batch.chunk_return * kept * scale
    per_chunk_logp = torch.zeros(chunks, dtype=batch.logp.dtype, device=batch.logp.device).index_add(
        0, batch.chunk, batch.logp
    )
    token_kept = kept[batch.chunk]
    tokens = int(token_kept.sum())
    loss = -(weight * per_chunk_logp).sum() / max(normalizer if normalizer is not None else tokens, 1)
    rl = ~batch.imitation
    il_tokens = int((batch.imitation[batch.chunk] & token_kept).sum())
    return LossOutput(
        loss=loss,
        tokens=tokens,
        chunks=chunks,
        masked_fraction=float((~kept & rl).sum()) / max(int(rl.sum()), 1),
        mean_ratio=float(ratio[rl].mean()) if bool(rl.any()) else 1.0,
        clipped_fraction=float(((ratio > 1.0) & rl & ~batch.success).sum()) / max(int((rl & ~batch.success).sum()), 1),
        imitation_share=il_tokens / max(tokens, 1),
    )


def kept_chunks(logp_old: Any, logp_mu: Any, chunk: Any, imitation: Any, settings: LossSettings) -> Any:
    """Per chunk, whether the mismatch mask keeps it (imitation chunks always are): m_c of the module docstring."""
    chunks = int(imitation.numel())
    mismatch = chunk_mean(logp_old - logp_mu, chunk, chunks).exp()
    return ((mismatch >= settings.mask_low) & (mismatch <= settings.mask_high)) | imitation


def unmasked_tokens(logp_old: Any, logp_mu: Any, chunk: Any, imitation: Any, settings: LossSettings) -> int:
    """The loss's normalizer: tokens of chunks the mask keeps."""
    if chunk.numel() == 0:
        return 0
    return int(kept_chunks(logp_old, logp_mu, chunk, imitation, settings)[chunk].sum())
