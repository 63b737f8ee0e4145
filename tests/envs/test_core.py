"""rock/* envs: the Gymnasium contract, tool calls in a chunk, endings, rewards, bad actions. Real containers."""

from __future__ import annotations

import subprocess
import sys
import warnings

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import rock_gym
from rock_gym.envs.core import RockEnv
from rock_gym.envs.record import Outcome, ResetInfo, StepInfo
from rock_gym.sandbox import DEFAULT_IMAGE
from rock_gym.tasks import Task, TerminalTask, Verdict, builtin_swe_tasks, terminal_tasks
from rock_gym.tools import ToolCall, get_format

#: Warnings check_env may give for these envs, and why they are fine.
CHECK_ENV_ALLOWLIST = (
    # Text spaces have no bounded-box shape to check; gymnasium says so for any non-Box space.
    "is not within the observation space",
    # A text transcript has no frame rate; gymnasium asks every render mode for one.
    "render_fps",
)


def act(*calls: tuple[str, dict], fmt: str = "hermes") -> str:
    return get_format(fmt).render([ToolCall(name, args) for name, args in calls])


def expert_actions(task: Task, fmt: str = "hermes") -> list[str]:
    assert task.expert_turns, "built-in tasks carry a reference solution"
    return [get_format(fmt).render([ToolCall(c.name, c.arguments) for c in turn]) for turn in task.expert_turns]


@pytest.fixture
def swe_env():
    env = gym.make("rock/SWE-v0", backend="docker", max_turns=5)
    yield env
    env.close()


def test_import_loads_no_heavy_dependency():
    code = "import sys, rock_gym; print(sorted(m for m in ('docker', 'torch', 'ray') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_make_with_the_module_prefix_from_a_clean_interpreter():
    code = "import gymnasium as gym; env = gym.make('rock_gym:rock/SWE-v0'); print(type(env.unwrapped).__name__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "SWEEnv"


def test_the_env_knows_no_kind_of_task():
    """Task kinds own their behaviour (`TaskKind`): the env names none of them, so a new kind needs no edit of it."""
    import ast
    import inspect

    from rock_gym.envs import core

    names = {node.id for node in ast.walk(ast.parse(inspect.getsource(core))) if isinstance(node, ast.Name)}
    assert not names & {"SWETask", "TerminalTask", "Task"}, names & {"SWETask", "TerminalTask", "Task"}


def test_spaces_are_printable_text():
    env = gym.make("rock/Terminal-v0")
    for space in (env.action_space, env.observation_space):
        assert isinstance(space, gym.spaces.Text) and space.min_length == 0
        assert {"a", "\n", "ü", "{", "<"} <= space.character_set and "\x00" not in space.character_set
    assert env.observation_space.max_length == 100_000 and env.action_space.max_length == 200_000


@pytest.mark.container
@pytest.mark.parametrize("env_id", sorted(i for i in gym.registry if i.startswith("rock/")))
def test_check_env_passes_for_every_registered_id(env_id):
    assert env_id in rock_gym.ENV_IDS
    env = gym.make(env_id, backend="docker")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    env.close()
    unexpected = [str(w.message) for w in caught if not any(a in str(w.message) for a in CHECK_ENV_ALLOWLIST)]
    assert not unexpected, unexpected


@pytest.mark.container
def test_reset_gives_prompt_tools_and_messages(swe_env):
    obs, info = swe_env.reset(seed=3)
    obs_again, info_again = swe_env.reset(seed=3)
    reset, again = ResetInfo.from_info(info), ResetInfo.from_info(info_again)
    assert obs == obs_again and reset.task_id == again.task_id
    assert reset.task_id in obs or "Fix the following issue" in obs
    assert [t["function"]["name"] for t in reset.tools] == ["bash", "str_replace_editor", "submit", "todo"]
    assert [m["role"] for m in reset.messages] == ["system", "user"] and reset.messages[1]["content"] == obs
    assert reset.tool_format == "hermes" and reset.prefix == () and reset.turn == 0


@pytest.mark.container
@pytest.mark.parametrize("fmt", ["hermes", "qwen3_coder", "openai"])
def test_one_step_runs_every_call_of_the_turn_in_order(fmt):
    env = gym.make("rock/Terminal-v0", backend="docker", tool_format=fmt)
    env.reset(seed=0)
    action = act(
        ("bash", {"command": "cd /tmp && echo one > f"}),
        ("bash", {"command": "cat f; pwd"}),
        ("bash", {"command": "exit_code_test() { return 3; }; exit_code_test"}),
        fmt=fmt,
    )
    obs, reward, terminated, truncated, info = env.step(action)
    env.close()
    step = StepInfo.from_info(info)
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert [r.output for r in step.tool_results] == ["", "one\n/tmp\n", ""]
    assert [r.exit_code for r in step.tool_results] == [0, 0, 3]
    assert [c.name for c in step.tool_calls] == ["bash"] * 3 and step.format_error is None
    assert obs.index("[1] bash (exit 0)") < obs.index("[2] bash (exit 0)\none\n/tmp") < obs.index("[3] bash (exit 3)")
    assert all(r.duration > 0 for r in step.tool_results)
    assert step.ending is None and step.outcome is None and step.todo is None


