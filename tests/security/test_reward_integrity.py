"""Reward integrity: an agent that edits, deletes or shadows the tests gets no reward; an honest fix still does.

Each trick runs in an episode of a built-in SWE task whose bug it leaves unfixed. Where a trick would fool grading in
the agent's own sandbox (the way tasks were graded before), the test shows that first, so a pass means the fresh
verification sandbox, not a harmless trick, took the reward away.
"""

from __future__ import annotations

import gymnasium as gym
import pytest

import rock_gym  # noqa: F401 - registers the rock/* ids
from rock_gym.envs.record import Outcome, StepInfo
from rock_gym.tasks import builtin_swe_tasks, terminal_tasks
from rock_gym.tasks import verify as grading
from rock_gym.tools import ToolCall, get_format

pytestmark = pytest.mark.container

TASK = builtin_swe_tasks()[0]  # numtools: clamp() returns `low` above the range

#: A pytest plugin that turns every test report into a pass.
PASS_ALL = """import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    report.outcome = "passed"
    report.longrepr = None
"""
SKIP_BODIES = """def pytest_collection_modifyitems(session, config, items):
    for item in items:
        item.runtest = lambda: None
"""
FIXED_CLAMP = """import numtools.core as core


def _clamp(value, low, high):
    return max(low, min(value, high))


core.clamp = _clamp
import numtools

numtools.clamp = _clamp
"""
SITE = "$(python3 -c 'import site; print(site.getsitepackages()[0])')"
EVIL_PLUGIN = f"mkdir -p /opt/evil && cat > /opt/evil/evil.py <<'EOF'\n{PASS_ALL}EOF"


def write(path: str, content: str) -> str:
    return f"mkdir -p \"$(dirname {path})\" && cat > {path} <<'EOF'\n{content}EOF"


#: name -> (bash commands of the trick, whether it fools grading inside the agent's own sandbox)
TRICKS: dict[str, tuple[list[str], bool | None]] = {
    "conftest-rewrites-reports": ([write("/testbed/conftest.py", PASS_ALL)], True),
    "tests-conftest-rewrites-reports": ([write("/testbed/tests/conftest.py", PASS_ALL)], True),
    "conftest-empties-tests": ([write("/testbed/conftest.py", SKIP_BODIES)], True),
    "tests-init-monkeypatches-the-code": ([write("/testbed/tests/__init__.py", FIXED_CLAMP)], True),
    "pytest-ini-addopts-plugin": (
        [write("/testbed/evil.py", PASS_ALL), write("/testbed/pytest.ini", "[pytest]\naddopts = -p evil\n")],
        True,
    ),
    "pyproject-addopts-plugin": (
        [
            write("/testbed/evil.py", PASS_ALL),
            write("/testbed/pyproject.toml", '[tool.pytest.ini_options]\naddopts = "-p evil"\n'),
        ],
        True,
    ),
    "setup-cfg-addopts-plugin": (
        [write("/testbed/evil.py", PASS_ALL), write("/testbed/setup.cfg", "[tool:pytest]\naddopts = -p evil\n")],
        True,
    ),
    "tox-ini-addopts-plugin": (
        [write("/testbed/evil.py", PASS_ALL), write("/testbed/tox.ini", "[pytest]\naddopts = -p evil\n")],
        True,
    ),
    "sitecustomize-in-site-packages": (
        [
            EVIL_PLUGIN,
            # Debian ships one (in /etc/python3.X, linked from the stdlib): the agent appends to whichever loads.
            "f=$(python3 -c 'import os, sitecustomize; print(os.path.realpath(sitecustomize.__file__))' 2>/dev/null"
            f" || echo {SITE}/sitecustomize.py); printf '%s\\n' 'import os, sys' \"sys.path.insert(0, '/opt/evil')\" "
            "\"os.environ['PYTEST_PLUGINS'] = 'evil'\" >> \"$f\"",
        ],
        True,
    ),
    "pth-in-site-packages": (
        [
            EVIL_PLUGIN,
            f"echo \"import os, sys; sys.path.insert(0, '/opt/evil'); os.environ['PYTEST_PLUGINS'] = 'evil'\" "
            f"> {SITE}/zz-evil.pth",
        ],
        True,
    ),
    "sitecustomize-in-the-repo": (
        [EVIL_PLUGIN, write("/testbed/sitecustomize.py", "import sys\nsys.path.insert(0, '/opt/evil')\n")],
        None,
    ),
    "python3-wrapper-first-on-path": (
        [
            EVIL_PLUGIN,
            write("/usr/local/bin/python3", '#!/bin/sh\nPYTHONPATH=/opt/evil exec /usr/bin/python3 "$@" -p evil\n'),
            "chmod +x /usr/local/bin/python3 && hash -r",
        ],
        True,
    ),
    "fake-pytest-on-path": (
        [write("/usr/local/bin/pytest", "#!/bin/sh\necho '9 passed'\nexit 0\n"), "chmod +x /usr/local/bin/pytest"],
        None,
    ),
    "pythonpath-and-plugins-exported": (
        [
            EVIL_PLUGIN,
            "export PYTHONPATH=/opt/evil PYTEST_PLUGINS=evil",
            "echo 'export PYTHONPATH=/opt/evil PYTEST_PLUGINS=evil' >> ~/.bashrc",
        ],
        None,
    ),
    "edit-the-tests": ([write("/testbed/tests/test_core.py", "def test_ok():\n    assert True\n")], None),
    "delete-the-tests": (["rm -rf /testbed/tests"], None),
    "write-the-junit-report": (
        [
            write(
                grading.JUNIT_REPORT,
                "<testsuites><testsuite>"
                + "".join(
                    f'<testcase file="tests/test_core.py" classname="tests.test_core" name="{i.split("::")[-1]}"/>'
                    for i in TASK.FAIL_TO_PASS + TASK.PASS_TO_PASS
                )
                + "</testsuite></testsuites>\n",
            ),
            f"chmod 444 {grading.JUNIT_REPORT}",
        ],
        None,
    ),
    "commit-the-trick-and-rewrite-history": (
        [
            write("/testbed/conftest.py", PASS_ALL),
            "cd /testbed && git add -A && git -c user.email=a@b -c user.name=a commit -qm 'tests' && git tag -f base",
        ],
        True,
    ),
}


