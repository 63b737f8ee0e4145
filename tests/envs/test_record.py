"""RecordTrajectory: one JSON line per episode, and replaying a recorded prefix reproduces what the episode saw.

Docker only, to keep the suite quick on small machines: the recorder does not touch the engine.
"""

from __future__ import annotations

import doctest
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gymnasium.wrappers import RecordEpisodeStatistics, TimeLimit

from rock_gym.envs import record
from rock_gym.envs.record import RecordTrajectory, load_trajectories, replay_options
from rock_gym.envs.swe import SWEEnv
from rock_gym.envs.terminal import TerminalEnv
from rock_gym.tasks import builtin_swe_tasks, terminal_tasks
from rock_gym.tools import ToolCall, get_format

pytestmark = pytest.mark.container

SWE_TASK = builtin_swe_tasks()[0]
TERMINAL_TASK = terminal_tasks(families=["config-edit"], seeds=[0])[0]
TURN_FIELDS = {"action", "tool_calls", "tool_results", "observation", "reward", "terminated", "truncated"}
#: pytest prints its run time ("1 passed in 0.02s"): the one timing in the expert turns' observations.
PYTEST_TIME = re.compile(r" in \d+\.\d+s\b")


def expert_actions(task: Any) -> list[str]:
    hermes = get_format("hermes")
    return [hermes.render([ToolCall(c.name, c.arguments) for c in turn]) for turn in task.expert_turns]


def timing_free(observation: str) -> str:
    return PYTEST_TIME.sub(" in <time>", observation)


def play(env: Any, actions: list[str]) -> tuple[str, float, bool, bool, dict[str, Any]]:
    for action in actions:
        result = env.step(action)
    return result


@pytest.fixture(scope="module")
def docker(docker_engine) -> str:  # type: ignore[no-untyped-def]
    """Docker only; skipped where it is unreachable (a failure when ROCK_GYM_REQUIRE_ENGINES names docker)."""
    return "docker"