@pytest.mark.container
def test_timeout_and_truncation_marks_in_the_observation():
    env = gym.make("rock/Terminal-v0", backend="docker", sandbox={"output_limit": 1000})
    env.reset(seed=0)
    obs, *_, info = env.step(act(("bash", {"command": "sleep 30", "timeout": 1}), ("bash", {"command": "seq 1 9999"})))
    env.close()
    assert "[1] bash (no exit code, timed out)" in obs and "[2] bash (exit 0, output truncated)" in obs
    results = StepInfo.from_info(info).tool_results
    assert results[0].timed_out and results[1].truncated


@pytest.mark.container
@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("I think the bug is in line 3.", "no tool call"),
        ('<tool_call>{"name": "bash", "arguments": {"command": "ls"</tool_call>', "JSON"),
        (act(("rm_rf", {"path": "/"})), "rm_rf"),
        (act(("bash", {})), "command"),
        (act(("bash", {"command": 42})), "command"),
        (act(("str_replace_editor", {"command": "view"})), "path"),
        (act(("bash", {"command": "x" * 1_100_000})), "over the limit of 200000"),
        ("<tool_call>" * 300_000, "over the limit of 200000"),
    ],
    ids=[
        "plain-text",
        "bad-json",
        "unknown-tool",
        "missing-arg",
        "wrong-type",
        "editor-missing-path",
        "huge-arg",
        "huge-turn",
    ],
)
def test_bad_actions_explain_themselves_and_count_as_turns(swe_env, action, expected):
    swe_env.reset(seed=0)
    obs, reward, terminated, truncated, info = swe_env.step(action)
    step = StepInfo.from_info(info)
    assert step.format_error and expected.lower() in (obs + step.format_error).lower()
    assert (reward, terminated, truncated) == (0.0, False, False) and step.turn == 1
    obs, *_ = swe_env.step(act(("bash", {"command": "echo still here"})))
    assert "still here" in obs


@pytest.mark.container
def test_editor_tool_edits_files_in_the_sandbox(swe_env):
    swe_env.reset(seed=0)
    obs, *_, info = swe_env.step(
        act(
            ("str_replace_editor", {"command": "create", "path": "/testbed/new.py", "file_text": "x = 1\n"}),
            (
                "str_replace_editor",
                {"command": "str_replace", "path": "/testbed/new.py", "old_str": "x = 1", "new_str": "x = 2"},
            ),
            (
                "str_replace_editor",
                {"command": "str_replace", "path": "/testbed/new.py", "old_str": "nope", "new_str": "y"},
            ),
            ("bash", {"command": "cat /testbed/new.py"}),
        )
    )
    results = StepInfo.from_info(info).tool_results
    assert [r.error for r in results] == [False, False, True, False]
    assert results[3].output == "x = 2\n"
    assert "[3] str_replace_editor (error)" in obs and "no match" in obs.lower()


@pytest.mark.container
@pytest.mark.parametrize("kind", ["swe", "terminal"])
def test_a_scripted_expert_solves_a_task_end_to_end(kind, backend):
    tasks: list[Task] = builtin_swe_tasks()[:1] if kind == "swe" else terminal_tasks(seeds=[1])[:1]
    env = gym.make("rock/SWE-v0" if kind == "swe" else "rock/Terminal-v0", tasks=tasks, backend=backend)
    env.reset(seed=0)
    for action in expert_actions(tasks[0]):
        obs, reward, terminated, truncated, info = env.step(action)
    env.close()
    step = StepInfo.from_info(info)
    assert (reward, terminated, truncated) == (1.0, True, False)
    assert step.ending == "submitted" and step.resolved and step.outcome == Outcome.SUCCESS
    assert step.verification.tests, "per-test outcomes are reported"
    assert step.verifier_error is None


