"""`rock-gym eval` as a user runs it: the expert resolves built-in tasks; an OpenAI-compatible server on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.container


def rock_gym_eval(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "rock_gym.cli", "eval", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=240, env={**os.environ, "COLUMNS": "160"})


def test_eval_expert_resolves_builtin_tasks(docker: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out.json"
    args = ["--env", "rock/Terminal-v0", "--policy", "expert", "--episodes", "4", "--num-envs", "2"]
    done = rock_gym_eval(*args, "--backend", docker, "--json", str(out))
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["success_rate"] == 1.0 and report["episodes"] == 4 and report["successes"] == 4
    assert report["interval"][0] > 0.5 and report["interval"][1] == 1.0
    assert sum(row["episodes"] for row in report["tasks"]) == 4 and report["env_errors"] == 0
    assert "per task" in done.stdout and "4/4" in done.stdout


def test_eval_against_an_openai_compatible_server(docker: str, tiny_model, short_tasks, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from learners.policies import HFPolicy
    from learners.serve import serve

    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("".join(task.model_dump_json() + "\n" for task in short_tasks))
    server, url = serve(HFPolicy(tiny_model), model_name="tiny")
    try:
        out = tmp_path / "out.json"
        args = ["--policy", f"openai:{url}", "--model", "tiny", "--tasks", str(tasks), "--episodes", "2"]
        args += ["--num-envs", "2", "--max-turns", "2", "--max-new-tokens", "8", "--json", str(out)]
        done = rock_gym_eval(*args)
    finally:
        server.shutdown()
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["episodes"] == 2 and report["env_errors"] == 0 and report["policy"] == f"openai:{url}"
    assert report["mean_turns"] == 2.0 and report["endings"] == {"turn_limit": 2}
