"""The collector on real vector envs: the expert resolves tasks, the tiny model's turns keep ids and µ, env errors
are marked and not scored."""

from __future__ import annotations

import gymnasium as gym
import pytest

import rock_gym  # noqa: F401 - registers the rock/* ids
from learners.policies import ExpertPolicy, HFPolicy
from learners.rollout import CONTEXT_LIMIT, RolloutStats, collect

pytestmark = pytest.mark.container


def test_expert_resolves_builtin_tasks_with_chunk_boundaries(docker: str, short_tasks) -> None:  # type: ignore[no-untyped-def]
    stats = RolloutStats()
    seen = []
    trajectories = collect(
        "rock/Terminal-v0",
        ExpertPolicy(),
        episodes=3,
        num_envs=2,
        seed=0,
        env_kwargs={"tasks": short_tasks, "backend": docker},
        stats=stats,
        on_trajectory=seen.append,
    )
    assert len(trajectories) == 3 and len(seen) == 3
    for trajectory in trajectories:
        assert trajectory.resolved and trajectory.reward == 1.0 and trajectory.terminated
        assert not trajectory.env_error and trajectory.ending == "submitted"
        assert [chunk.index for chunk in trajectory.chunks] == [0, 1, 2]
        assert [chunk.reward for chunk in trajectory.chunks] == [0.0, 0.0, 1.0]
        assert trajectory.chunks[0].tool_calls[0]["name"] == "bash" and trajectory.chunks[-1].tool_calls == [
            {"name": "submit", "arguments": {}}
        ]
        assert "exit 0" in trajectory.chunks[0].observation
        assert [m["role"] for m in trajectory.conversation()][:4] == ["system", "user", "assistant", "tool"]
    assert [t.seed for t in trajectories[:2]] == [0, 1]  # the first resets are seeded, the autoreset is not
    assert stats.steps >= 3 and stats.turns_generated == 9


def test_queued_task_ids_play_groups_of_the_same_task(docker: str, short_tasks) -> None:  # type: ignore[no-untyped-def]
    wanted = [short_tasks[0].task_id] * 2 + [short_tasks[1].task_id]
    trajectories = collect(
        "rock/Terminal-v0", ExpertPolicy(), 0, num_envs=2, task_ids=wanted, env_kwargs={"tasks": short_tasks}
    )
    assert sorted(t.task_id for t in trajectories) == sorted(wanted)
    assert all(t.resolved for t in trajectories)


def test_tiny_model_turns_carry_ids_and_logprobs(docker: str, tiny_model, short_tasks) -> None:  # type: ignore[no-untyped-def]
    policy = HFPolicy(tiny_model)
    env_kwargs = {"tasks": short_tasks, "backend": docker, "max_turns": 2}
    trajectories = collect("rock/Terminal-v0", policy, 2, num_envs=2, max_new_tokens=8, env_kwargs=env_kwargs)
    assert len(trajectories) == 2
    for trajectory in trajectories:
        assert trajectory.truncated and trajectory.ending == "turn_limit" and not trajectory.env_error
        assert len(trajectory.chunks) == 2 and trajectory.reward == 0.0
        for chunk in trajectory.chunks:
            assert chunk.prompt_ids and 0 < len(chunk.completion_ids) == len(chunk.logprobs) <= 8
            assert all(logprob <= 0.0 for logprob in chunk.logprobs)
        first, second = trajectory.chunks
        # the second prompt is the first prompt, the first turn and its observation
        assert second.prompt_ids[: len(first.prompt_ids)] == first.prompt_ids
        assert len(second.prompt_ids) > len(first.prompt_ids) + len(first.completion_ids)
    # a context budget below the first prompt ends every episode at once, marked, scored, unverified
    cut = collect("rock/Terminal-v0", policy, 2, num_envs=2, max_prompt_tokens=50, env_kwargs=env_kwargs)
    assert [(t.ending, t.truncated, t.env_error, len(t.chunks)) for t in cut] == [(CONTEXT_LIMIT, True, False, 0)] * 2


class KillsAContainer:
    """The expert, except that before its second turn it removes env 0's container from outside."""

    def __init__(self, envs: gym.vector.VectorEnv, backend: str) -> None:
        self.expert, self.envs, self.backend, self.calls = ExpertPolicy(), envs, backend, 0

    def generate(self, conversations, tools=None, *, task_ids, **kwargs):  # type: ignore[no-untyped-def]
        from rock_gym.sandbox import SandboxConfig
        from rock_gym.sandbox.engines import Engine

        self.calls += 1
        if self.calls == 2:
            container = self.envs.envs[0].episode.sandbox.container_id  # type: ignore[attr-defined]
            Engine.connect(SandboxConfig(backend=self.backend)).remove(container)  # type: ignore[arg-type]
        return self.expert.generate(conversations, tools, task_ids=task_ids)


def test_a_lost_sandbox_is_marked_an_env_error_not_scored(docker: str, short_tasks) -> None:  # type: ignore[no-untyped-def]
    envs = gym.make_vec("rock/Terminal-v0", num_envs=2, tasks=short_tasks, backend=docker)
    try:
        trajectories = collect(envs, KillsAContainer(envs, docker), 2, seed=0)
        assert envs.envs[0].episode is not None  # collect leaves a given env open
    finally:
        envs.close()
    spoiled = [t for t in trajectories if t.env_error]
    assert len(spoiled) == 1, [(t.ending, t.error) for t in trajectories]
    assert spoiled[0].error and "lost" in spoiled[0].error and not spoiled[0].scored
    assert spoiled[0].reward == 0.0 and not spoiled[0].resolved
    (healthy,) = [t for t in trajectories if not t.env_error]
    assert healthy.resolved