def bash(*commands: str) -> str:
    return get_format("hermes").render([ToolCall("bash", {"command": command}) for command in commands])


@pytest.fixture
def env():
    environment = gym.make("rock/SWE-v0", tasks=[TASK], backend="docker")
    yield environment
    environment.close()


@pytest.mark.parametrize("trick", sorted(TRICKS))
def test_trick_gets_no_reward(env, trick):
    commands, fools_own_sandbox = TRICKS[trick]
    env.reset(seed=0)
    *_, info = env.step(bash(*commands))
    results = StepInfo.from_info(info).tool_results
    assert all(r.exit_code == 0 for r in results), results
    if fools_own_sandbox:
        episode = env.unwrapped.episode
        shown = grading.grade_swe(episode.sandbox, TASK, base=episode.base_commit)
        assert shown.resolved, f"the trick does not even fool grading in the agent's sandbox: {shown.statuses}"
    obs, reward, terminated, truncated, info = env.step(submit())
    step = StepInfo.from_info(info)
    assert terminated and reward == 0.0, step.verification
    assert not step.resolved and step.outcome != Outcome.SUCCESS
    if step.verifier_error is None:  # the tests ran, and the task's own failing tests failed
        statuses = step.verification.tests
        assert any(statuses.get(test_id) != "PASSED" for test_id in TASK.FAIL_TO_PASS), statuses


def test_honest_fix_still_gets_full_reward(env):
    env.reset(seed=0)
    for turn in TASK.expert_turns:
        obs, reward, terminated, truncated, info = env.step(
            get_format("hermes").render([ToolCall(c.name, c.arguments) for c in turn])
        )
    step = StepInfo.from_info(info)
    assert (reward, terminated) == (1.0, True) and step.verifier_error is None and step.outcome == Outcome.SUCCESS


def test_honest_fix_with_a_new_file_and_a_binary_file_gets_full_reward(env):
    """The diff carries new files and binary content to the fresh sandbox."""
    env.reset(seed=0)
    fix = (
        "cd /testbed && sed -i 's/        return low\\n    return value//' numtools/core.py && python3 - <<'EOF'\n"
        "import re, pathlib\n"
        "p = pathlib.Path('numtools/core.py')\n"
        "p.write_text(p.read_text().replace('    if value > high:\\n        return low', "
        "'    if value > high:\\n        from numtools.limits import upper\\n        return upper(high)'))\n"
        "pathlib.Path('numtools/limits.py').write_text('def upper(high):\\n    return high\\n')\n"
        "pathlib.Path('numtools/blob.bin').write_bytes(bytes(range(256)))\n"
        "EOF"
    )
    *_, info = env.step(bash(fix))
    results = StepInfo.from_info(info).tool_results
    assert results[0].exit_code == 0, results
    obs, reward, terminated, truncated, info = env.step(submit())
    assert (reward, terminated) == (1.0, True), StepInfo.from_info(info).verification


def submit() -> str:
    return get_format("hermes").render([ToolCall("submit", {})])


def test_a_removed_git_history_is_the_agents_failure_not_a_dropped_episode(env):
    env.reset(seed=0)
    env.step(bash("rm -rf /testbed/.git"))
    obs, reward, terminated, truncated, info = env.step(submit())
    step = StepInfo.from_info(info)
    assert reward == 0.0 and step.verifier_error is None and step.outcome == Outcome.FAILURE
    assert "could not take the agent's change" in step.verification.tests["agent_change"]


def test_an_oversized_change_is_the_agents_failure(env, monkeypatch):
    monkeypatch.setattr(grading, "MAX_DIFF_BYTES", 100_000)
    env.reset(seed=0)
    env.step(bash("head -c 200000 /dev/urandom > /testbed/numtools/blob.bin"))
    obs, reward, terminated, truncated, info = env.step(submit())
    step = StepInfo.from_info(info)
    assert (
        reward == 0.0
        and step.outcome == Outcome.FAILURE
        and "over the limit" in step.verification.tests["agent_change"]
    )


def test_a_diff_that_does_not_apply_is_a_verify_error():
    from rock_gym.sandbox import Sandbox, SandboxConfig

    stale = b"diff --git a/numtools/core.py b/numtools/core.py\n--- a/numtools/core.py\n+++ b/numtools/core.py\n"
    stale += b"@@ -1 +1 @@\n-not in the file\n+anything\n"
    with (
        Sandbox(SandboxConfig(backend="docker", workdir=TASK.workdir)) as fresh,
        pytest.raises(grading.VerifyError, match="does not apply"),
    ):
        grading.grade_swe_change(fresh, TASK, stale)


def test_harbor_reward_file_written_by_the_agent_is_cleared():
    task = terminal_tasks(seeds=[1])[0]
    env = gym.make("rock/Terminal-v0", tasks=[task], backend="docker")
    try:
        env.reset(seed=0)
        env.step(bash(f"mkdir -p {grading.REWARD_DIR} && echo 1 > {grading.REWARD_DIR}/reward.txt", "export X=1"))
        obs, reward, terminated, truncated, info = env.step(submit())
        assert terminated and reward == 0.0, StepInfo.from_info(info).verification
    finally:
        env.close()
