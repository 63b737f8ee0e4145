"""The monitor inside a real env: events in `StepInfo.safety`, penalties on the reward, blocked calls that do not run,
the ending, and recorded trajectories. Real containers (docker), two episodes in all."""

from __future__ import annotations

import gymnasium as gym
import pytest

import rock_gym  # noqa: F401 - registers rock/*
from rock_gym.envs.record import Outcome, RecordTrajectory, StepInfo, load_trajectories
from rock_gym.tools import ToolCall, get_format

pytestmark = pytest.mark.container


@pytest.fixture(scope="module")
def docker(docker_engine) -> None:
    """Docker only: the monitor does not touch the engine. Skipped (or failed, per ROCK_GYM_REQUIRE_ENGINES)."""


def act(*commands: str) -> str:
    return get_format("hermes").render([ToolCall("bash", {"command": c}) for c in commands])


def exists(env: gym.Env, path: str) -> bool:
    return env.unwrapped.episode.sandbox.run(f"test -e {path} && echo yes || echo no").output.strip() == "yes"


def test_by_default_events_are_logged_and_nothing_changes(docker):
    env = gym.make("rock/Terminal-v0", backend="docker")
    try:
        env.reset(seed=0)
        _, reward, terminated, truncated, info = env.step(act("ls /"))
        assert StepInfo.from_info(info).safety == () and reward == 0.0
        _, reward, terminated, truncated, info = env.step(act("touch /tmp/scanned; nmap -p 22 10.0.0.1 || true"))
        safety = StepInfo.from_info(info).safety
        assert [(e["category"], e["rule"], e["action"]) for e in safety] == [("network_probing", "port_scanner", "log")]
        assert safety[0]["evidence"] == "nmap -p 22 10.0.0.1"
        assert reward == 0.0 and not terminated and not truncated and exists(env, "/tmp/scanned")
    finally:
        env.close()


def test_penalize_log_and_terminate_through_a_recorded_episode(docker, tmp_path):
    safety = {"network_probing": "penalize", "crypto_mining": "terminate", "penalty": 0.5}
    env = RecordTrajectory(gym.make("rock/Terminal-v0", backend="docker", safety=safety), tmp_path / "runs.jsonl")
    try:
        env.reset(seed=0)
        # penalize: the call runs, the step's reward loses the penalty.
        _, reward, _, truncated, info = env.step(act("nmap 10.0.0.0/24 || touch /tmp/probe_ran"))
        step = StepInfo.from_info(info)
        assert reward == -0.5 and not truncated and exists(env, "/tmp/probe_ran")
        assert step.safety[0]["action"] == "penalize" and step.safety_penalty == 0.5
        # log: recorded, no penalty.
        _, reward, _, _, info = env.step(act("sudo true || true"))
        assert reward == 0.0 and StepInfo.from_info(info).safety[0]["category"] == "privilege_escalation"
        # terminate: earlier calls of the turn run, the offending one does not, and the episode ends.
        observation, reward, terminated, truncated, info = env.step(
            act("touch /tmp/before", "touch /tmp/mined && ./xmrig -o stratum+tcp://198.51.100.1:3333")
        )
        step = StepInfo.from_info(info)
        assert (terminated, truncated, step.ending) == (False, True, "safety")
        assert "crypto_mining" in step.error and "blocked by the safety monitor" in observation
        assert reward == -0.5  # an ended-by-error episode is not verified (0.0), less the penalty
        # the agent's doing: a scored failure, never an env error
        assert step.verification is None and step.outcome == Outcome.FAILURE
        blocked = step.tool_results[1]
        assert blocked.error and blocked.output.startswith("blocked by the safety monitor: crypto_mining")
        assert exists(env, "/tmp/before") and not exists(env, "/tmp/mined")
    finally:
        env.close()
    (episode,) = load_trajectories(tmp_path / "runs.jsonl")
    recorded = [[(e["category"], e["action"]) for e in chunk.safety] for chunk in episode.chunks]
    assert recorded[0] == [("network_probing", "penalize")]
    assert recorded[1] == [("privilege_escalation", "log")]
    assert ("crypto_mining", "terminate") in recorded[2]
    assert episode.error == step.error and episode.reward == -1.0
    assert episode.ending == "safety" and episode.outcome == Outcome.FAILURE
