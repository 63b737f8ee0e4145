"""Log-probabilities of the taken tokens, without ever holding fp32 logits over the whole vocabulary and sequence.

The model's trunk runs once over each packed row; the output head and the log-softmax then run over slices of at
most ``chunk`` selected positions at a time, each slice under activation checkpointing, so the backward pass
recomputes one slice's logits instead of keeping all of them. Only positions that predict a token some chunk owns are
projected at all. Peak memory for the head is O(chunk × vocab), not O(tokens × vocab) (slime #2253 is the OOM this
avoids).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.checkpoint import checkpoint


def trunk_and_head(model: Any) -> tuple[Any, Any]:
    """A causal LM's trunk (returning hidden states) and its output head."""
    head = model.get_output_embeddings()
    trunk = getattr(model, "base_model", None)
    if head is None or trunk is None or trunk is model:
        raise TypeError(f"{type(model).__name__} has no separate trunk and output head (base_model, lm_head)")
    return trunk, head


def taken_logprobs(
    model: Any,
    rows: Sequence[Sequence[int]],
    positions: Sequence[Sequence[int]],
    temperature: float = 1.0,
    chunk: int = 1024,
    pad_id: int = 0,
) -> Any:
    """log π(ids[p] | ids[:p]) for each row and each position p listed for it, flat, in row then position order.

    Args:
        model: a causal LM (``base_model`` and an output head).
        rows: token sequences, one forward each (right-padded into one batch).
        positions: per row, the positions (≥ 1) whose token's log-probability is wanted.
        temperature: divides the logits (the sampler's temperature, for π_old and π_θ alike).
        chunk: positions projected through the head at once.
        pad_id: the id written into padding.
    """
    device = next(model.parameters()).device
    width = max(len(r) for r in rows)
    ids = torch.tensor([list(r) + [pad_id] * (width - len(r)) for r in rows], device=device)
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=device)
    trunk, head = trunk_and_head(model)
    hidden = trunk(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
    row_index = torch.tensor([i for i, ps in enumerate(positions) for _ in ps], device=device, dtype=torch.long)
    at = torch.tensor([p for ps in positions for p in ps], device=device, dtype=torch.long)
    if at.numel() == 0:
        return hidden.sum() * 0.0 + torch.zeros(0, device=device)
    states = hidden[row_index, at - 1]  # the state before position p predicts token p
    targets = ids[row_index, at]
    return head_logprobs(head, states, targets, temperature, chunk)


def head_logprobs(head: Any, states: Any, targets: Any, temperature: float = 1.0, chunk: int = 1024) -> Any:
    """log softmax(head(states) / temperature)[targets], ``chunk`` states at a time (each slice checkpointed when
    gradients flow), in fp32 whatever the head's dtype."""
    pieces = [
        _sliced(head, states[s : s + chunk], targets[s : s + chunk], temperature) for s in range(0, len(targets), chunk)
    ]
    return torch.cat(pieces)


def _sliced(head: Any, states: Any, targets: Any, temperature: float) -> Any:
    if torch.is_grad_enabled() and states.requires_grad:
        return checkpoint(_head_logprobs, head, states, targets, temperature, use_reentrant=False)
    return _head_logprobs(head, states, targets, temperature)


def _head_logprobs(head: Any, states: Any, targets: Any, temperature: float) -> Any:
    logits = head(states).float() / temperature
    return logits.log_softmax(-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
