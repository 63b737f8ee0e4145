"""The collector on real envs: the expert resolves tasks, token policies' records are exact, prefix starts replay
the expert, env errors are resampled and never scored, the async collector plays what the barrier one plays."""

from __future__ import annotations

import pytest

import rock_gym  # noqa: F401 - registers the rock/* ids
from learners.config import EnvConfig
from learners.policies import ExpertPolicy, HFPolicy
from learners.rollout import RolloutStats, StartState, collect
from rock_gym.agent.harness import HarnessConfig
from rock_gym.agent.tokens import ChatTemplate
from rock_gym.envs.record import Outcome

pytestmark = pytest.mark.container


def terminal(tasks, backend: str = "docker", **fields) -> EnvConfig:  # type: ignore[no-untyped-def]
    return EnvConfig("rock/Terminal-v0", tasks=tasks, backend=backend, **fields)


def test_expert_resolves_tasks_with_chunk_boundaries(docker: str, short_tasks) -> None:  # type: ignore[no-untyped-def]
    stats, seen = RolloutStats(), []
    trajectories = collect(
        terminal(short_tasks, num_envs=2), ExpertPolicy(), 3, seed=0, stats=stats, on_trajectory=seen.append
    )
    assert len(trajectories) == 3 and len(seen) == 3
    for trajectory in trajectories:
        assert trajectory.outcome == Outcome.SUCCESS and trajectory.reward == 1.0 and trajectory.terminated
        assert trajectory.ending == "submitted" and trajectory.tool_format == "hermes"
        assert [chunk.index for chunk in trajectory.chunks] == [0, 1, 2]
        assert [chunk.reward for chunk in trajectory.chunks] == [0.0, 0.0, 1.0]
        assert trajectory.chunks[0].step.tool_calls[0].name == "bash"
        assert trajectory.chunks[-1].step.tool_calls[0].name == "submit"
        assert "exit 0" in trajectory.chunks[0].observation
        assert [m["role"] for m in trajectory.conversation()][:4] == ["system", "user", "assistant", "tool"]
        assert trajectory.segments == []  # a text policy, no tokenizer: no ids
    assert [t.seed for t in trajectories] == [0, 1, 2]  # episode j is reset with seed + j, whichever env plays it
    assert stats.turns == 9 and stats.generate_calls >= 3 and stats.resets == 3


def test_task_ids_play_groups_of_the_same_task(docker: str, short_tasks) -> None:  # type: ignore[no-untyped-def]
    wanted = [short_tasks[0].task_id] * 2 + [short_tasks[1].task_id]
    trajectories = collect(terminal(short_tasks, num_envs=2), ExpertPolicy(), task_ids=wanted)
    assert [t.task_id for t in trajectories] == wanted
    assert all(t.resolved for t in trajectories)


def test_the_tiny_policy_through_real_episodes_gives_exact_token_records(backend: str, tiny_model, short_tasks) -> None:  # type: ignore[no-untyped-def]
    policy = HFPolicy(tiny_model)
    given: list[list[int]] = []
    sample = policy.sample

    def recording(prompts, **kwargs):  # type: ignore[no-untyped-def]
        given.extend(list(p) for p in prompts)
        return sample(prompts, **kwargs)

    policy.sample = recording  # type: ignore[method-assign]
    trajectories = collect(
        terminal(short_tasks, backend, num_envs=2, max_turns=3), policy, 2, harness=HarnessConfig(max_new_tokens=8)
    )
    template = ChatTemplate(policy.tokenizer, trajectories[0].tools)
    requests = []
    for trajectory in trajectories:
        assert trajectory.truncated and trajectory.ending == "turn_limit" and trajectory.outcome == Outcome.FAILURE
        assert len(trajectory.chunks) == 3 and len(trajectory.segments) >= 1
        for chunk in trajectory.chunks:
            request = trajectory.request_ids(chunk.index)
            requests.append(request)
            assert 0 < len(chunk.completion_ids) == len(chunk.logprobs) <= 8
            assert chunk.action == template.content(chunk.completion_ids, frozenset(policy.eos_ids))
        first, second = trajectory.chunks[:2]
        if second.segment == first.segment:  # append-only: the second request extends the first
            assert trajectory.request_ids(1) == trajectory.request_ids(0) + first.completion_ids + first.observation_ids
            assert template.decode(first.observation_ids).count(first.observation[:20]) == 1
    assert sorted(map(tuple, requests)) == sorted(map(tuple, given))  # the learner reads what the policy was given
    assert trajectories[0].stats.context_tokens == [len(trajectories[0].request_ids(k)) for k in range(3)]


