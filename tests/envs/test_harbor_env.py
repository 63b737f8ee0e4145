"""rock/Terminal-v0 over Harbor task directories on disk, including one whose Dockerfile must be built."""

from __future__ import annotations

import textwrap

import gymnasium as gym
import pytest

from rock_gym.tasks import TaskError, load
from rock_gym.tools import ToolCall, get_format

pytestmark = pytest.mark.container

CHECKER = """\
#!/bin/bash
mkdir -p /logs/verifier
if [ "$(cat /app/answer.txt 2>/dev/null)" = "$(cat /opt/secret)" ]; then echo 1; else echo 0; fi \
  > /logs/verifier/reward.txt
"""


def write_harbor_task(root, name: str, dockerfile: str) -> None:
    task = root / name
    (task / "environment").mkdir(parents=True)
    (task / "tests").mkdir()
    (task / "instruction.md").write_text("Write the content of /opt/secret into /app/answer.txt.\n")
    (task / "task.toml").write_text(
        textwrap.dedent(f"""\
        [task]
        name = "{name}"
        [verifier]
        timeout_sec = 60
        """)
    )
    (task / "environment" / "Dockerfile").write_text(dockerfile)
    (task / "environment" / "hint.txt").write_text("look in /opt\n")
    (task / "tests" / "test.sh").write_text(CHECKER)


def test_harbor_directories_with_a_dockerfile_are_built_and_graded(tmp_path, backend, engine):
    tag = f"rock-gym/task-built-{backend}:test"
    dockerfile = textwrap.dedent("""\
        FROM rock-gym/base:bookworm
        RUN mkdir -p /opt /app && echo built-offline > /opt/secret
        COPY hint.txt /app/hint.txt
        WORKDIR /app
        """)
    write_harbor_task(tmp_path, "built", dockerfile)
    tasks = load(tmp_path)
    assert [t.task_id for t in tasks] == ["built"] and tasks[0].dockerfile
    task = tasks[0].model_copy(update={"image": tag})
    engine.remove_image(tag)
    env = gym.make("rock/Terminal-v0", tasks=[task], backend=backend)
    try:
        obs, info = env.reset(seed=0)
        assert "/opt/secret" in obs
        render = get_format("hermes").render
        obs, *_ = env.step(render([ToolCall("bash", {"command": "pwd; cat hint.txt; cat /opt/secret"})]))
        assert "/app\nlook in /opt\nbuilt-offline" in obs
        env.step(render([ToolCall("bash", {"command": "cp /opt/secret /app/answer.txt"})]))
        obs, reward, terminated, truncated, info = env.step(render([ToolCall("submit", {})]))
        assert (reward, terminated) == (1.0, True)
    finally:
        env.close()
        engine.remove_image(tag)


def test_builds_run_without_network_and_failures_name_the_step(tmp_path, backend, engine):
    # Only loopback exists during a build: the step that asserts another interface fails, and says so.
    step = "RUN test \"$(cut -d: -f1 /proc/net/dev | tail -n +3 | tr -d ' ')\" != lo"
    write_harbor_task(tmp_path, "online", f"FROM rock-gym/base:bookworm\n{step}\n")
    task = load(tmp_path / "online")[0].model_copy(update={"image": f"rock-gym/task-online-{backend}:test"})
    engine.remove_image(task.image)
    env = gym.make("rock/Terminal-v0", tasks=[task], backend=backend)
    try:
        with pytest.raises(TaskError, match="building rock-gym/task-online.*RUN test .* failed \\(exit 1\\)"):
            env.reset(seed=0)
    finally:
        env.close()