@pytest.mark.container
def test_submit_without_fixing_is_a_verified_failure_with_configurable_reward():
    env = gym.make("rock/SWE-v0", backend="docker", failure_reward=-1.0)
    env.reset(seed=0)
    *_, info = env.step(act(("bash", {"command": "true"})))
    assert StepInfo.from_info(info).verification is None
    obs, reward, terminated, truncated, info = env.step(act(("submit", {})))
    env.close()
    step = StepInfo.from_info(info)
    assert (reward, terminated, truncated) == (-1.0, True, False)
    assert not step.resolved and step.verifier_error is None and step.outcome == Outcome.FAILURE
    assert any(status != "PASSED" for status in step.verification.tests.values())


@pytest.mark.container
def test_turn_limit_truncates_and_verifies_then_reset_works():
    task = builtin_swe_tasks()[0]
    env = gym.make("rock/SWE-v0", tasks=[task], backend="docker", max_turns=len(task.expert_turns) - 1)
    env.reset(seed=0)
    for action in expert_actions(task)[:-1]:  # everything but the submit: the fix is in place
        obs, reward, terminated, truncated, info = env.step(action)
    step = StepInfo.from_info(info)
    assert (terminated, truncated, step.ending) == (False, True, "turn_limit")
    assert reward == 1.0 and step.resolved and step.outcome == Outcome.SUCCESS
    with pytest.raises(RuntimeError, match="reset"):
        env.step(act(("bash", {"command": "true"})))
    obs, info = env.reset(seed=1)
    assert ResetInfo.from_info(info).turn == 0
    env.close()


@pytest.mark.container
def test_verification_on_truncation_can_be_turned_off():
    env = gym.make("rock/SWE-v0", backend="docker", max_turns=1, verify_on_truncation=False)
    env.reset(seed=0)
    *_, truncated, info = env.step(act(("bash", {"command": "true"})))
    env.close()
    step = StepInfo.from_info(info)
    assert truncated and step.verification is None and step.outcome == Outcome.FAILURE


@pytest.mark.container
def test_edited_or_deleted_tests_gain_nothing():
    task = builtin_swe_tasks()[0]
    env = gym.make("rock/SWE-v0", tasks=[task], backend="docker")
    env.reset(seed=0)
    cheats = []
    for path in task.test_files:
        cheats.append(
            (
                "bash",
                {
                    "command": f"mkdir -p $(dirname {task.workdir}/{path}) && "
                    f"printf 'def test_ok():\\n    assert True\\n' > {task.workdir}/{path}"
                },
            )
        )
    cheats.append(("bash", {"command": f"rm -rf {task.workdir}/tests"}))
    env.step(act(*cheats))
    obs, reward, terminated, truncated, info = env.step(act(("submit", {})))
    env.close()
    step = StepInfo.from_info(info)
    assert terminated and reward == 0.0 and not step.resolved
    assert set(task.FAIL_TO_PASS) <= set(step.verification.tests)


@pytest.mark.container
def test_verifier_timeout_is_flagged_not_a_plain_failure():
    hang = TerminalTask(
        task_id="hangs", instruction="Do nothing.", tests={"tests/test.sh": "sleep 60\n"}, timeouts={"verifier": 1}
    )
    env = gym.make("rock/Terminal-v0", tasks=[hang], backend="docker")
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(act(("submit", {})))
    env.close()
    step = StepInfo.from_info(info)
    assert terminated and reward == 0.0 and not step.resolved
    assert step.verifier_error and step.outcome == Outcome.ENV_ERROR


@pytest.mark.container
def test_sandbox_lost_mid_episode_truncates_with_an_error_and_reset_recovers(engine, backend):
    env = gym.make("rock/Terminal-v0", backend=backend)
    env.reset(seed=0)
    engine.remove(env.unwrapped.episode.sandbox.container_id)  # killed from outside
    obs, reward, terminated, truncated, info = env.step(act(("bash", {"command": "echo hi"})))
    step = StepInfo.from_info(info)
    assert (reward, terminated, truncated) == (0.0, False, True)
    assert "sandbox was lost" in step.error and "sandbox was lost" in obs
    # The engine answers: the lost sandbox is the episode's own (scored), not the environment's.
    assert step.ending == "sandbox_lost" and step.outcome == Outcome.FAILURE and step.verification is None
    obs, info = env.reset(seed=0)
    obs, *_ = env.step(act(("bash", {"command": "echo back"})))
    assert "back" in obs
    env.close()
    env.close()


@pytest.mark.container
def test_standard_wrappers_and_ansi_render():
    task = terminal_tasks(seeds=[2])[0]
    env = gym.make("rock/Terminal-v0", tasks=[task], backend="docker", render_mode="ansi", max_episode_steps=20)
    env = gym.wrappers.RecordEpisodeStatistics(env)
    env.reset(seed=0)
    for action in expert_actions(task):
        obs, reward, terminated, truncated, info = env.step(action)
    assert terminated and info["episode"]["r"] == 1.0 and info["episode"]["l"] == len(task.expert_turns)
    transcript = env.render()
    assert transcript.startswith("[task]") and "[turn 1]" in transcript and "<tool_call>" in transcript
    env.close()


