"""Faults mid-episode: a container killed from outside, the engine restarted or stopped, a verifier that hangs.

Each ends the episode with a clear error (truncation, or a flagged verifier error), the next reset works, and no
container is left (listed by label). The engine restarts use this suite's private engines, never the machine's.
Ctrl-C during a vector step is `tests/envs/test_vector.py::test_ctrl_c_during_a_step_closes_every_sandbox`.

Whose fault (`StepInfo.outcome`): a sandbox lost during the agent's call while the engine answers is the agent's
(ending "sandbox_lost", a scored failure); only an engine that stopped answering is the environment's ("engine_lost",
an env error), as is a verifier that fails.
"""

from __future__ import annotations

import os
import threading
import time

import gymnasium as gym
import pytest
from redteam import our_containers

import rock_gym  # noqa: F401 - registers the rock/* ids
from rock_gym.envs.record import Ending, Outcome, StepInfo
from rock_gym.sandbox.engines import LABEL_OWNER_PID, Engine, wait_until
from rock_gym.tasks import TerminalTask
from rock_gym.tools import ToolCall, get_format

pytestmark = pytest.mark.container


def bash(command: str) -> str:
    return get_format("hermes").render([ToolCall("bash", {"command": command})])


def assert_no_containers(engine: Engine) -> None:
    assert wait_until(lambda: not our_containers(engine), 10), f"containers left: {our_containers(engine)}"


def ends_with_a_clear_error_then_recovers(env: gym.Env, expected: str, ending: Ending) -> None:
    obs, reward, terminated, truncated, info = env.step(bash("echo after"))
    step = StepInfo.from_info(info)
    if truncated:
        assert (reward, terminated) == (0.0, False) and expected in step.error and expected in obs
        assert step.ending == ending
    else:  # the shell came back through the restarted engine
        assert "after" in obs and step.error is None
    env.reset(seed=0)
    obs, *_ = env.step(bash("echo back"))
    assert "back" in obs


@pytest.mark.usefixtures("no_leak")
def test_container_killed_from_outside(engine, backend):
    env = gym.make("rock/Terminal-v0", backend=backend)
    try:
        env.reset(seed=0)
        engine.api.kill(env.unwrapped.episode.sandbox.container_id)  # SIGKILL from outside, container kept
        obs, reward, terminated, truncated, info = env.step(bash("echo hi"))
        step = StepInfo.from_info(info)
        assert (reward, terminated, truncated) == (0.0, False, True)
        # The engine still answers: by the one rule, the sandbox was lost by the agent's doing (scored).
        assert "sandbox was lost" in step.error and step.ending == Ending.SANDBOX_LOST
        assert step.outcome == Outcome.FAILURE
        env.reset(seed=0)
        assert "back" in env.step(bash("echo back"))[0]
    finally:
        env.close()


@pytest.mark.parametrize("engine_backend", ["docker", "podman"])
def test_engine_restarted_mid_episode(private_engines, engine_backend):
    """dockerd's restart stops its containers (the episode is lost); podman's service is daemonless (it may recover).

    The engine is back by the agent's next call, so a lost sandbox is attributed as any other lost while the engine
    answers: the ping cannot see an outage that ended between two calls.
    """
    url = private_engines.url(engine_backend)
    env = gym.make("rock/Terminal-v0", backend=engine_backend, engine_url=url)
    try:
        env.reset(seed=0)
        assert "one" in env.step(bash("echo one"))[0]
        private_engines.restart(engine_backend)
        ends_with_a_clear_error_then_recovers(env, "sandbox was lost", Ending.SANDBOX_LOST)
    finally:
        env.close()
    assert_no_containers(private_engines.engine(engine_backend))


def test_engine_stopped_mid_command(private_engines):
    """The service goes away while a command runs: the step ends at once with the error, not at the timeout."""
    env = gym.make("rock/Terminal-v0", backend="podman", engine_url=private_engines.url("podman"))
    try:
        env.reset(seed=0)
        timer = threading.Timer(1.0, private_engines.stop, args=("podman",))
        timer.start()
        started = time.perf_counter()
        obs, reward, terminated, truncated, info = env.step(bash("sleep 20; echo done"))
        timer.join()
        assert time.perf_counter() - started < 15
        assert truncated or "done" in obs
        if truncated:
            step = StepInfo.from_info(info)
            assert "sandbox was lost" in step.error and "stopped answering" in step.error
            assert step.ending == Ending.ENGINE_LOST and step.outcome == Outcome.ENV_ERROR
        private_engines.start("podman")
        env.reset(seed=0)
        assert "back" in env.step(bash("echo back"))[0]
    finally:
        env.close()
    assert_no_containers(private_engines.engine("podman"))


def test_engine_unreachable_during_an_agent_call_is_an_env_error(private_engines):
    """dockerd stops while the agent's command runs: the engine is gone, so the episode is the environment's loss."""
    env = gym.make("rock/Terminal-v0", backend="docker", engine_url=private_engines.url("docker"))
    try:
        env.reset(seed=0)
        stopper = threading.Timer(1.0, private_engines.stop, args=("docker",))
        stopper.start()
        obs, reward, terminated, truncated, info = env.step(bash("sleep 20; echo done"))
        stopper.join()
        step = StepInfo.from_info(info)
        assert (reward, terminated, truncated) == (0.0, False, True) and "done" not in obs
        assert step.ending == Ending.ENGINE_LOST and step.outcome == Outcome.ENV_ERROR
        assert "stopped answering" in step.error and step.verification is None
        private_engines.start("docker")
        env.reset(seed=0)
        assert "back" in env.step(bash("echo back"))[0]
    finally:
        env.close()
    assert_no_containers(private_engines.engine("docker"))


@pytest.mark.usefixtures("no_leak")
def test_verifier_that_hangs_is_cut_and_flagged(backend):
    hang = TerminalTask(
        task_id="hangs", instruction="Do nothing.", tests={"tests/test.sh": "sleep 600\n"}, timeouts={"verifier": 2}
    )
    env = gym.make("rock/Terminal-v0", tasks=[hang], backend=backend)
    try:
        env.reset(seed=0)
        obs, reward, terminated, truncated, info = env.step(get_format("hermes").render([ToolCall("submit", {})]))
        step = StepInfo.from_info(info)
        assert terminated and reward == 0.0 and not step.resolved
        assert step.verifier_error and step.outcome == Outcome.ENV_ERROR
        env.reset(seed=0)
        assert "back" in env.step(bash("echo back"))[0]
    finally:
        env.close()


def test_no_container_of_this_process_outlives_the_faults(private_engines):
    for backend in ("docker", "podman"):
        owned = [
            c["Id"]
            for c in private_engines.engine(backend).labelled_containers()
            if c["Labels"].get(LABEL_OWNER_PID) == str(os.getpid())
        ]
        assert owned == []
