import json

import pytest

from rock_gym.tasks import SWETask, TaskError, TerminalTask, ToolCall, parse_task, parse_tasks, read_jsonl

SWEBENCH_ROW = {
    "repo": "astropy/astropy",
    "instance_id": "astropy__astropy-12907",
    "base_commit": "d16bfe05a744909de4b27f5875fe0d4ed41ce607",
    "patch": "diff --git a/astropy/modeling/separable.py b/astropy/modeling/separable.py\n...",
    "test_patch": "diff --git a/astropy/modeling/tests/test_separable.py b/astropy/modeling/tests/test_separable.py\n",
    "problem_statement": "Modeling's `separability_matrix` does not compute separability correctly for nested models",
    "hints_text": "",
    "created_at": "2022-03-03T15:14:54Z",
    "version": "4.3",
    "FAIL_TO_PASS": '["astropy/modeling/tests/test_separable.py::test_separable[compound_model6-result6]"]',
    "PASS_TO_PASS": '["astropy/modeling/tests/test_separable.py::test_coord_matrix", '
    '"astropy/modeling/tests/test_separable.py::test_cdot"]',
    "environment_setup_commit": "298ccb478e6bf092953bca67a3d29dc6c35f6752",
}


def test_swebench_row_decodes_json_lists_and_defaults():
    task = parse_task(SWEBENCH_ROW)
    assert isinstance(task, SWETask)
    assert task.kind == "swe"
    assert task.FAIL_TO_PASS == ["astropy/modeling/tests/test_separable.py::test_separable[compound_model6-result6]"]
    assert len(task.PASS_TO_PASS) == 2
    assert task.image == "swebench/sweb.eval.x86_64.astropy_1776_astropy-12907:latest"
    assert task.workdir == "/testbed"
    assert task.extra == {"hints_text": "", "created_at": "2022-03-03T15:14:54Z"}
    assert task.test_file_paths() == ["astropy/modeling/tests/test_separable.py"]
    assert task.resolved_test_command().endswith("-p no:cacheprovider astropy/modeling/tests/test_separable.py")


def test_swe_task_round_trips_through_json():
    task = parse_task(SWEBENCH_ROW)
    assert parse_task(json.loads(task.model_dump_json())) == task


def test_lists_accepted_as_lists_and_numeric_version():
    task = SWETask(instance_id="a__b-1", problem_statement="p", FAIL_TO_PASS=["t.py::x"], version=3.1)
    assert task.FAIL_TO_PASS == ["t.py::x"] and task.PASS_TO_PASS == [] and task.version == "3.1"


def test_explicit_image_is_kept():
    assert SWETask(instance_id="a__b-1", problem_statement="p", image="mine:1").image == "mine:1"


def test_bad_row_names_index_id_and_field():
    rows = [SWEBENCH_ROW, {**SWEBENCH_ROW, "instance_id": "django__django-1", "FAIL_TO_PASS": "[not json"}]
    with pytest.raises(TaskError) as info:
        parse_tasks(rows)
    message = str(info.value)
    assert "row 1" in message and "django__django-1" in message and "FAIL_TO_PASS" in message


def test_missing_field_is_named():
    row = {key: value for key, value in SWEBENCH_ROW.items() if key != "problem_statement"}
    with pytest.raises(TaskError, match=r"row 4 .*'problem_statement'"):
        parse_task(row, index=4)


def test_terminal_row_by_kind_and_bad_field():
    row = {"kind": "terminal", "task_id": "hello", "instruction": "say hi", "timeouts": {"agent": 10}}
    task = parse_task(row)
    assert isinstance(task, TerminalTask) and task.timeouts.agent == 10 and task.timeouts.verifier == 120
    with pytest.raises(TaskError, match=r"'hello'.*timeouts\.agent"):
        parse_task({**row, "timeouts": {"agent": -1}})


def test_unknown_kind_and_non_mapping():
    with pytest.raises(TaskError, match="kind"):
        parse_task({"kind": "chess", "task_id": "x"})
    with pytest.raises(TaskError, match="mapping"):
        parse_task(["not", "a", "row"], index=0)  # type: ignore[arg-type]


def test_terminal_tests_must_live_under_tests_dir():
    with pytest.raises(ValueError, match="under tests/"):
        TerminalTask(task_id="x", instruction="y", tests={"test.sh": "exit 0"})


def test_terminal_files_relative_to_workdir():
    task = TerminalTask(task_id="x", instruction="y", workdir="/app", files={"a.txt": "1", "/etc/b": "2"})
    assert task.files == {"/app/a.txt": "1", "/etc/b": "2"}


def test_expert_turns_validate_tool_calls():
    task = TerminalTask(task_id="x", instruction="y", expert_turns=[[{"name": "bash", "arguments": {"command": "ls"}}]])
    assert task.expert_turns == [[ToolCall(name="bash", arguments={"command": "ls"})]]
    with pytest.raises(TaskError, match="expert_turns"):
        parse_task({"kind": "terminal", "task_id": "x", "instruction": "y", "expert_turns": [[{"arguments": {}}]]})


def test_read_jsonl_names_line(tmp_path):
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps(SWEBENCH_ROW) + "\n\n" + json.dumps({"instance_id": "x__y-2"}) + "\n")
    with pytest.raises(TaskError, match=r"tasks.jsonl:3: .*problem_statement"):
        read_jsonl(path)
    path.write_text(json.dumps(SWEBENCH_ROW) + "\n")
    assert [task.task_id for task in read_jsonl(path)] == ["astropy__astropy-12907"]


def test_importing_tasks_loads_no_engine_client():
    import subprocess
    import sys

    code = "import sys, rock_gym.tasks; assert 'docker' not in sys.modules, 'docker was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
