"""Checkers, reference solutions and expert turns run for real in `rock-gym/base:bookworm`."""

import pytest

from rock_gym.tasks import FAMILIES, TerminalTask, builtin_swe_tasks, get_family
from rock_gym.tasks.verify import (
    INLINE_LIMIT,
    VerifyError,
    apply_hidden_tests,
    apply_patch,
    grade_terminal,
    run_swe_tests,
    setup_swe,
    setup_terminal,
    write_files,
)

pytestmark = pytest.mark.container
SEEDS = (0, 1, 2)


def _reset(sandbox):
    result = sandbox.run("cd / && rm -rf /data /output /tests /logs /solution /testbed /tmp/rock_gym_*")
    assert result.ok, result.output


def _fresh_terminal(sandbox, task):
    _reset(sandbox)
    setup_terminal(sandbox, task)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_checker_solution_and_expert(sandbox, name):
    for seed in SEEDS:
        task = get_family(name).generate(seed)
        _fresh_terminal(sandbox, task)
        assert grade_terminal(sandbox, task) == 0.0, f"{task.task_id} passes before it is solved"

        sandbox.write_file("/solution/solve.sh", task.solution)
        solved = sandbox.run("bash /solution/solve.sh")
        assert solved.ok, f"{task.task_id} solve.sh failed: {solved.output}"
        assert grade_terminal(sandbox, task) == 1.0, f"{task.task_id} solve.sh does not pass its checker"

        _fresh_terminal(sandbox, task)
        for turn in task.expert_turns:
            for call in turn:
                if call.name == "bash":
                    result = sandbox.run(call.arguments["command"])
                    assert result.ok, f"{task.task_id}: {call.arguments['command']!r} failed: {result.output}"
        assert grade_terminal(sandbox, task) == 1.0, f"{task.task_id} expert turns do not pass its checker"


def test_checker_rejects_a_near_miss(sandbox):
    task = get_family("count-matches").generate(5)
    _fresh_terminal(sandbox, task)
    sandbox.write_file("/solution/solve.sh", task.solution)
    assert sandbox.run("bash /solution/solve.sh").ok
    answer = int(str(sandbox.read_file("/output/count.txt")).strip())
    sandbox.write_file("/output/count.txt", f"{answer + 1}\n")
    assert grade_terminal(sandbox, task) == 0.0


@pytest.mark.parametrize("task", builtin_swe_tasks(), ids=lambda task: task.instance_id)
def test_builtin_swe_fail_to_pass_with_gold_patch(sandbox, task):
    _reset(sandbox)
    setup_swe(sandbox, task)
    apply_hidden_tests(sandbox, task)
    before = run_swe_tests(sandbox, task)
    assert before.fail_to_pass == [] and before.pass_to_pass == task.PASS_TO_PASS and not before.resolved
    assert all(before.statuses[test_id] == "FAILED" for test_id in task.FAIL_TO_PASS)

    apply_patch(sandbox, task.workdir, task.patch)
    after = run_swe_tests(sandbox, task)
    assert after.resolved and after.reward == 1.0, after.statuses


@pytest.mark.parametrize("task", builtin_swe_tasks(), ids=lambda task: task.instance_id)
def test_builtin_swe_expert_turns_resolve(sandbox, task):
    _reset(sandbox)
    setup_swe(sandbox, task)
    for turn in task.expert_turns:
        for call in turn:
            args = call.arguments
            if call.name == "str_replace_editor" and args["command"] == "str_replace":
                text = str(sandbox.read_file(args["path"]))
                assert text.count(args["old_str"]) == 1
                sandbox.write_file(args["path"], text.replace(args["old_str"], args["new_str"]))
            elif call.name == "bash":
                assert sandbox.run(args["command"]).ok
    apply_hidden_tests(sandbox, task)
    assert run_swe_tests(sandbox, task).resolved


def test_write_files_inline_and_large(sandbox):
    _reset(sandbox)
    big = "x" * (INLINE_LIMIT + 10) + "\n"
    files = {"/data/a dir/it's.txt": "héllo\n", "rel/b.txt": "", "/data/big.txt": big}
    write_files(sandbox, files, root="/testbed")
    assert sandbox.read_file("/data/a dir/it's.txt") == "héllo\n"
    assert sandbox.read_file("/testbed/rel/b.txt") == ""
    assert sandbox.read_file("/data/big.txt") == big


def test_reward_json_and_missing_reward(sandbox):
    task = TerminalTask(
        task_id="json-reward",
        instruction="x",
        tests={"tests/test.sh": 'echo \'{"reward": 0.5, "note": "half"}\' > /logs/verifier/reward.json\n'},
    )
    _fresh_terminal(sandbox, task)
    assert grade_terminal(sandbox, task) == 0.5
    silent = task.model_copy(update={"tests": {"tests/test.sh": "echo checked\n"}})
    with pytest.raises(VerifyError, match="checked"):
        grade_terminal(sandbox, silent)
