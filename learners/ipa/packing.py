"""Several token segments per forward pass, without padding waste and without attention across segments.

`pack_rows` places segments (anything with ``.ids`` and ``.positions``, such as `learners.ipa.chunks.Row`) into rows
of at most ``budget`` tokens, first-fit decreasing. Position ids restart at 0 in each segment, so a segment sees the
same rotary positions as it would alone, and attention never crosses a segment's boundary:

- flash-attention-2/3 (on a GPU where the ``flash_attn`` package is installed): every segment goes into one flat row
  with no padding at all; the kernel reads the boundaries from ``cu_seq_lens`` (the varlen path, ``position_ids``
  for the rotary embedding, no mask);
- sdpa, eager and the rest: a 4D block-diagonal causal mask of shape (rows, 1, width, width), which transformers
  passes to the attention unchanged. sdpa reads a bool mask (True: attend); eager adds a float mask (0 or the
  dtype's minimum) to the scores. Rows holding a single segment need no mask at all (plain causal attention; the
  padding after it is never attended to), which keeps sdpa on its flash kernel.

`packed_logprobs` returns exactly what `learners.ipa.logprobs.taken_logprobs` returns (same tokens, same order), with
the head run over slices under activation checkpointing as there.

Examples:
    >>> first_fit_decreasing([3, 5, 2, 4], budget=7)
    [[1, 2], [0, 3]]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from learners.ipa.logprobs import head_logprobs, trunk_and_head

#: Attention implementations that take packed segments as one flat row with ``cu_seq_lens`` (varlen).
VARLEN_ATTENTION = ("flash_attention_2", "flash_attention_3")


class Segment(Protocol):
    """What packing reads from a row (`learners.ipa.chunks.Row` is one)."""

    ids: list[int]
    positions: list[int]


def first_fit_decreasing(lengths: Sequence[int], budget: int) -> list[list[int]]:
    """Group items (by index) into bins of at most ``budget`` total length, longest item first.

    An item longer than ``budget`` gets a bin of its own. Bins are in order of opening; indices within a bin ascend.
    """
    bins: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        fit = next((b for b, free in enumerate(room) if lengths[i] <= free), None)
        if fit is None:
            bins.append([i])
            room.append(budget - lengths[i])
        else:
            bins[fit].append(i)
            room[fit] -= lengths[i]
    return [sorted(b) for b in bins]


@dataclass
class PackedRows:
    """Segments laid out in rows, and where each wanted token landed.

    Attributes:
        ids: (rows, width) token ids, padding after the last segment of a row.
        position_ids: (rows, width) positions, restarting at 0 in each segment (padding continues the last one, up
            to the longest segment's last position).
        segment: (rows, width) index of the segment each token belongs to; -1 on padding.
        lengths: per segment (input order), its length.
        flat: the varlen layout: one row, the segments in input order, no padding.
        multi: whether some row holds more than one segment (else plain causal attention is exact).
        row, column: per wanted token, flat and in input order (segment, then its positions), where it sits.
    """

    ids: Any
    position_ids: Any
    segment: Any
    lengths: list[int]
    flat: bool
    multi: bool
    row: Any
    column: Any

    def attention_inputs(self, implementation: str, dtype: Any) -> dict[str, Any]:
        """Keyword arguments for the trunk's forward besides ``input_ids``: position ids, and the mask or the
        varlen boundaries the attention ``implementation`` needs."""
        inputs: dict[str, Any] = {"position_ids": self.position_ids}
        if implementation in VARLEN_ATTENTION:
            if not self.flat:
                raise ValueError(f"{implementation} reads packed segments from one flat row: pack with flat=True")
            bounds = [0]
            for length in self.lengths:
                bounds.append(bounds[-1] + length)
            cu = torch.tensor(bounds, dtype=torch.int32, device=self.ids.device)
            longest = max(self.lengths)
            inputs.update(cu_seq_lens_q=cu, cu_seq_lens_k=cu, max_length_q=longest, max_length_k=longest)
        elif self.multi:
            inputs["attention_mask"] = block_causal_mask(self.segment, implementation, dtype)
        return inputs


def pack_rows(
    segments: Sequence[Segment], budget: int, *, flat: bool = False, pad_id: int = 0, device: Any = "cpu"
) -> PackedRows:
    """Lay segments out in rows of at most ``budget`` tokens (first-fit decreasing), or in one flat row.

    Args:
        segments: rows with ``ids`` and ``positions`` (the positions ≥ 1 whose token's log-probability is wanted).
        budget: tokens per packed row; a longer segment gets a row of its own.
        flat: one row holding every segment, no padding (the varlen layout of flash-attention).
        pad_id: the id written into padding.
        device: where the tensors go.
    """
    lengths = [len(s.ids) for s in segments]
    bins = [list(range(len(segments)))] if flat else first_fit_decreasing(lengths, budget)
    width = max(sum(lengths[i] for i in b) for b in bins)
    longest = max(lengths)
    ids, positions, owner = [], [], []
    where: dict[int, tuple[int, int]] = {}
    for r, members in enumerate(bins):
        row_ids: list[int] = []
        row_pos: list[int] = []
        row_owner: list[int] = []
        for i in members:
            where[i] = (r, len(row_ids))
            row_ids += segments[i].ids
            row_pos += range(lengths[i])
            row_owner += [i] * lengths[i]
        pad = width - len(row_ids)
        ids.append(row_ids + [pad_id] * pad)
        # Padding continues the last segment's positions (no new sequence starts there, for transformers' own
        # packing detection), never past the longest segment's (a model with a position table has those).
        after = row_pos[-1] + 1
        positions.append(row_pos + [min(p, longest - 1) for p in range(after, after + pad)])
        owner.append(row_owner + [-1] * pad)
    row = [where[i][0] for i, s in enumerate(segments) for _ in s.positions]
    column = [where[i][1] + p for i, s in enumerate(segments) for p in s.positions]
    return PackedRows(
        ids=torch.tensor(ids, dtype=torch.long, device=device),
        position_ids=torch.tensor(positions, dtype=torch.long, device=device),
        segment=torch.tensor(owner, dtype=torch.long, device=device),
        lengths=lengths,
        flat=flat,
        multi=any(len(b) > 1 for b in bins),
        row=torch.tensor(row, dtype=torch.long, device=device),
        column=torch.tensor(column, dtype=torch.long, device=device),
    )


def block_causal_mask(segment: Any, implementation: str, dtype: Any) -> Any:
    """The (rows, 1, width, width) mask letting each token see the earlier tokens of its own segment only.

    Padding (segment -1) forms one more block, so no query row is fully masked (a fully masked row would make NaNs
    that reach the real tokens through the values). Eager attention adds the mask to the scores: a float mask, 0
    or the dtype's minimum. Every other implementation (sdpa first) takes a bool mask, True where attention is
    allowed.
    """
    width = segment.shape[1]
    causal = torch.ones(width, width, dtype=torch.bool, device=segment.device).tril()
    allowed = (segment[:, :, None] == segment[:, None, :]) & causal
    allowed = allowed[:, None]
    if implementation != "eager":
        return allowed
    zero = torch.zeros((), dtype=dtype, device=segment.device)
    return torch.where(allowed, zero, torch.finfo(dtype).min)


def attention_implementation(model: Any) -> str:
    """The attention implementation a transformers model runs with ("sdpa", "eager", "flash_attention_2", ...)."""
    return str(getattr(model.config, "_attn_implementation", None) or "eager")


def packed_logprobs(
    model: Any,
    segments: Sequence[Segment],
    temperature: float = 1.0,
    chunk: int = 1024,
    pack_tokens: int = 4096,
    pad_id: int = 0,
) -> Any:
    """log π(ids[p] | ids[:p]) for each segment and each of its positions p, flat, in segment then position order.

    The same values, in the same order, as ``taken_logprobs(model, [s.ids ...], [s.positions ...])``, from one
    forward pass over the segments packed into rows of ``pack_tokens`` tokens (one flat row under flash-attention).

    Args:
        model: a causal LM (``base_model`` and an output head).
        segments: rows with ``ids`` and ``positions`` (`learners.ipa.chunks.Row`).
        temperature: divides the logits.
        chunk: positions projected through the head at once.
        pack_tokens: tokens per packed row (ignored under flash-attention, which packs everything in one row).
        pad_id: the id written into padding.
    """
    device = next(model.parameters()).device
    dtype = next(p.dtype for p in model.parameters() if p.is_floating_point())
    implementation = attention_implementation(model)
    packed = pack_rows(segments, pack_tokens, flat=implementation in VARLEN_ATTENTION, pad_id=pad_id, device=device)
    trunk, head = trunk_and_head(model)
    inputs = packed.attention_inputs(implementation, dtype)
    hidden = trunk(input_ids=packed.ids, use_cache=False, **inputs).last_hidden_state
    if packed.row.numel() == 0:
        return hidden.sum() * 0.0 + torch.zeros(0, device=device)
    states = hidden[packed.row, packed.column - 1]  # the state before position p predicts token p
    targets = packed.ids[packed.row, packed.column]
    return head_logprobs(head, states, targets, temperature, chunk)
