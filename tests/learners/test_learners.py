"""The baselines end to end on real containers: SFT on expert trajectories, REINFORCE with a group baseline."""

from __future__ import annotations

import json
import math

import pytest

import learners
from learners.config import EnvConfig
from learners.policies import ExpertPolicy, HFPolicy, Turn
from learners.rollout import collect
from rock_gym.envs.record import ResetInfo

pytestmark = pytest.mark.container


def test_sft_on_expert_trajectories_lowers_the_loss_and_saves(docker: str, tiny_model, short_tasks, tmp_path) -> None:  # type: ignore[no-untyped-def]
    learner = learners.make(
        "sft",
        policy=f"hf:{tiny_model}",
        tasks=short_tasks,
        backend=docker,
        expert_episodes=2,
        num_envs=2,
        batch_size=2,
        learning_rate=3e-3,
    )
    metrics = learner.train(6)
    losses = [m["loss"] for m in metrics]
    assert all(math.isfinite(loss) for loss in losses) and losses[-1] < losses[0] - 0.5, losses
    assert all(m["tokens"] > 0 for m in metrics)
    learner.save(tmp_path / "sft")
    reloaded = HFPolicy(tmp_path / "sft")
    assert reloaded.generate([[{"role": "user", "content": "hi"}]], max_new_tokens=4, seed=0)[0].completion_ids
    assert json.loads((tmp_path / "sft" / "sft_config.json").read_text())["updates"] == 6


def test_sft_reads_recorded_trajectories(docker: str, tiny_model, short_tasks, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import gymnasium as gym

    from rock_gym.envs.record import RecordTrajectory

    collected = tmp_path / "collected.jsonl"
    played = collect(EnvConfig("rock/Terminal-v0", tasks=short_tasks, backend=docker), ExpertPolicy(), 1)
    collected.write_text("".join(json.dumps(t.to_dict()) + "\n" for t in played))
    recorded = tmp_path / "recorded.jsonl"
    env = RecordTrajectory(gym.make("rock/Terminal-v0", tasks=short_tasks, backend=docker), recorded)
    try:
        _, info = env.reset(seed=0)
        expert, conversation, done = ExpertPolicy(), [], False
        while not done:
            (turn,) = expert.generate([conversation], task_ids=[ResetInfo.from_info(info).task_id])
            conversation.append({"role": "assistant", "content": turn.text})
            _, _, terminated, truncated, _ = env.step(turn.text)
            done = terminated or truncated
    finally:
        env.close()
    for path in (collected, recorded):
        learner = learners.make("sft", policy=str(tiny_model), trajectories=str(path), batch_size=1)
        (metrics,) = learner.train(1)
        assert metrics["tokens"] > 20 and len(learner.examples) == 1, path.name
    # An expert played with the model's tokenizer is read as recorded ids, not re-rendered.
    tokenized = collect(
        EnvConfig("rock/Terminal-v0", tasks=short_tasks, backend=docker), ExpertPolicy(), 1, tokenizer=learner.tokenizer
    )
    (example,) = learner.examples_of(tokenized[0])
    assert example.input_ids == tokenized[0].segment_tokens(0).ids
    labelled = [i for i, label in zip(example.input_ids, example.labels, strict=True) if label != -100]
    assert labelled == [i for c in tokenized[0].chunks for i in c.completion_ids]


class HalfExpert:
    """Plays the expert's turns in every other episode and the model's own samples in the rest (a text policy: the
    collector tokenizes its turns with the learner's tokenizer). The tiny random model never solves a task, so
    on-policy rewards would all be 0 and every advantage 0.

    An episode is the expert's when its first turn was given to the expert, which its later requests show: their
    last assistant message is the expert's previous turn (the model's samples never are)."""

    def __init__(self, policy: HFPolicy) -> None:
        self.policy, self.expert, self.episodes = policy, ExpertPolicy(), 0

    def generate(self, conversations, tools=None, *, task_ids, turn_indices, **kwargs):  # type: ignore[no-untyped-def]
        sampled = self.policy.generate(conversations, tools, **kwargs)
        taught = self.expert.generate(conversations, tools, task_ids=task_ids, turn_indices=turn_indices)
        turns = []
        for conversation, task_id, turn, own, expert in zip(
            conversations, task_ids, turn_indices, sampled, taught, strict=True
        ):
            if turn == 0:
                self.episodes += 1
                expert_mode = self.episodes % 2 == 1
            else:
                last = [m["content"] for m in conversation if m["role"] == "assistant"][-1]
                expert_mode = last == self.expert.turn_text(task_id, turn - 1)
            turns.append(Turn(expert.text) if expert_mode else Turn(own.text))
        return turns


def test_reinforce_updates_end_to_end(docker: str, tiny_model, short_tasks) -> None:  # type: ignore[no-untyped-def]
    learner = learners.make(
        "reinforce",
        policy=f"hf:{tiny_model}",
        tasks=short_tasks[:1],
        backend=docker,
        tasks_per_update=1,
        group_size=2,
        num_envs=2,
        max_turns=3,
        max_new_tokens=8,
        learning_rate=1e-3,
    )
    try:
        learner.sampler = HalfExpert(learner.policy)
        before = {name: p.detach().clone() for name, p in learner.model.named_parameters()}
        metrics = learner.train(2)
    finally:
        learner.close()
    for m in metrics:
        assert all(math.isfinite(value) for value in m.values()), m
        assert m["kept"] == 2 and m["dropped"] == 0 and m["mean_reward"] == 0.5 and m["success_rate"] == 0.5
        assert m["grad_norm"] > 0 and m["tokens"] > 0
    changed = [name for name, p in learner.model.named_parameters() if not p.detach().equal(before[name])]
    assert changed
