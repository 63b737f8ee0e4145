"""The baselines end to end on real containers: SFT on expert trajectories, REINFORCE with a group baseline."""

from __future__ import annotations

import json
import math

import pytest

import learners
from learners.policies import ExpertPolicy, HFPolicy, Turn, prompt_ids
from learners.rollout import collect

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
    played = collect("rock/Terminal-v0", ExpertPolicy(), 1, env_kwargs={"tasks": short_tasks, "backend": docker})
    collected.write_text("".join(json.dumps(t.to_dict()) + "\n" for t in played))
    recorded = tmp_path / "recorded.jsonl"
    env = RecordTrajectory(gym.make("rock/Terminal-v0", tasks=short_tasks, backend=docker), recorded)
    try:
        _, info = env.reset(seed=0)
        expert, conversation, done = ExpertPolicy(), [], False
        while not done:
            (turn,) = expert.generate([conversation], task_ids=[info["task_id"]])
            conversation.append({"role": "assistant", "content": turn.text})
            _, _, terminated, truncated, _ = env.step(turn.text)
            done = terminated or truncated
    finally:
        env.close()
    for path in (collected, recorded):
        learner = learners.make("sft", policy=str(tiny_model), trajectories=str(path), batch_size=1)
        (metrics,) = learner.train(1)
        assert metrics["tokens"] > 20 and len(learner.examples) == 1, path.name


class HalfExpert:
    """Teacher-forces the expert's turns through the model (its ids and µ) in every other episode; samples the rest.

    The tiny random model never solves a task, so on-policy rewards would all be 0 and every advantage 0.
    """

    def __init__(self, policy: HFPolicy) -> None:
        self.policy, self.expert, self.modes = policy, ExpertPolicy(), {}  # type: ignore[var-annotated]

    def generate(self, conversations, tools=None, *, task_ids, **kwargs):  # type: ignore[no-untyped-def]
        sampled = self.policy.generate(conversations, tools, **kwargs)
        taught = self.expert.generate(conversations, tools, task_ids=task_ids)
        turns = []
        for conversation, own, expert in zip(conversations, sampled, taught, strict=True):
            if self.modes.setdefault(id(conversation), len(self.modes) % 2 == 0):
                tokenizer = self.policy.tokenizer
                prompt = prompt_ids(tokenizer, conversation, tools)
                completion = tokenizer(expert.text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
                own = Turn(expert.text, prompt, completion, self.policy.logprobs(prompt, completion))
            turns.append(own)
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
