"""The distributed mode's pieces that need no cluster: config, slicing and sharding, placement options, the
generator's version guard, the version ledger; and that importing rock_gym and learners loads no Ray."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from learners.ipa.chunks import ChunkBatch, Row
from learners.ipa.config import IPAConfig
from rock_gym.agent.harness import Completion
from rock_gym.envs.record import Chunk, Trajectory


def test_importing_rock_gym_and_learners_loads_no_ray() -> None:
    code = (
        "import sys, rock_gym, learners, learners.ipa, learners.ipa.config, learners.distributed\n"
        "from learners.ipa.config import IPAConfig\n"
        "assert IPAConfig(ray_address='auto').distributed\n"
        "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_config_asks_for_ray_with_an_address_or_workers() -> None:
    assert not IPAConfig().distributed
    assert IPAConfig(ray_address="auto").distributed and IPAConfig(ray_address="10.0.0.1:6379").distributed
    assert IPAConfig(rollout_workers=2).distributed and IPAConfig(learner_workers=1).distributed


def test_slices_cover_every_start_once_in_order() -> None:
    pytest.importorskip("ray")
    from learners.distributed.driver import slices

    assert slices(5, 2) == [range(0, 3), range(3, 5)]
    assert slices(1, 3) == [range(0, 1), range(1, 1), range(1, 1)]
    for jobs in range(0, 9):
        for workers in range(1, 4):
            assert [j for s in slices(jobs, workers) for j in s] == list(range(jobs))


def test_rollout_workers_ask_for_their_node_resource_in_turn() -> None:
    pytest.importorskip("ray")
    from learners.distributed.cluster import rollout_placement

    assert [rollout_placement(i, ["node_a", "node_b"]) for i in range(3)] == [
        {"resources": {"node_a": 1}},
        {"resources": {"node_b": 1}},
        {"resources": {"node_a": 1}},
    ]
    assert rollout_placement(0, None) == {"scheduling_strategy": "SPREAD"}


def test_transport_and_engine_choices() -> None:
    pytest.importorskip("torch")
    from learners.distributed.generator import choose_engine
    from learners.distributed.sync import choose_transport

    assert choose_transport("auto", "cpu", "hf") == "object_store"
    assert choose_transport("auto", "cuda:0", "hf") == "collective"
    assert choose_transport("auto", "cuda", "vllm") == "object_store"
    assert choose_transport("collective", "cpu", "hf") == "collective"
    with pytest.raises(ValueError, match="needs an HF generator"):
        choose_transport("collective", "cuda", "vllm")
    with pytest.raises(ValueError, match="unknown weight_sync"):
        choose_transport("nccl", "cuda", "hf")
    assert choose_engine("auto", "cpu") == "hf" and choose_engine("vllm", "cpu") == "vllm"
    with pytest.raises(ValueError, match="unknown generator"):
        choose_engine("tgi", "cpu")


def batch_of(lengths: list[int]) -> ChunkBatch:
    batch = ChunkBatch()
    for i, n in enumerate(lengths):
        batch.rows.append(Row(list(range(n)), positions=[n - 1], chunks=[i], mu=[-1.0]))
        batch.returns.append(1.0)
        batch.success.append(True)
        batch.imitation.append(False)
    return batch


def test_shards_hold_every_row_once_balanced_and_keep_the_chunk_lists() -> None:
    pytest.importorskip("torch")
    from learners.distributed.learner import shard_batch

    batch = batch_of([50, 10, 40, 30, 20])
    shards = shard_batch(batch, 2)
    rows = sorted(id(r) for s in shards for r in s.rows)
    assert rows == sorted(id(r) for r in batch.rows)
    assert [sum(len(r.ids) for r in s.rows) for s in shards] == [80, 70]
    assert all(s.returns is batch.returns and s.imitation is batch.imitation for s in shards)
    lonely = shard_batch(batch_of([7]), 3)  # fewer rows than ranks: the others get a row with no loss positions
    assert [len(s.rows) for s in lonely] == [1, 1, 1] and lonely[1].tokens == lonely[2].tokens == 0


def test_combined_figures_sum_the_loss_and_weigh_chunk_averages() -> None:
    pytest.importorskip("torch")
    from learners.distributed.learner import combine_figures, shard_batch

    shards = shard_batch(batch_of([50, 10, 40]), 2)  # 1 chunk + 2 chunks
    common = {"tokens": 3.0, "grad_norm": 0.5}
    ranks = [
        {**common, "loss": 1.0, "masked_fraction": 1.0, "mean_ratio": 1.0, "imitation_share": 0.25},
        {**common, "loss": 2.0, "masked_fraction": 0.0, "mean_ratio": 2.5, "imitation_share": 0.5},
    ]
    combined = combine_figures(ranks, shards)
    weights = [len({c for r in s.rows for c in r.chunks}) for s in shards]
    assert combined["loss"] == 3.0 and combined["tokens"] == 3.0 and combined["grad_norm"] == 0.5
    assert combined["imitation_share"] == 0.75
    assert combined["masked_fraction"] == pytest.approx(weights[0] / 3)
    assert combined["mean_ratio"] == pytest.approx((1.0 * weights[0] + 2.5 * weights[1]) / 3)


def test_the_ledger_stamps_sampled_chunks_with_the_version_that_sampled_them() -> None:
    pytest.importorskip("ray")
    from learners.distributed.rollout import VersionLedger

    ledger = VersionLedger()
    ledger.record([Completion([1, 2], [-0.5, -0.25]), Completion([3], [-1.0])], version=4)
    ledger.record([Completion([5, 6], [-0.1, -0.2])], version=5)
    trajectory = Trajectory("t", chunks=[
        Chunk(0, "replayed", replayed=True, completion_ids=[9], logprobs=[]),
        Chunk(1, "a", completion_ids=[1, 2], logprobs=[-0.5, -0.25]),
        Chunk(2, "b", completion_ids=[5, 6], logprobs=[-0.1, -0.2]),
    ])  # fmt: skip
    ledger.stamp(trajectory)
    assert [c.weight_version for c in trajectory.chunks] == [None, 4, 5]


@pytest.fixture(scope="module")
def generator(tiny_model):  # type: ignore[no-untyped-def]
    from learners.distributed.generator import Generator

    return Generator(str(tiny_model), engine="hf", wait_s=30.0)


def test_the_generator_waits_for_the_weights_a_caller_needs(generator) -> None:  # type: ignore[no-untyped-def]
    generator.set_version(0)
    results: list = []
    caller = threading.Thread(
        target=lambda: results.append(generator.sample([[1, 2, 3]], max_new_tokens=2, seed=0, min_version=1))
    )
    caller.start()
    time.sleep(0.5)
    assert results == []  # version 0 is too old for this call
    generator.set_version(1)
    caller.join(timeout=30)
    (completions, version) = results[0]
    assert version == 1 and len(completions) == 1 and completions[0].ids


def test_the_generator_refuses_when_the_weights_never_come(generator) -> None:  # type: ignore[no-untyped-def]
    generator.set_version(0)
    generator.wait_s = 0.2
    try:
        with pytest.raises(TimeoutError, match="asked for 3 or newer"):
            generator.sample([[1, 2, 3]], max_new_tokens=2, min_version=3)
    finally:
        generator.wait_s = 30.0


def test_the_generator_loads_a_state_dict_as_a_new_version(generator) -> None:  # type: ignore[no-untyped-def]
    import torch

    from learners.distributed.sync import cpu_state, distinct_tensors, state_bytes

    state = {name: torch.zeros_like(value) for name, value in cpu_state(generator.policy.model).items()}
    before = generator.digest()
    generator.load(state, version=7)
    assert generator.version == 7 and generator.digest() != before
    tensors = distinct_tensors(generator.policy.model)  # the tiny model ties its head to the embeddings
    assert len(tensors) == len(state) - 1
    assert state_bytes(tensors) == sum(t.numel() * t.element_size() for t in tensors)


def test_rock_gym_train_refuses_a_ray_address_for_a_learner_without_a_distributed_mode(tmp_path) -> None:
    from click.testing import CliRunner

    from rock_gym.cli import main

    args = ["train", "--learner", "reinforce", "--out", str(tmp_path / "run"), "--ray-address", "auto"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "no distributed mode" in result.output
