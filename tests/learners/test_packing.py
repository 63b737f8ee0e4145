"""Packed segments: the bins, the layout, and log-probs (and their gradients) equal to one segment per row, with
attention that never crosses a segment's boundary."""

from __future__ import annotations

import random

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from learners.ipa.chunks import Row  # noqa: E402
from learners.ipa.logprobs import taken_logprobs  # noqa: E402
from learners.ipa.packing import first_fit_decreasing, pack_rows, packed_logprobs  # noqa: E402


def segments(lengths: list[int], seed: int = 0) -> list[Row]:
    """Rows of random ids with loss on a random half of the positions (at least one each)."""
    rng = random.Random(seed)
    rows = []
    for n in lengths:
        positions = sorted(rng.sample(range(1, n), max(1, (n - 1) // 2)))
        rows.append(Row([rng.randrange(10, 400) for _ in range(n)], positions))
    return rows


@pytest.fixture(scope="module")
def model(tiny_model):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    model.train()  # the learner's mode (no dropout in this model either way)
    return model


def test_first_fit_decreasing_fills_bins_within_the_budget() -> None:
    lengths = [7, 3, 9, 2, 5, 5, 1, 12]
    bins = first_fit_decreasing(lengths, 10)
    assert sorted(i for b in bins for i in b) == list(range(len(lengths)))
    assert [b for b in bins if sum(lengths[i] for i in b) > 10] == [[7]]  # only the oversized item overflows
    assert bins == [[7], [2, 6], [0, 1], [4, 5], [3]]  # 12 | 9+1 | 7+3 | 5+5 | 2
    assert first_fit_decreasing([], 10) == []


def test_the_layout_restarts_positions_and_finds_every_wanted_token() -> None:
    rows = segments([5, 3, 4, 6])
    packed = pack_rows(rows, budget=9, pad_id=0)
    assert packed.ids.shape[0] == 2 and packed.multi and not packed.flat
    wanted = [(i, p) for i, r in enumerate(rows) for p in r.positions]
    for row, column, (i, p) in zip(packed.row.tolist(), packed.column.tolist(), wanted, strict=True):
        assert packed.ids[row, column] == rows[i].ids[p]
        assert packed.position_ids[row, column] == p and packed.segment[row, column] == i
    assert (packed.segment == -1).sum() == packed.ids.numel() - sum(len(r.ids) for r in rows)


def test_attention_inputs_per_implementation() -> None:
    rows = segments([5, 3, 4])
    single = pack_rows(rows, budget=5)
    assert not single.multi and "attention_mask" not in single.attention_inputs("sdpa", torch.float32)
    packed = pack_rows(rows, budget=12)
    mask = packed.attention_inputs("sdpa", torch.float32)["attention_mask"]
    assert mask.dtype == torch.bool and mask.shape == (1, 1, 12, 12)
    assert mask[0, 0, 7, 5] and not mask[0, 0, 8, 4] and not mask[0, 0, 5, 6]  # own earlier token; neighbour; future
    additive = packed.attention_inputs("eager", torch.float32)["attention_mask"]
    assert torch.equal(additive == 0, mask) and additive.min() == torch.finfo(torch.float32).min
    flat = pack_rows(rows, budget=4, flat=True)
    inputs = flat.attention_inputs("flash_attention_2", torch.bfloat16)
    assert "attention_mask" not in inputs and flat.ids.shape == (1, 12)
    assert inputs["cu_seq_lens_q"].tolist() == [0, 5, 8, 12] and inputs["max_length_k"] == 5
    assert inputs["position_ids"].tolist() == [[0, 1, 2, 3, 4, 0, 1, 2, 0, 1, 2, 3]]
    with pytest.raises(ValueError, match="flat=True"):
        packed.attention_inputs("flash_attention_2", torch.bfloat16)


@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
def test_packed_logprobs_and_gradients_equal_one_segment_per_row(model, implementation: str) -> None:  # type: ignore[no-untyped-def]
    model.set_attn_implementation(implementation)
    try:
        rows = segments([23, 7, 15, 40, 3, 31, 12], seed=1)
        unpacked = taken_logprobs(model, [r.ids for r in rows], [r.positions for r in rows], temperature=0.7, chunk=5)
        packed = packed_logprobs(model, rows, temperature=0.7, chunk=5, pack_tokens=48)
        assert pack_rows(rows, 48).ids.shape[0] < len(rows)  # really packed
        assert packed.shape == unpacked.shape and torch.allclose(packed, unpacked, atol=1e-5)
        model.zero_grad()
        (unpacked * torch.linspace(-1, 1, len(unpacked))).sum().backward()
        expected = [p.grad.clone() for p in model.parameters()]
        model.zero_grad()
        (packed * torch.linspace(-1, 1, len(packed))).sum().backward()
        for (name, p), g in zip(model.named_parameters(), expected, strict=True):
            assert torch.allclose(p.grad, g, atol=1e-5), name
    finally:
        model.zero_grad()
        model.set_attn_implementation("sdpa")


def test_a_segment_packed_beside_another_keeps_its_logprobs(model) -> None:  # type: ignore[no-untyped-def]
    alone, neighbour = segments([17, 25], seed=2)
    with torch.no_grad():
        before = packed_logprobs(model, [alone], pack_tokens=64)
        together = packed_logprobs(model, [neighbour, alone], pack_tokens=64)
        changed = Row(list(neighbour.ids), neighbour.positions)
        changed.ids[3:] = [5] * (len(changed.ids) - 3)
        other = packed_logprobs(model, [changed, alone], pack_tokens=64)
    assert pack_rows([neighbour, alone], 64).ids.shape[0] == 1  # one row, the neighbour first
    n = len(neighbour.positions)
    assert torch.allclose(together[n:], before, atol=1e-6) and torch.allclose(other[n:], before, atol=1e-6)


def test_no_wanted_position_gives_an_empty_differentiable_result(model) -> None:  # type: ignore[no-untyped-def]
    out = packed_logprobs(model, [Row([1, 2, 3], [])], pack_tokens=8)
    assert out.shape == (0,) and out.requires_grad


# -- the learner step --------------------------------------------------------------------------------------------------


def chunk_batch():  # type: ignore[no-untyped-def]
    """Six segments of different lengths, two chunks each, half from successful trajectories."""
    from learners.ipa.chunks import ChunkBatch

    batch = ChunkBatch()
    for i, row in enumerate(segments([23, 7, 15, 40, 9, 31], seed=3)):
        half = len(row.positions) // 2
        row.chunks = [2 * i + (k >= half) for k in range(len(row.positions))]
        row.mu = [-6.7] * len(row.positions)  # about log(1/vocab): the mismatch mask keeps every chunk
        batch.rows.append(row)
        batch.returns += [0.95 if i % 2 else -0.95, 1.0 if i % 2 else -1.0]
        batch.success += [bool(i % 2)] * 2
        batch.imitation += [False, False]
    return batch


@pytest.mark.parametrize("settings", [{}, {"gradient_checkpointing": True}], ids=["packed", "checkpointed"])
def test_the_learner_step_packed_equals_one_segment_per_row(tiny_model, settings: dict) -> None:  # type: ignore[no-untyped-def]
    import learners

    def learner(**fields):  # type: ignore[no-untyped-def]
        return learners.make("ipa", policy=f"hf:{tiny_model}", env_id="rock/Terminal-v0", micro_batch=2, **fields)

    unpacked, packed = learner(pack_tokens=0), learner(pack_tokens=48, **settings)
    assert len(packed._micro_batches(chunk_batch())) < len(unpacked._micro_batches(chunk_batch()))
    a, b = unpacked.optimize(chunk_batch()), packed.optimize(chunk_batch())
    assert a["tokens"] == b["tokens"] > 0 and a["masked_fraction"] == b["masked_fraction"] == 0.0
    assert a["loss"] == pytest.approx(b["loss"], abs=1e-5) and a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-4)
    for (name, p), q in zip(unpacked.model.named_parameters(), packed.model.parameters(), strict=True):
        assert torch.allclose(p.grad, q.grad, atol=1e-5), name