def test_unknown_tool_format_and_render_mode_fail_clearly():
    with pytest.raises(KeyError, match="unknown tool-call format 'xml'"):
        gym.make("rock/SWE-v0", tool_format="xml")
    with pytest.raises(ValueError, match="render_mode"):
        gym.make("rock/SWE-v0", render_mode="human")


@pytest.mark.container
@pytest.mark.parametrize("kind", ["swe", "terminal"])
def test_an_unprivileged_agent_user_solves_a_task_set_up_and_graded_as_root(kind):
    tasks: list[Task] = builtin_swe_tasks()[:1] if kind == "swe" else terminal_tasks(seeds=[1])[:1]
    env_id = "rock/SWE-v0" if kind == "swe" else "rock/Terminal-v0"
    env = gym.make(env_id, tasks=tasks, backend="docker", sandbox={"user": "agent"})
    try:
        env.reset(seed=0)
        obs, *_ = env.step(get_format("hermes").render([ToolCall("bash", {"command": "id -un; id -u"})]))
        assert "agent" in obs and "\n0\n" not in obs
        for action in expert_actions(tasks[0]):
            obs, reward, terminated, truncated, info = env.step(action)
    finally:
        env.close()
    assert (reward, terminated, truncated) == (1.0, True, False), obs


@pytest.mark.container
def test_todo_list_is_kept_by_the_env_not_the_sandbox(docker_engine):
    env = gym.make("rock/Terminal-v0", backend="docker")
    try:
        prefix = [act(("bash", {"command": "echo one"})), act(("todo", {"items": ["look", "act"]}))]
        obs, info = env.reset(seed=0, options={"prefix": prefix})
        reset = ResetInfo.from_info(info)
        # every replayed turn's observation, not only the last one (which reset returns)
        assert [p.observation for p in reset.prefix] == ["[1] bash (exit 0)\none\n", obs]
        assert obs == "[1] todo (exit 0)\nTodo list (2 items):\n1. look\n2. act"
        assert [p.info.todo for p in reset.prefix] == [None, ("look", "act")] and reset.turn == 2
        docker_engine.remove(env.unwrapped.episode.sandbox.container_id)  # the sandbox is gone: todo does not care
        obs, reward, terminated, truncated, info = env.step(act(("todo", {"items": ["look", "act", "check"]})))
        assert not (terminated or truncated) and "3. check" in obs
        assert StepInfo.from_info(info).todo == ("look", "act", "check")
        obs, *_, info = env.step(act(("todo", {"items": ["x" * 201]})))
        step = StepInfo.from_info(info)
        assert "over the limit of 200: shorten it" in step.format_error and step.todo == ("look", "act", "check")
        *_, truncated, info = env.step(act(("bash", {"command": "true"})))
        assert truncated and StepInfo.from_info(info).todo == ("look", "act", "check")
    finally:
        env.close()


class WordTask:
    """A kind of task the env has never heard of: a plain class with the `TaskKind` members, no edit of the env."""

    task_id, image, workdir, env, verifier_timeout = "word-1", DEFAULT_IMAGE, "/work", {"WORD": "granite"}, 10.0

    def prompt(self) -> str:
        return "Write the word in $WORD to /work/word.txt."

    def prepare_image(self, base: object) -> None:
        pass

    def setup(self, sandbox) -> str:  # type: ignore[no-untyped-def]
        sandbox.as_root().run("mkdir -p /work")
        return "HEAD"

    def verify(self, sandbox, base_commit: str) -> Verdict:  # type: ignore[no-untyped-def]
        word = sandbox.as_root().run("cat /work/word.txt").output.strip()
        return Verdict(word == "granite", {"word.txt": word})


@pytest.mark.container
def test_a_new_task_kind_is_a_new_class(docker_engine):
    env = RockEnv(tasks=[WordTask()], backend="docker")
    try:
        obs, info = env.reset(seed=0)
        assert ResetInfo.from_info(info).task_id == "word-1" and obs.startswith("Write the word in $WORD")
        obs, *_ = env.step(act(("bash", {"command": "echo $WORD > word.txt; pwd"})))
        assert obs == "[1] bash (exit 0)\n/work\n"
        obs, reward, terminated, truncated, info = env.step(act(("submit", {})))
    finally:
        env.close()
    step = StepInfo.from_info(info)
    assert (reward, terminated) == (1.0, True) and step.verification.tests == {"word.txt": "granite"}
