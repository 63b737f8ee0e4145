"""RecordTrajectory: one version-2 `Trajectory` line per episode; replaying a recorded prefix reproduces what the
episode saw; older files (version-1 recorder lines, old rollout dumps) still load.

Docker only, to keep the suite quick on small machines: the recorder does not touch the engine.
"""

from __future__ import annotations

import doctest
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gymnasium.wrappers import RecordEpisodeStatistics, TimeLimit

from rock_gym.envs import record, wrappers
from rock_gym.envs.record import Outcome, RecordTrajectory, Trajectory, load_trajectories, replay_options
from rock_gym.envs.swe import SWEEnv
from rock_gym.envs.terminal import TerminalEnv
from rock_gym.tasks import builtin_swe_tasks, terminal_tasks
from rock_gym.tools import ToolCall, get_format

SWE_TASK = builtin_swe_tasks()[0]
TERMINAL_TASK = terminal_tasks(families=["config-edit"], seeds=[0])[0]
#: pytest prints its run time ("1 passed in 0.02s"): the one timing in the expert turns' observations.
PYTEST_TIME = re.compile(r" in \d+\.\d+s\b")
DATA = Path(__file__).with_name("data")


def expert_actions(task: Any) -> list[str]:
    hermes = get_format("hermes")
    return [hermes.render([ToolCall(c.name, c.arguments) for c in turn]) for turn in task.expert_turns]


def bash(command: str) -> str:
    return get_format("hermes").render([ToolCall("bash", {"command": command})])


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
def recorded(docker: str, tmp_path_factory: pytest.TempPathFactory) -> Trajectory:
    """The SWE task solved by its expert turns, recorded once for the module."""
    path = tmp_path_factory.mktemp("record") / "trajectories.jsonl"
    env = RecordTrajectory(SWEEnv(tasks=[SWE_TASK], backend=docker), path)
    try:
        env.reset(seed=7, options={"task_id": SWE_TASK.instance_id})
        play(env, expert_actions(SWE_TASK))
    finally:
        env.close()
    (line,) = path.read_text().splitlines()
    assert json.loads(line)["version"] == record.RECORD_VERSION
    (trajectory,) = load_trajectories(path)
    return trajectory


@pytest.fixture
def swe_env(docker: str) -> Iterator[SWEEnv]:
    env = SWEEnv(tasks=[SWE_TASK], backend=docker)
    yield env
    env.close()


@pytest.mark.container
def test_line_holds_the_whole_episode(recorded: Trajectory) -> None:
    actions = expert_actions(SWE_TASK)
    assert recorded.task_id == SWE_TASK.instance_id and recorded.seed == 7 and recorded.start == 0
    assert recorded.tool_format == "hermes" and [m["role"] for m in recorded.messages] == ["system", "user"]
    assert SWE_TASK.problem_statement.splitlines()[0] in recorded.messages[1]["content"]
    assert [t["function"]["name"] for t in recorded.tools] == ["bash", "str_replace_editor", "submit", "todo"]
    assert [chunk.action for chunk in recorded.chunks] == actions
    for index, (chunk, expert) in enumerate(zip(recorded.chunks, SWE_TASK.expert_turns, strict=True)):
        assert chunk.index == index and not chunk.replayed and chunk.step.turn == index + 1
        assert [call.name for call in chunk.step.tool_calls] == [call.name for call in expert]
        assert len(chunk.step.tool_results) == len(expert) and chunk.step.step_seconds > 0
        assert chunk.format_error is None
    assert PYTEST_TIME.search(recorded.chunks[2].observation)  # "3 passed in 0.01s": normalised on replay
    last = recorded.chunks[-1]
    assert last.reward == 1.0 and last.step.ending == "submitted" and last.step.outcome == Outcome.SUCCESS
    assert recorded.reward == 1.0 and recorded.terminated and not recorded.truncated
    assert recorded.ending == "submitted" and recorded.outcome == Outcome.SUCCESS and recorded.scored
    assert recorded.verification.resolved and recorded.verifier_error is None and recorded.error is None
    assert recorded.seconds > 0


