"""IPA's pieces against values computed by hand: returns, ratios, the mismatch mask, the outcome split, the
normalization, imitation; chunk batches from records; start states and the imitation rule; sliced log-probs."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from learners.ipa.chunks import ChunkBatch  # noqa: E402
from learners.ipa.loss import ChunkTokens, LossSettings, chunk_returns, ipa_loss, unmasked_tokens  # noqa: E402
from learners.ipa.resample import StartSampler, anchor_points  # noqa: E402
from learners.rollout import StartState  # noqa: E402
from rock_gym.envs.record import Chunk, Outcome, Segment, Trajectory  # noqa: E402


def tokens(logp, old, mu, chunk, returns, success, imitation=None):  # type: ignore[no-untyped-def]
    n = len(returns)
    return ChunkTokens(
        torch.tensor(logp, requires_grad=True),
        torch.tensor(old),
        torch.tensor(mu),
        torch.tensor(chunk),
        torch.tensor(returns),
        torch.tensor(success),
        torch.tensor(imitation or [False] * n),
    )


def test_chunk_returns_discount_by_distance_to_the_last_chunk() -> None:
    assert chunk_returns([0, 1, 2, 3], 3, -1.0, 0.9) == pytest.approx([-0.729, -0.81, -0.9, -1.0])
    assert chunk_returns([2], 2, 1.0, 0.5) == [1.0]


def test_success_has_no_importance_weight_and_failure_a_clipped_detached_one() -> None:
    # chunk 0: a success, 2 tokens; chunk 1: a failure whose ratio exp(mean(-0.5 - -0.4)) = e^-0.1 < 1;
    # chunk 2: a failure whose ratio e^+0.2 > 1 is clipped to 1; chunk 3: a one-token failure.
    batch = tokens(
        logp=[-1.0, -2.0, -0.5, -0.3, -0.2],
        old=[-1.0, -2.0, -0.4, -0.5, -0.2],
        mu=[-1.0, -2.0, -0.4, -0.5, -0.2],
        chunk=[0, 0, 1, 2, 3],
        returns=[0.5, -1.0, -0.9, -0.81],
        success=[True, False, False, False],
    )
    out = ipa_loss(batch, LossSettings())
    rho1 = math.exp(-0.1)
    expected = -(0.5 * (-3.0) + rho1 * -1.0 * -0.5 + 1.0 * -0.9 * -0.3 + 1.0 * -0.81 * -0.2) / 5
    assert out.loss.item() == pytest.approx(expected, rel=1e-6)
    out.loss.backward()
    grads = batch.logp.grad.tolist()
    assert grads == pytest.approx([-0.5 / 5, -0.5 / 5, rho1 * 1.0 / 5, 0.9 / 5, 0.81 / 5], rel=1e-5)
    assert out.tokens == 5 and out.masked_fraction == 0.0 and out.clipped_fraction == pytest.approx(1 / 3)


def test_the_mismatch_mask_drops_chunks_and_the_normalizer_counts_only_kept_tokens() -> None:
    # chunk 1's trainer and sampler disagree: exp(mean(old - mu)) = e^2 > 5 -> masked out entirely.
    batch = tokens(
        logp=[-1.0, -1.0, -1.0],
        old=[-1.0, -1.0, -1.0],
        mu=[-1.0, -3.0, -3.0],
        chunk=[0, 1, 1],
        returns=[1.0, 1.0],
        success=[True, True],
    )
    out = ipa_loss(batch, LossSettings(mask_high=5.0))
    assert out.loss.item() == pytest.approx(1.0 / 1) and out.tokens == 1 and out.masked_fraction == 0.5
    assert unmasked_tokens(batch.logp_old, batch.logp_mu, batch.chunk, batch.imitation, LossSettings()) == 1
    # a lower bound masks too
    low = ipa_loss(batch, LossSettings(mask_low=0.5, mask_high=100.0))
    assert low.tokens == 3


def test_an_all_masked_or_empty_batch_gives_a_zero_loss_without_nan() -> None:
    masked = tokens(logp=[-1.0], old=[-1.0], mu=[-9.0], chunk=[0], returns=[1.0], success=[False])
    out = ipa_loss(masked, LossSettings())
    assert out.loss.item() == 0.0 and out.tokens == 0 and out.masked_fraction == 1.0
    out.loss.backward()
    assert masked.logp.grad.tolist() == [0.0]
    empty = ChunkTokens(
        torch.zeros(0, requires_grad=True),
        torch.zeros(0),
        torch.zeros(0),
        torch.zeros(0, dtype=torch.long),
        torch.zeros(0),
        torch.zeros(0, dtype=torch.bool),
        torch.zeros(0, dtype=torch.bool),
    )
    assert ipa_loss(empty, LossSettings()).loss.item() == 0.0


def test_imitation_chunks_are_weighted_by_lambda_il_and_never_masked() -> None:
    batch = tokens(
        logp=[-2.0, -1.0],
        old=[-2.0, -1.0],
        mu=[0.0, -1.0],
        chunk=[0, 1],
        returns=[0.9, -1.0],
        success=[True, False],
        imitation=[True, False],
    )
    out = ipa_loss(batch, LossSettings(lambda_il=0.5, lambda_rl=2.0))
    # imitation: 0.5 * 0.9 * (-2); RL failure, ratio 1: 2.0 * 1 * -1.0 * -1.0
    assert out.loss.item() == pytest.approx(-(0.5 * 0.9 * -2.0 + 2.0 * -1.0 * -1.0) / 2)
    assert out.imitation_share == 0.5 and out.masked_fraction == 0.0
    # a normalizer from the whole batch divides a micro-batch's loss
    assert ipa_loss(batch, LossSettings(lambda_il=0.5, lambda_rl=2.0), normalizer=4).loss.item() == pytest.approx(
        out.loss.item() / 2
    )


def recorded(task: str = "t", resolved: bool = True, replayed: int = 0) -> Trajectory:
    """A two-chunk trajectory in one segment: prompt [1, 2, 3], chunk 0 [4, 5] + obs [6], chunk 1 [7, 8]."""
    chunks = [
        Chunk(
            0,
            "a",
            replayed=replayed > 0,
            completion_ids=[4, 5],
            logprobs=[] if replayed else [-0.1, -0.2],
            observation_ids=[6],
        ),
        Chunk(1, "b", completion_ids=[7, 8], logprobs=[-0.3, -0.4]),
    ]
    return Trajectory(
        task,
        chunks=chunks,
        segments=[Segment(0, 0, "start", [1, 2, 3])],
        outcome=Outcome.SUCCESS if resolved else Outcome.FAILURE,
        start=replayed,
    )


def test_a_chunk_batch_puts_loss_only_on_sampled_tokens_with_their_returns() -> None:
    batch = ChunkBatch()
    assert batch.add_rollout(recorded(resolved=False), -1.0, 0.5) == 2
    (row,) = batch.rows
    assert row.ids == [1, 2, 3, 4, 5, 6, 7, 8]
    assert row.positions == [3, 4, 6, 7] and row.chunks == [0, 0, 1, 1] and row.mu == [-0.1, -0.2, -0.3, -0.4]
    assert batch.returns == [-0.5, -1.0] and batch.success == [False, False] and batch.tokens == 4
    # a replayed prefix chunk carries no RL loss, but is an imitation target
    replayed = ChunkBatch()
    replayed.add_rollout(recorded(replayed=1), 1.0, 0.5)
    assert replayed.rows[0].positions == [6, 7] and replayed.imitation == [False]
    replayed.add_imitation(recorded(replayed=1), upto=0, gamma=0.5)
    assert replayed.rows[1].positions == [3, 4] and replayed.imitation == [False, True]
    assert replayed.returns[1] == 0.5


def expert(task: str, chunks: int) -> Trajectory:
    return Trajectory(task, chunks=[Chunk(i, f"step {i}") for i in range(chunks)], outcome=Outcome.SUCCESS)


def test_parallel_starts_spread_over_the_expert_and_replay_its_prefix() -> None:
    sampler = StartSampler("parallel", anchors=3)
    sampler.experts["t"] = expert("t", 4)
    starts = sampler.starts(["t", "u"], 4)
    assert [len(s.prefix) for s in starts[:4]] == [0, 2, 3, 0] and anchor_points(3, 3) == [0, 2, 3]
    assert starts[2] == StartState("t", ("step 0", "step 1", "step 2"))
    assert starts[4:] == [StartState("u")] * 4  # no expert: plain rollouts


def test_rollback_starts_at_the_last_chunk_and_moves_back_as_success_rises() -> None:
    sampler = StartSampler("rollback", rollback_at=0.5)
    sampler.experts["t"] = expert("t", 3)
    (start,) = sampler.starts(["t"], 1)
    assert len(start.prefix) == 2
    sampler.record(start, Trajectory("t", outcome=Outcome.FAILURE))
    assert len(sampler.starts(["t"], 1)[0].prefix) == 2
    sampler.record(start, Trajectory("t", outcome=Outcome.SUCCESS))  # 1 of 2: the rate is reached
    assert len(sampler.starts(["t"], 1)[0].prefix) == 1


def test_the_imitation_term_comes_only_when_a_fork_has_no_success() -> None:
    sampler = StartSampler("parallel", anchors=3, fork_gap=0.5)
    sampler.experts["t"] = expert("t", 4)
    fail, win = Trajectory("t", outcome=Outcome.FAILURE), Trajectory("t", outcome=Outcome.SUCCESS)
    for k, outcome in [(0, fail), (0, fail), (1, fail), (2, win), (2, win), (3, win)]:
        sampler.record(sampler.start("t", k), outcome)
    assert sampler.crucial_forks("t") == [1]  # rate(2) - rate(1) = 1.0
    groups = {("t", 0): [fail, fail], ("t", 2): [win, fail]}
    (target,) = sampler.imitation(groups)
    assert (target.task_id, target.upto) == ("t", 1)  # up to and including the crucial chunk after the start
    assert sampler.imitation({("t", 2): [win, fail]}) == []
    assert sampler.imitation({("t", 3): [fail]})[0].upto == 3  # no fork after it: the start's own chunk


def test_the_sampler_state_round_trips() -> None:
    sampler = StartSampler("rollback")
    sampler.experts["t"] = recorded()
    sampler.record(StartState("t", ("a",)), Trajectory("t", outcome=Outcome.SUCCESS))
    again = StartSampler("rollback")
    again.load_state_dict(sampler.state_dict())
    assert again.tries == sampler.tries and again.position == sampler.position
    assert again.experts["t"].request_ids(1) == sampler.experts["t"].request_ids(1)
    assert again.rng.random() == sampler.rng.random()


def test_sliced_logprobs_equal_one_full_pass_with_the_same_gradients(tiny_model) -> None:  # type: ignore[no-untyped-def]
    from learners.ipa.logprobs import taken_logprobs
    from learners.policies.hf import HFPolicy, completion_logprobs

    model = HFPolicy(tiny_model).model
    rows, positions = [[5, 6, 7, 8, 9, 10], [11, 12, 13]], [[3, 4, 5], [1, 2]]
    sliced = taken_logprobs(model, rows, positions, temperature=0.7, chunk=2)
    full = torch.cat(completion_logprobs(model, [([5, 6, 7], [8, 9, 10]), ([11], [12, 13])], temperature=0.7))
    assert torch.allclose(sliced, full, atol=1e-5)
    sliced.sum().backward()
    first = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    full.sum().backward()
    assert all(torch.allclose(a, p.grad, atol=1e-5) for a, p in zip(first, model.parameters(), strict=True))