def test_a_budget_below_the_first_request_ends_the_episode_as_a_context_failure(
    docker: str, tiny_model, short_tasks
) -> None:  # type: ignore[no-untyped-def]
    harness = HarnessConfig(max_context_tokens=50, max_new_tokens=8)
    cut = collect(terminal(short_tasks, num_envs=2), HFPolicy(tiny_model), 2, harness=harness)
    assert [(t.ending, t.truncated, t.outcome, len(t.chunks)) for t in cut] == [("context", True, "failure", 0)] * 2


def test_prefix_starts_replay_the_expert_and_reproduce_its_observations(docker: str, tiny_model, short_tasks) -> None:  # type: ignore[no-untyped-def]
    task = short_tasks[0]
    (expert_run,) = collect(terminal(short_tasks), ExpertPolicy(), task_ids=[task.task_id])
    prefix = tuple(c.action for c in expert_run.chunks[:2])
    policy = HFPolicy(tiny_model)
    (resumed,) = collect(
        terminal(short_tasks, max_turns=3),
        policy,
        starts=[StartState(task.task_id, prefix)],
        harness=HarnessConfig(max_new_tokens=8),
    )
    assert resumed.start == 2 and [c.replayed for c in resumed.chunks] == [True, True, False]
    assert [c.action for c in resumed.chunks[:2]] == list(prefix)
    assert [c.observation for c in resumed.chunks[:2]] == [c.observation for c in expert_run.chunks[:2]]
    template = ChatTemplate(policy.tokenizer, resumed.tools)
    assert resumed.chunks[0].completion_ids == template.encode(prefix[0]) + [template.end_id]
    assert resumed.chunks[0].logprobs == [] and len(resumed.chunks[2].logprobs) == len(resumed.chunks[2].completion_ids)
    # the request after the replayed turns is the template's render of the conversation so far, token for token
    assert template.decode(resumed.request_ids(2)) == template.render(resumed.conversation()[:6], True)


def test_env_errors_are_resampled_from_the_same_start_and_never_scored(docker: str, short_tasks) -> None:  # type: ignore[no-untyped-def]
    stats = RolloutStats()
    starts = [StartState(short_tasks[0].task_id), StartState("no-such-task")]
    good, spoiled = collect(
        terminal(short_tasks, num_envs=2), ExpertPolicy(), starts=starts, resample=2, stats=stats, max_env_exceptions=5
    )
    assert good.outcome == Outcome.SUCCESS
    assert spoiled.outcome == Outcome.ENV_ERROR and not spoiled.scored and spoiled.ending == "env_exception"
    assert "no-such-task" in (spoiled.error or "")
    assert stats.env_errors == 3 and stats.resampled == 2  # the first try and two resamples


def test_a_policy_of_another_tool_format_is_refused_before_any_sandbox_starts(short_tasks) -> None:  # type: ignore[no-untyped-def]
    env = terminal(short_tasks, backend="docker", engine_url="unix:///nonexistent.sock")
    with pytest.raises(ValueError, match="writes tool calls as 'openai' but the env parses 'hermes'"):
        collect(env, ExpertPolicy(tool_format="openai"), 1)
    with pytest.raises(ValueError, match="unknown tool format 'yaml'"):
        collect(env.replace(tool_format="yaml"), ExpertPolicy(), 1)


def test_the_async_collector_plays_what_the_barrier_collector_plays(docker: str, short_tasks) -> None:  # type: ignore[no-untyped-def]
    env = terminal(short_tasks, num_envs=3)
    runs = []
    for barrier in (True, False):
        stats = RolloutStats()
        trajectories = collect(env, ExpertPolicy(), 4, seed=5, barrier=barrier, stats=stats)
        runs.append(
            [(t.task_id, [c.action for c in t.chunks], [c.observation for c in t.chunks]) for t in trajectories]
        )
    assert runs[0] == runs[1]
