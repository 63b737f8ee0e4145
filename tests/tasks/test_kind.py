"""The `TaskKind` protocol: what an env asks of a task, met by both built-in kinds and by any class that has it."""

from __future__ import annotations

import doctest

import pytest

from rock_gym.tasks import (
    SWETask,
    TaskKind,
    TerminalTask,
    Verdict,
    builtin_swe_tasks,
    kind,
    load_kinds,
    sources,
    terminal_tasks,
)


class Riddle:
    """A kind of task no module of rock_gym knows."""

    task_id, image, workdir, env, verifier_timeout = "riddle-1", "rock-gym/base:bookworm", "/", {}, 5.0

    def prompt(self) -> str:
        return "What has keys but opens no locks?"

    def prepare_image(self, base: object) -> None:
        pass

    def setup(self, sandbox: object) -> str:
        return "HEAD"

    def verify(self, sandbox: object, base_commit: str) -> Verdict:
        return Verdict(True)


def test_both_built_in_kinds_are_task_kinds():
    swe, terminal = builtin_swe_tasks()[0], terminal_tasks(["count-matches"], seeds=[0])[0]
    assert isinstance(swe, TaskKind) and isinstance(terminal, TaskKind)
    assert swe.task_id == swe.instance_id and swe.verifier_timeout == 300.0
    assert swe.prompt().startswith(f"Fix the following issue in the repository at {swe.workdir}.")
    assert swe.problem_statement in swe.prompt() and swe.prompt().endswith("then call `submit`.")
    assert terminal.prompt() == f"{terminal.instruction}\n\nWhen you are done, call `submit`."
    hang = TerminalTask(task_id="t", instruction="i", timeouts={"verifier": 7})
    assert hang.verifier_timeout == 7.0


def test_a_task_kind_is_any_class_with_its_members():
    assert isinstance(Riddle(), TaskKind) and not isinstance(object(), TaskKind)
    riddle = Riddle()
    assert load_kinds([riddle]) == [riddle]  # passed through: a new kind needs no row format


def test_load_kinds_reads_rows_and_paths_as_load_does(tmp_path):
    (task,) = load_kinds([{"instance_id": "a__b-1", "problem_statement": "boom"}])
    assert isinstance(task, SWETask) and task.task_id == "a__b-1"
    path = tmp_path / "tasks.jsonl"
    path.write_text(terminal_tasks(["count-matches"], seeds=[0])[0].model_dump_json() + "\n")
    assert [task.task_id for task in load_kinds(path)] == ["count-matches-0"]
    with pytest.raises(Exception, match="no tasks given"):
        load_kinds([])


@pytest.mark.parametrize("module", [kind, sources], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