@pytest.fixture(scope="module")
def recorded(docker: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The SWE task solved by its expert turns, recorded once for the module."""
    path = tmp_path_factory.mktemp("record") / "trajectories.jsonl"
    env = RecordTrajectory(SWEEnv(tasks=[SWE_TASK], backend=docker), path)
    try:
        env.reset(seed=7, options={"task_id": SWE_TASK.instance_id})
        play(env, expert_actions(SWE_TASK))
    finally:
        env.close()
    (trajectory,) = load_trajectories(path)
    return trajectory


@pytest.fixture
def swe_env(docker: str) -> Iterator[SWEEnv]:
    env = SWEEnv(tasks=[SWE_TASK], backend=docker)
    yield env
    env.close()


def test_line_holds_the_whole_episode(recorded: dict[str, Any]) -> None:
    actions = expert_actions(SWE_TASK)
    assert recorded["task_id"] == SWE_TASK.instance_id and recorded["seed"] == 7 and recorded["prefix"] == []
    assert SWE_TASK.problem_statement.splitlines()[0] in recorded["observation"]
    assert [turn["action"] for turn in recorded["turns"]] == actions
    for turn, expert in zip(recorded["turns"], SWE_TASK.expert_turns, strict=True):
        assert set(turn) >= TURN_FIELDS
        assert [call["name"] for call in turn["tool_calls"]] == [call.name for call in expert]
        assert len(turn["tool_results"]) == len(expert) and turn["step_seconds"] > 0
        assert "format_error" not in turn
    assert PYTEST_TIME.search(recorded["turns"][2]["observation"])  # "3 passed in 0.01s": normalised on replay
    last = recorded["turns"][-1]
    assert last["terminated"] and not last["truncated"] and last["reward"] == 1.0 and last["ending"] == "submitted"
    assert recorded["return"] == 1.0 and recorded["terminated"] and not recorded["unfinished"]
    assert recorded["verification"]["resolved"] and recorded["verification"]["error"] is None
    assert recorded["error"] is None and recorded["verifier_error"] is None


def test_format_error_is_recorded(docker: str, tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    env = RecordTrajectory(TerminalEnv(tasks=[TERMINAL_TASK], backend=docker), path)
    env.reset()
    env.step("<tool_call>not json</tool_call>")
    env.close()
    (trajectory,) = load_trajectories(path)
    assert trajectory["turns"][0]["format_error"] and trajectory["turns"][0]["tool_calls"] == []
    assert trajectory["unfinished"] and trajectory["abandoned_by"] == "close"


@pytest.mark.parametrize("k", [1, 3])
def test_replayed_prefix_reproduces_the_episode(recorded: dict[str, Any], swe_env: SWEEnv, k: int) -> None:
    observation, info = swe_env.reset(options=replay_options(recorded, turns=k))
    assert info["turn"] == k
    assert timing_free(observation) == timing_free(recorded["turns"][k - 1]["observation"])
    for turn in recorded["turns"][k:]:
        observation, reward, terminated, truncated, _ = swe_env.step(turn["action"])
        assert timing_free(observation) == timing_free(turn["observation"])
        assert (reward, terminated, truncated) == (turn["reward"], turn["terminated"], turn["truncated"])
    assert reward == recorded["return"] == 1.0


def test_prefix_that_ends_the_episode_is_refused(recorded: dict[str, Any], swe_env: SWEEnv) -> None:
    with pytest.raises(ValueError, match="use turns=3"):
        replay_options(recorded, turns=4)
    with pytest.raises(ValueError, match="between 0 and 4"):
        replay_options(recorded, turns=5)
    everything = {"task_id": SWE_TASK.instance_id, "prefix": [turn["action"] for turn in recorded["turns"]]}
    with pytest.raises(ValueError, match="ended the episode at turn 4: drop its last turn"):
        swe_env.reset(options=everything)


def test_standard_wrappers_stack_on_top(docker: str, tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    actions = expert_actions(TERMINAL_TASK)
    inner = RecordTrajectory(TerminalEnv(tasks=[TERMINAL_TASK], backend=docker), path)
    env = RecordEpisodeStatistics(TimeLimit(inner, max_episode_steps=len(actions) + 5))
    try:
        env.reset(seed=1)
        *_, info = play(env, actions)
        assert info["episode"]["r"] == 1.0 and info["episode"]["l"] == len(actions)
        env.reset(seed=2)
        env.step(actions[0])
    finally:
        env.close()
    solved, abandoned = load_trajectories(path)
    assert solved["return"] == 1.0 and len(solved["turns"]) == len(actions) and solved["verification"]["resolved"]
    assert abandoned["unfinished"] and abandoned["abandoned_by"] == "close" and len(abandoned["turns"]) == 1


def test_recorder_outside_time_limit_sees_its_truncation(docker: str, tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    env = RecordTrajectory(
        RecordEpisodeStatistics(TimeLimit(TerminalEnv(tasks=[TERMINAL_TASK], backend=docker), max_episode_steps=1)),
        path,
    )
    try:
        env.reset()
        *_, truncated, info = env.step(expert_actions(TERMINAL_TASK)[0])
        assert truncated and info["episode"]["l"] == 1
    finally:
        env.close()
    (trajectory,) = load_trajectories(path)
    assert trajectory["truncated"] and not trajectory["unfinished"] and len(trajectory["turns"]) == 1


def test_torn_last_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"task_id": "a", "turns": []}) + "\n" + '{"task_id": "b", "tu')
    assert [t["task_id"] for t in load_trajectories(path)] == ["a"]
    path.write_text('{"torn\n' + json.dumps({"task_id": "a"}) + "\n")
    with pytest.raises(ValueError, match="t.jsonl:1 is not a JSON line"):
        load_trajectories(path)


def test_docstring_examples() -> None:
    result = doctest.testmod(record)
    assert result.attempted > 0 and result.failed == 0
