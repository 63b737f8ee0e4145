"""RockVectorEnv on real containers: make_vec, concurrency, autoreset modes, cleanup on errors and Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.spaces import Text, Tuple

import rock_gym  # noqa: F401 - registers the rock/* ids
from rock_gym.envs.record import ResetInfo, StepInfo
from rock_gym.envs.vector import RockVectorEnv, env_info
from rock_gym.tasks import builtin_swe_tasks, terminal_tasks
from rock_gym.tools import ToolCall, get_format

pytestmark = pytest.mark.container

NOOP = get_format("hermes").render([ToolCall("bash", {"command": "true"})])


def render(turn: list) -> str:  # type: ignore[type-arg]
    return get_format("hermes").render([ToolCall(call.name, call.arguments) for call in turn])


def bash(command: str) -> str:
    return get_format("hermes").render([ToolCall("bash", {"command": command})])


def containers_of(backend: str, pid: int) -> list[str]:
    from rock_gym.sandbox import SandboxConfig
    from rock_gym.sandbox.engines import LABEL_OWNER_PID, Engine

    engine = Engine.connect(SandboxConfig(backend=backend))  # type: ignore[arg-type]
    return [c["Id"] for c in engine.labelled_containers() if c["Labels"].get(LABEL_OWNER_PID) == str(pid)]


def test_make_vec_steps_concurrently_and_close_removes_containers(backend: str) -> None:
    envs = gym.make_vec("rock/Terminal-v0", num_envs=3, tasks=terminal_tasks(seeds=range(2)), backend=backend)
    try:
        assert isinstance(envs, RockVectorEnv)
        assert type(envs.envs[0]).__name__ == "TerminalEnv"
        assert isinstance(envs.single_observation_space, Text)
        assert isinstance(envs.observation_space, Tuple) and len(envs.observation_space) == 3
        observations, infos = envs.reset(seed=5)
        assert isinstance(observations, tuple) and observations in envs.observation_space
        assert envs.np_random_seed == (5, 6, 7)
        assert all(ResetInfo.from_info(env_info(infos, i)).task_id for i in range(3))
        assert len(containers_of(backend, os.getpid())) == 3

        command = "echo started $(date +%s.%N); sleep 1; echo slept $(date +%s.%N)"
        observations, rewards, terminated, truncated, infos = envs.step([bash(command)] * 3)
        stamps = [re.search(r"started (\S+)\nslept (\S+)", observation) for observation in observations]
        assert all(stamps), observations
        spans = [(float(found[1]), float(found[2])) for found in stamps if found]
        # Side by side: every env's command started before any of them ended (sandboxes share the host's clock).
        assert max(start for start, _ in spans) < min(end for _, end in spans), spans
        assert rewards.tolist() == [0.0] * 3 and not terminated.any() and not truncated.any()
        assert [StepInfo.from_info(env_info(infos, i)).turn for i in range(3)] == [1, 1, 1]
    finally:
        envs.close()
        envs.close()
    assert containers_of(backend, os.getpid()) == []
    # each id has its own vector entry point, so the envs follow the id make_vec was called with
    default = gym.make_vec("rock/Terminal-v0", num_envs=2, backend=backend)
    assert (
        type(default.envs[0]).__name__ == "TerminalEnv"
        and repr(default) == "TerminalVectorEnv(rock/Terminal-v0, num_envs=2)"
    )
    default.close()


def test_next_step_autoreset_after_expert_solutions(backend: str) -> None:
    tasks = {task.instance_id: task for task in builtin_swe_tasks()}
    envs = gym.make_vec("rock/SWE-v0", num_envs=3, tasks=list(tasks.values()), backend=backend)
    try:
        _, infos = envs.reset(seed=0)
        task_ids = [ResetInfo.from_info(env_info(infos, i)).task_id for i in range(3)]
        plans = [[render(turn) for turn in tasks[task_id].expert_turns] for task_id in task_ids]
        ended_at: list[int | None] = [None] * 3
        resets_seen = set()
        for step in range(max(len(plan) for plan in plans) + 1):
            actions = [plan.pop(0) if plan else NOOP for plan in plans]
            observations, rewards, terminated, truncated, infos = envs.step(actions)
            for i in range(3):
                info = env_info(infos, i)
                if ended_at[i] is None and terminated[i]:
                    ended_at[i] = step
                    assert rewards[i] == 1.0 and StepInfo.from_info(info).resolved
                elif ended_at[i] == step - 1:  # the step after the ending: a reset, its action ignored
                    assert observations[i].startswith("Fix the following issue")
                    assert rewards[i] == 0.0 and not terminated[i] and not truncated[i]
                    reset = ResetInfo.from_info(info)
                    assert reset.turn == 0 and reset.messages and "tool_calls" not in info  # a reset's info
                    resets_seen.add(i)
                else:
                    assert "tools" not in info  # a step's info
        assert resets_seen == {0, 1, 2}
    finally:
        envs.close()


def test_same_step_autoreset_returns_final_observation(backend: str) -> None:
    tasks = terminal_tasks(seeds=range(1))
    by_id = {task.task_id: task for task in tasks}
    envs = gym.make_vec("rock/Terminal-v0", num_envs=2, tasks=tasks, backend=backend, autoreset_mode="SameStep")
    try:
        assert envs.metadata["autoreset_mode"] is gym.vector.AutoresetMode.SAME_STEP
        _, infos = envs.reset(seed=3)
        task_ids = [ResetInfo.from_info(env_info(infos, i)).task_id for i in range(2)]
        plans = [[render(turn) for turn in by_id[task_id].expert_turns] for task_id in task_ids]
        ended = np.zeros(2, dtype=bool)
        while not ended.all():
            actions = [plan.pop(0) if plan else NOOP for plan in plans]
            observations, rewards, terminated, _, infos = envs.step(actions)
            for i in np.flatnonzero(terminated & ~ended):
                info = env_info(infos, i)
                assert rewards[i] == 1.0
                assert "submitted" in info["final_obs"]  # gymnasium's own key, beside the typed info
                final = StepInfo.from_info(info["final_info"])
                assert final.ending == "submitted" and final.outcome == "success"
                assert observations[i].endswith("call `submit`.") and ResetInfo.from_info(info).turn == 0
            ended |= terminated
    finally:
        envs.close()


def test_a_failing_reset_leaves_no_sandbox(backend: str) -> None:
    tasks = terminal_tasks(seeds=range(1))
    envs = gym.make_vec("rock/Terminal-v0", num_envs=3, tasks=tasks, backend=backend)
    try:
        broken = [task.model_copy(update={"image": "rock-gym/no-such-image:missing"}) for task in tasks]
        envs.envs[1].tasks = broken
        with pytest.raises(Exception, match="no-such-image"):
            envs.reset(seed=0)
        assert containers_of(backend, os.getpid()) == []
        envs.envs[1].tasks = tasks
        observations, _ = envs.reset(seed=0)  # the vector env stays usable
        assert len(observations) == 3
    finally:
        envs.close()
    assert containers_of(backend, os.getpid()) == []


CTRL_C_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    # Ctrl-C as a terminal gives it, even when this test runs in the background (where SIGINT comes ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    import gymnasium as gym
    import rock_gym
    from rock_gym.tasks import terminal_tasks
    from rock_gym.sandbox import SandboxConfig
    from rock_gym.sandbox.engines import LABEL_OWNER_PID, Engine
    from rock_gym.tools import ToolCall, get_format

    envs = gym.make_vec("rock/Terminal-v0", num_envs=3, tasks=terminal_tasks(seeds=range(1)), backend=sys.argv[1])
    envs.reset(seed=0)
    print("stepping", flush=True)
    try:
        envs.step([get_format("hermes").render([ToolCall("bash", {"command": "sleep 30"})])] * 3)
    except KeyboardInterrupt:
        containers = Engine.connect(SandboxConfig(backend=sys.argv[1])).labelled_containers()
        left = [c for c in containers if c["Labels"].get(LABEL_OWNER_PID) == str(os.getpid())]
        print("interrupted, left:", len(left), flush=True)
        raise
    """
)


def test_ctrl_c_during_a_step_closes_every_sandbox(backend: str) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CTRL_C_SCRIPT, backend], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "stepping\n"
        time.sleep(1.5)
        assert len(containers_of(backend, child.pid)) == 3
        interrupted = time.perf_counter()
        child.send_signal(signal.SIGINT)
        stdout, stderr = child.communicate(timeout=25)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert time.perf_counter() - interrupted < 15, "the step waited for `sleep 30` instead of being cut short"
    assert "interrupted, left: 0" in stdout, stderr
    assert "KeyboardInterrupt" in stderr
    assert containers_of(backend, child.pid) == []
