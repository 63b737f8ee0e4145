"""Whose fault an ending is, read through `StepInfo.outcome`: the agent's (a scored failure) or the environment's (an
env error, resampled). Real containers, docker only: the rule does not depend on the engine.

An engine that stops answering (the environment's fault) is `tests/security/test_faults.py`, which owns a private
engine it may stop.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import gymnasium as gym
import pytest

import rock_gym  # noqa: F401 - registers the rock/* ids
from rock_gym.envs.record import Ending, Outcome, StepInfo
from rock_gym.tasks import TerminalTask
from rock_gym.tools import ToolCall, get_format

pytestmark = pytest.mark.container


def bash(command: str) -> str:
    return get_format("hermes").render([ToolCall("bash", {"command": command})])


def submit() -> str:
    return get_format("hermes").render([ToolCall("submit", {})])


@pytest.fixture
def env(docker_engine) -> Iterator[gym.Env]:  # type: ignore[no-untyped-def]
    environment = gym.make("rock/Terminal-v0", backend="docker", safety={"crypto_mining": "terminate"})
    yield environment
    environment.close()


def assert_lost_by_the_agent(obs: str, truncated: bool, step: StepInfo) -> None:
    assert truncated and step.ending == Ending.SANDBOX_LOST and step.outcome == Outcome.FAILURE
    assert "sandbox was lost" in step.error and "sandbox was lost" in obs and step.verification is None


def test_a_container_killed_during_an_agent_call_is_the_agents_loss(env, docker_engine):
    env.reset(seed=0)
    container = env.unwrapped.episode.sandbox.container_id
    killer = threading.Timer(1.0, docker_engine.api.kill, args=(container,))
    killer.start()
    obs, reward, terminated, truncated, info = env.step(bash("sleep 5; echo done"))
    killer.join()
    assert (reward, terminated) == (0.0, False) and "done" not in obs
    assert_lost_by_the_agent(obs, truncated, StepInfo.from_info(info))


def test_an_agent_that_kills_every_process_loses_its_sandbox(env):
    env.reset(seed=0)
    # `kill -9 -1` spares the shell that sends it but kills the container's keeper: the container stops, and the
    # episode ends at this call or the next.
    for _ in range(3):
        obs, reward, terminated, truncated, info = env.step(bash("kill -9 -1; sleep 2; echo alive"))
        if truncated:
            break
    assert_lost_by_the_agent(obs, truncated, StepInfo.from_info(info))


def test_a_safety_termination_is_the_agents_failure(env):
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(bash("./xmrig -o stratum+tcp://198.51.100.1:3333"))
    step = StepInfo.from_info(info)
    assert (terminated, truncated, reward) == (False, True, -step.safety_penalty)  # unverified, less the penalty
    assert step.ending == Ending.SAFETY and step.outcome == Outcome.FAILURE and "crypto_mining" in step.error


def test_a_verifier_error_is_the_environments(docker_engine):
    silent = TerminalTask(task_id="no-reward", instruction="Do nothing.", tests={"tests/test.sh": "true\n"})
    env = gym.make("rock/Terminal-v0", tasks=[silent], backend="docker")
    try:
        env.reset(seed=0)
        obs, reward, terminated, truncated, info = env.step(submit())
    finally:
        env.close()
    step = StepInfo.from_info(info)
    assert (terminated, reward) == (True, 0.0) and step.ending == Ending.SUBMITTED and step.error is None
    assert "wrote no" in step.verifier_error and step.outcome == Outcome.ENV_ERROR
