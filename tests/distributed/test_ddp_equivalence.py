"""Two data-parallel ranks take exactly the in-process learner's step, and the collective transport moves it.

Three processes form the run's torch.distributed world over gloo, as the actors do on Ray (no Ray here): learner
ranks 0 and 1 each run `IPALearner.optimize` on their shard of one chunk batch, then rank 0 broadcasts its weights to
a `Generator` (rank 2). The test process runs the in-process `IPALearner.optimize` on the whole batch: the weights
and the figures must agree.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from learners.ipa.chunks import ChunkBatch, Row  # noqa: E402
from learners.ipa.config import IPAConfig  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

MASKED_CHUNK = 5
IMITATION_CHUNK = 3


def synthetic_batch(vocab: int, rows: int = 5, seed: int = 0) -> ChunkBatch:
    """Rows of random ids, two chunks in the second half of each; µ near a random model's log-probabilities (one
    chunk's far off, so the mismatch mask drops it), returns of both signs, one imitation chunk."""
    rng = random.Random(seed)
    batch = ChunkBatch()
    for r in range(rows):
        n = rng.randint(16, 48)
        row = Row([rng.randrange(vocab) for _ in range(n)])
        for p in range(n // 2, n):
            chunk = 2 * r + int(p >= 3 * n // 4)
            row.positions.append(p)
            row.chunks.append(chunk)
            row.mu.append(-30.0 if chunk == MASKED_CHUNK else -7.0 + rng.uniform(-0.5, 0.5))
        batch.rows.append(row)
    for c in range(2 * rows):
        batch.returns.append(rng.choice([1.0, 0.9, -1.0, -0.5]))
        batch.success.append(batch.returns[-1] > 0)
        batch.imitation.append(c == IMITATION_CHUNK)
    return batch


def config_for(model: Path) -> IPAConfig:
    return IPAConfig(policy=f"hf:{model}", learning_rate=1e-2, micro_batch=2, max_grad_norm=0.5, epochs=2)


def rank_main(rank: int, port: int, model: str, batch: ChunkBatch, out: str) -> None:
    """One member of the world (learners 0 and 1, the generator 2); writes what it ends with to ``out/<rank>.pt``."""
    from learners.distributed.generator import Generator
    from learners.distributed.learner import LearnerWorker, shard_batch
    from learners.distributed.sync import World, cpu_state, distinct_tensors, weights_digest

    world = World("127.0.0.1", port, learners=2, generators=1)
    result: dict[str, Any]
    if rank < 2:
        worker = LearnerWorker(config_for(Path(model)), rank)
        worker.join(world)
        figures = worker.step(shard_batch(batch, 2)[rank])
        sent = worker.send() if rank == 0 else 0
        result = {"figures": figures, "state": cpu_state(worker.learner.model), "sent": sent, "digest": worker.digest()}
    else:
        generator = Generator(model, engine="hf")
        generator.join(world, rank)
        received = generator.receive(version=1)
        digest = weights_digest(distinct_tensors(generator.policy.model))
        result = {"received": received, "digest": digest, "version": generator.version}
    torch.save(result, Path(out) / f"{rank}.pt")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_ranks_step_as_one_process_and_the_broadcast_delivers_it(tiny_model, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from learners.distributed.learner import combine_figures, shard_batch
    from learners.ipa.learner import IPALearner

    reference = IPALearner(config_for(tiny_model))
    before = {name: value.clone() for name, value in reference.model.state_dict().items()}
    batch = synthetic_batch(vocab=reference.model.config.vocab_size)
    expected = reference.optimize(batch)

    context = torch.multiprocessing.get_context("spawn")
    port = free_port()
    arguments = [(r, port, str(tiny_model), batch, str(tmp_path)) for r in range(3)]
    members = [context.Process(target=rank_main, args=args) for args in arguments]
    for member in members:
        member.start()
    for member in members:
        member.join(timeout=240)
    assert [m.exitcode for m in members] == [0, 0, 0]
    ranks = [torch.load(tmp_path / f"{r}.pt", weights_only=False) for r in range(3)]

    for name, value in reference.model.state_dict().items():
        # The same step up to float rounding (sums in another order), which Adam's normalized step can lift to a
        # few parts in a thousand of the step itself.
        step = (value - before[name]).abs().max()
        assert (ranks[0]["state"][name] - value).abs().max() <= 1e-2 * step, name
        assert torch.equal(ranks[0]["state"][name], ranks[1]["state"][name]), name
    figures = combine_figures([ranks[0]["figures"], ranks[1]["figures"]], shard_batch(batch, 2))
    assert 0 < expected["masked_fraction"] < 1 and 0 < expected["imitation_share"] < 1
    for key in ("loss", "tokens", "grad_norm", "imitation_share"):
        assert figures[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-6), key
    # Chunk averages are taken per forward pass, then weighted: they move with how rows fall into passes.
    assert 0 < figures["masked_fraction"] < 1 and figures["mean_ratio"] == pytest.approx(expected["mean_ratio"], 0.05)
    assert ranks[0]["digest"] == ranks[1]["digest"] == ranks[2]["digest"] and ranks[2]["version"] == 1
    assert ranks[0]["sent"] == ranks[2]["received"] > 0