@pytest.mark.container
def test_format_error_is_recorded_and_a_closed_episode_is_unfinished(docker: str, tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    env = RecordTrajectory(TerminalEnv(tasks=[TERMINAL_TASK], backend=docker), path)
    env.reset()
    env.step("<tool_call>not json</tool_call>")
    env.close()
    (trajectory,) = load_trajectories(path)
    (chunk,) = trajectory.chunks
    assert chunk.format_error and chunk.step.tool_calls == () and chunk.observation.startswith("[format error]")
    assert trajectory.ending is None and trajectory.outcome is None and not trajectory.scored
    assert not (trajectory.terminated or trajectory.truncated)


@pytest.mark.container
@pytest.mark.parametrize("k", [1, 3])
def test_replayed_prefix_reproduces_the_episode(recorded: Trajectory, swe_env: SWEEnv, k: int) -> None:
    observation, info = swe_env.reset(options=replay_options(recorded, turns=k))
    reset = record.ResetInfo.from_info(info)
    assert reset.turn == k and [p.action for p in reset.prefix] == [c.action for c in recorded.chunks[:k]]
    # Every replayed turn's observation comes back, not only the last one (which is what reset returns).
    assert [timing_free(p.observation) for p in reset.prefix] == [
        timing_free(c.observation) for c in recorded.chunks[:k]
    ]
    assert observation == reset.prefix[-1].observation
    for chunk in recorded.chunks[k:]:
        observation, reward, terminated, truncated, _ = swe_env.step(chunk.action)
        assert timing_free(observation) == timing_free(chunk.observation)
        assert (reward, terminated, truncated) == (chunk.reward, chunk.step.ending == "submitted", False)
    assert reward == recorded.reward == 1.0


@pytest.mark.container
def test_a_recorded_prefix_comes_first_as_replayed_chunks(recorded: Trajectory, docker: str, tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    env = RecordTrajectory(SWEEnv(tasks=[SWE_TASK], backend=docker), path)
    try:
        env.reset(seed=1, options=replay_options(recorded, turns=2))
        play(env, [chunk.action for chunk in recorded.chunks[2:]])
    finally:
        env.close()
    (again,) = load_trajectories(path)
    assert again.start == 2 and [chunk.replayed for chunk in again.chunks] == [True, True, False, False]
    assert [timing_free(c.observation) for c in again.chunks] == [timing_free(c.observation) for c in recorded.chunks]
    assert [c.step.turn for c in again.chunks] == [1, 2, 3, 4] and len(again.sampled) == 2
    assert again.outcome == Outcome.SUCCESS
    assert replay_options(again, turns=3)["prefix"] == [c.action for c in recorded.chunks[:3]]


@pytest.mark.container
def test_prefix_that_ends_the_episode_is_refused(recorded: Trajectory, swe_env: SWEEnv) -> None:
    with pytest.raises(ValueError, match="use turns=3"):
        replay_options(recorded, turns=4)
    with pytest.raises(ValueError, match="between 0 and 4"):
        replay_options(recorded, turns=5)
    everything = {"task_id": SWE_TASK.instance_id, "prefix": [chunk.action for chunk in recorded.chunks]}
    with pytest.raises(ValueError, match="ended the episode at turn 4: drop its last turn"):
        swe_env.reset(options=everything)


@pytest.mark.container
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
    assert solved.reward == 1.0 and len(solved.chunks) == len(actions) and solved.verification.resolved
    assert abandoned.outcome is None and abandoned.ending is None and len(abandoned.chunks) == 1


@pytest.mark.container
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
    assert trajectory.truncated and len(trajectory.chunks) == 1
    # The limit is the wrapper's, not the env's: a turn limit all the same, scored as the agent's failure.
    assert trajectory.ending == "turn_limit" and trajectory.outcome == Outcome.FAILURE


@pytest.mark.container
def test_concurrent_recorders_share_one_file(docker: str, tmp_path: Path) -> None:
    """Two recorders on two threads append to one file: every line whole, though each is far over PIPE_BUF."""
    path, episodes, errors = tmp_path / "shared.jsonl", 3, []
    big = bash("seq 1 18000")  # ~100 kB of output: each line holds it twice (observation and tool result)

    def record_episodes(seed: int) -> None:
        env = RecordTrajectory(TerminalEnv(tasks=[TERMINAL_TASK], backend=docker, max_turns=2), path)
        try:
            for episode in range(episodes):
                env.reset(seed=seed + episode)
                env.step(big)
                env.step(big)  # the turn limit: verified, written
        except BaseException as exc:  # noqa: BLE001 - reported by the test's thread
            errors.append(exc)
        finally:
            env.close()

    threads = [threading.Thread(target=record_episodes, args=(100 * n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    trajectories = load_trajectories(path)
    assert sorted(t.seed for t in trajectories) == [0, 1, 2, 100, 101, 102]
    for trajectory in trajectories:
        assert trajectory.ending == "turn_limit" and len(trajectory.chunks) == 2
        assert all(chunk.observation.rstrip().endswith("18000") for chunk in trajectory.chunks)
    assert min(len(line) for line in path.read_text().splitlines()) > 150_000


def test_torn_last_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    whole = Trajectory("a", chunks=[record.Chunk(0, "ls", "x")]).to_dict()
    path.write_text(json.dumps(whole) + "\n" + json.dumps(Trajectory("b").to_dict())[:40])
    assert [t.task_id for t in load_trajectories(path)] == ["a"]
    path.write_text('{"torn\n' + json.dumps(whole) + "\n")
    with pytest.raises(ValueError, match="t.jsonl:1 is not a JSON line"):
        load_trajectories(path)


def test_version_1_recorder_lines_still_load() -> None:
    """Written by version 1 of RecordTrajectory (`git show HEAD~1:rock_gym/envs/record.py`) against real episodes."""
    solved, from_prefix, lost, abandoned = load_trajectories(DATA / "record_v1.jsonl")
    raw = [json.loads(line) for line in (DATA / "record_v1.jsonl").read_text().splitlines()]
    for trajectory, row in zip((solved, from_prefix, lost, abandoned), raw, strict=True):
        sampled = trajectory.chunks[trajectory.start :]
        assert [c.action for c in sampled] == [turn["action"] for turn in row["turns"]]
        assert [c.observation for c in sampled] == [turn["observation"] for turn in row["turns"]]
        assert [c.reward for c in sampled] == [turn["reward"] for turn in row["turns"]]
        assert trajectory.task_id == "count-matches-0" and trajectory.seed == row["seed"]
    assert solved.outcome == Outcome.SUCCESS and solved.reward == 1.0 and solved.verification.resolved
    assert solved.messages[0]["content"] == raw[0]["observation"]
    assert from_prefix.start == 2 and [c.replayed for c in from_prefix.chunks] == [True, True, False]
    assert [c.action for c in from_prefix.chunks[:2]] == raw[1]["prefix"]
    assert from_prefix.outcome == Outcome.FAILURE and from_prefix.ending == "submitted"
    # Version 1 could not tell whose fault a lost sandbox was: read as the environment's, never scored.
    assert lost.outcome == Outcome.ENV_ERROR and "sandbox was lost" in lost.error and lost.truncated
    assert lost.chunks[-1].step.ending == "sandbox_lost"
    assert abandoned.outcome is None and abandoned.chunks[0].format_error


def test_old_rollout_dumps_still_load() -> None:
    """Written by the old collector's `Trajectory.to_dict()` (`git show HEAD~1:learners/rollout.py`)."""
    solved, lost, cut = load_trajectories(DATA / "rollout_v1.jsonl")
    raw = [json.loads(line) for line in (DATA / "rollout_v1.jsonl").read_text().splitlines()]
    for trajectory, row in zip((solved, lost, cut), raw, strict=True):
        assert [c.action for c in trajectory.chunks] == [chunk["text"] for chunk in row["chunks"]]
        assert [c.observation for c in trajectory.chunks] == [chunk["observation"] for chunk in row["chunks"]]
        assert [c.reward for c in trajectory.chunks] == [chunk["reward"] for chunk in row["chunks"]]
        assert trajectory.messages == row["messages"] and trajectory.seed == row["seed"]
    assert solved.outcome == Outcome.SUCCESS and solved.reward == 1.0 and solved.verification.resolved
    assert [c.completion_ids for c in solved.chunks] == [chunk["completion_ids"] for chunk in raw[0]["chunks"]]
    assert solved.request_ids(2) == raw[0]["chunks"][2]["prompt_ids"]  # each old chunk: a segment of its own
    assert [c.step.tool_calls[0].name for c in solved.chunks] == ["bash", "bash", "bash", "submit"]
    assert lost.outcome == Outcome.ENV_ERROR and lost.env_error and "sandbox was lost" in lost.error
    assert cut.outcome == Outcome.FAILURE and cut.ending == "context_limit" and cut.chunks[0].finish_reason == "length"


@pytest.mark.parametrize("module", [record, wrappers], ids=lambda m: m.__name__)
def test_docstring_examples(module: Any) -> None:
    result = doctest.testmod(module)
    assert result.failed == 0 and (result.attempted > 0 or module is wrappers)
