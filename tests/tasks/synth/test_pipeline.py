"""The synthesis pipeline: expert fixes and task fields on small code, then a real end-to-end synth of inflection.

The container tests synthesize a few tasks from inflection (its suite runs in about a second) in real sandboxes,
then run `rock-gym tasks validate` over them: every task's gold patch passes, doing nothing fails, and its expert
turns resolve it through rock/SWE-v0.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from rock_gym.tasks import SWETask, load
from rock_gym.tasks.synth.coverage import Coverage, is_test_file
from rock_gym.tasks.synth.expert import expert_turns, fix_edit
from rock_gym.tasks.synth.mutate import OPERATORS, mutations
from rock_gym.tasks.synth.pipeline import (
    TASKS_FILE,
    SynthReport,
    candidates,
    failure_texts,
    synth,
    task_test_command,
)
from rock_gym.tasks.synth.specs import ProjectSpec, spec_for
from rock_gym.tools import Editor, MemoryFiles

MODULE = '''\
"""A module with repeated lines, so that a fix needs context to be unique."""


def clamp(value, low, high):
    if value < low:
        return low
    if value > high:
        return high
    return value


def window(items, start, size=2):
    total = 0
    for item in items[start : start + size]:
        total += item
    return total


def pick(flag, a, b):
    if flag and a:
        return a
    return b


def quotient(a, b):
    return divmod(a, b)[0]
'''


def spec(**fields: object) -> ProjectSpec:
    return ProjectSpec.model_validate(
        {"name": "m", "version": "1.0", "sdist_sha256": "0" * 64, "source_paths": ["m.py"], **fields}
    )


# -- expert fixes -------------------------------------------------------------------------------------------------


def test_fix_edit_grows_until_the_old_text_is_unique() -> None:
    before = "x = 1\ny = 2\nx = 1\n"
    after = "x = 1\ny = 2\nx = 2\n"
    old, new, line = fix_edit(before, after)
    assert after.count(old) == 1 and after.replace(old, new) == before
    assert line == 3


def test_fix_edit_of_a_removed_line_keeps_a_neighbour() -> None:
    before, after = "a = 1\nb = 2\nc = 3\n", "a = 1\nc = 3\n"
    old, new, _ = fix_edit(before, after)
    assert old and after.count(old) == 1 and after.replace(old, new) == before


def test_fix_edit_refuses_equal_texts() -> None:
    with pytest.raises(ValueError, match="equal"):
        fix_edit("x\n", "x\n")


@pytest.mark.parametrize("operator", sorted(OPERATORS))
def test_every_operators_expert_turns_fix_the_bug_through_the_editor(operator: str) -> None:
    found = [m for m in mutations("pkg/m.py", MODULE, seed=1, max_per_function=None) if m.operator == operator]
    if not found:
        pytest.skip(f"{operator} has no candidate in the sample module")
    for mutation in found:
        files = MemoryFiles({"/testbed/pkg/m.py": mutation.after})
        turns = expert_turns(mutation, "/testbed", "python3 -m pytest -q")
        assert [call.name for turn in turns for call in turn] == [
            "bash",
            "str_replace_editor",
            "str_replace_editor",
            "bash",
            "submit",
        ]
        view, fix = turns[1][0].arguments, turns[2][0].arguments
        Editor(files).run(**view)  # the view range lies inside the file
        Editor(files).run(**fix)
        assert files.read_file("/testbed/pkg/m.py") == mutation.before, mutation.diff


# -- task fields --------------------------------------------------------------------------------------------------


def test_the_task_test_command_runs_the_suite_as_the_baseline_did() -> None:
    command = task_test_command(
        spec(
            env={"PYTHONPATH": "src"},
            pytest_args=["-o", "addopts="],
            ignore=["tests/test_slow.py"],
            deselect=["tests/test_a.py::test_x"],
            test_paths=["tests"],
        )
    )
    assert command == (
        "export PYTHONDONTWRITEBYTECODE=1 PYTHONHASHSEED=0 PYTHONPATH=src && python3 -m pytest -p no:cacheprovider -q "
        "-o addopts= --ignore=tests/test_slow.py --deselect=tests/test_a.py::test_x tests"
    )


def test_failure_texts_name_failed_and_errored_tests_by_node_id() -> None:
    report = (
        '<testsuites><testsuite><testcase file="tests/test_a.py" classname="tests.test_a.TestX" name="test_b">'
        '<failure message="assert 1 == 2">def test_b():\n&gt;  assert 1 == 2</failure></testcase>'
        '<testcase file="tests/test_a.py" classname="tests.test_a" name="test_c"><error message="boom"/></testcase>'
        '<testcase file="tests/test_a.py" classname="tests.test_a" name="test_ok"/></testsuite></testsuites>'
    )
    texts = failure_texts(report)
    assert set(texts) == {"tests/test_a.py::TestX::test_b", "tests/test_a.py::test_c"}
    assert texts["tests/test_a.py::TestX::test_b"].startswith("assert 1 == 2\ndef test_b():")
    assert texts["tests/test_a.py::test_c"] == "boom"


def test_candidates_are_seeded_and_only_in_covered_functions() -> None:
    coverage = Coverage({"m.py": MODULE}, {"m.py": {5, 6}})  # clamp's first branch only
    first = candidates(spec(), coverage, seed=3)
    assert first and {m.function for m in first} == {"clamp"}
    assert [m.diff for m in candidates(spec(), coverage, seed=3)] == [m.diff for m in first]
    everything = Coverage({"m.py": MODULE}, {"m.py": set(range(1, 40))})
    assert {m.function for m in candidates(spec(), everything, seed=3)} == {"clamp", "window", "pick", "quotient"}


def test_test_files_are_never_library_files() -> None:
    toolz = spec(source_paths=["toolz"], test_paths=["toolz/tests", "toolz/sandbox/tests"])
    assert is_test_file(toolz, "toolz/tests/test_itertoolz.py")
    assert is_test_file(toolz, "toolz/sandbox/tests/helpers.py")
    assert is_test_file(toolz, "toolz/conftest.py")
    assert not is_test_file(toolz, "toolz/itertoolz.py")
    assert not is_test_file(toolz, "toolz/testing.py")


def test_the_report_counts_tasks_per_minute() -> None:
    report = SynthReport("m==1.0", "img", seed=0, workers=2, max_tasks=5, max_fail_to_pass=50, accepted=10)
    report.seconds = 30.0
    assert report.tasks_per_minute == 20.0
    assert report.to_json()["tasks_per_minute"] == 20.0


# -- a real synth in containers -----------------------------------------------------------------------------------

SMALL_PROJECT = "inflection==0.5.1"
TASKS = 4


def docker_or_skip() -> None:
    from rock_gym.sandbox import SandboxConfig
    from rock_gym.sandbox.engines import Engine

    try:
        Engine.connect(SandboxConfig(backend="docker")).api.ping()
    except Exception as exc:  # noqa: BLE001 - any failure to reach the engine
        if "docker" in os.environ.get("ROCK_GYM_REQUIRE_ENGINES", "").split(","):
            pytest.fail(f"docker engine required but unreachable: {exc}")
        pytest.skip(f"docker engine unreachable: {exc}")


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, SynthReport]]:
    docker_or_skip()
    out = tmp_path_factory.mktemp("synth") / "inflection"
    yield out, synth(spec_for(SMALL_PROJECT), TASKS, out, workers=2, seed=0)


@pytest.mark.container
def test_synth_writes_loadable_valid_tasks(synthesized: tuple[Path, SynthReport]) -> None:
    out, report = synthesized
    tasks = load(out)
    assert len(tasks) == report.accepted == TASKS
    assert all(isinstance(task, SWETask) for task in tasks)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["accepted"] == TASKS and summary["reasons"]["accepted"] == TASKS
    assert sum(summary["reasons"].values()) == summary["candidates_tried"] >= TASKS
    for task in tasks:
        assert isinstance(task, SWETask)
        assert task.image == "rock-gym/proj-inflection:0.5.1" and task.workdir == "/testbed"
        assert task.setup_patch and task.patch and task.expert_turns
        assert 1 <= len(task.FAIL_TO_PASS) <= summary["max_fail_to_pass"]
        assert not set(task.FAIL_TO_PASS) & set(task.PASS_TO_PASS)
        assert set(task.test_files) == {test.split("::")[0] for test in task.FAIL_TO_PASS}
        assert task.extra["function"] and task.extra["operator"] in OPERATORS
        changed = [line[1:].strip() for line in task.setup_patch.splitlines()[3:] if line[:1] in "+-"]
        hidden = [line for line in changed if len(line) >= 4]
        assert not any(line in task.problem_statement for line in hidden), task.problem_statement
        SWETask.model_validate_json(task.model_dump_json())


@pytest.mark.container
def test_every_synthesized_task_passes_validate(synthesized: tuple[Path, SynthReport]) -> None:
    from rock_gym.cli import main

    out, _ = synthesized
    result = CliRunner().invoke(main, ["tasks", "validate", str(out), "--workers", "2"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "validation.json").read_text())
    assert report["passed"] == report["tasks"] == TASKS
    assert all(check["gold"] and check["noop"] and check["expert"] for check in report["checks"])
    listing = CliRunner().invoke(main, ["tasks", "list", str(out)])
    assert listing.exit_code == 0 and "inflection.0.1" in listing.output


@pytest.mark.container
def test_validate_catches_a_task_whose_bug_breaks_nothing(synthesized: tuple[Path, SynthReport]) -> None:
    from rock_gym.sandbox import SandboxConfig
    from rock_gym.tasks.synth.validate import check_noop

    out, _ = synthesized
    task = load(out)[0]
    assert isinstance(task, SWETask)
    no_bug = task.model_copy(update={"setup_patch": "", "repo_files": {"NOTES": "no bug here\n"}})
    held, note = check_noop(no_bug, SandboxConfig())
    assert not held and "resolved" in note


@pytest.mark.container
def test_the_same_seed_gives_the_same_tasks(synthesized: tuple[Path, SynthReport], tmp_path: Path) -> None:
    out, _ = synthesized
    again = synth(spec_for(SMALL_PROJECT), 2, tmp_path, workers=2, seed=0)
    assert again.accepted == 2
    first = [json.loads(line) for line in (out / TASKS_FILE).read_text().splitlines()][:2]
    second = [json.loads(line) for line in (tmp_path / TASKS_FILE).read_text().splitlines()]
    assert [row["setup_patch"] for row in second] == [row["setup_patch"] for row in first]
    assert [row["instance_id"] for row in second] == [row["instance_id"] for row in first]


EXTRA_SPECS = Path(__file__).with_name("extra_project.toml")


def test_the_cli_synthesizes_a_project_found_only_in_the_given_spec_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default run's share of the long test below: `tasks synth --spec-file` hands the pipeline that file's entry
    for a project the shipped specs lack (the pipeline itself runs end to end, validate included, on inflection)."""
    import rock_gym.tasks.synth.pipeline as pipeline_module
    from rock_gym.cli import main
    from rock_gym.tasks.synth import load_specs

    (project,) = load_specs(EXTRA_SPECS).values()
    assert project.name not in load_specs()  # not a shipped project
    calls: list[tuple[ProjectSpec, int, str]] = []

    def recorded_synth(spec: ProjectSpec, max_tasks: int, out_dir: str, **options: object) -> SynthReport:
        calls.append((spec, max_tasks, out_dir))
        return SynthReport(spec.requirement, spec.image, 0, 2, max_tasks, 50, accepted=max_tasks, seconds=1.0)

    monkeypatch.setattr(pipeline_module, "synth", recorded_synth)
    args = ["tasks", "synth", "--project", project.requirement, "--spec-file", str(EXTRA_SPECS)]
    synthesized = CliRunner().invoke(main, [*args, "--max-tasks", "20", "--out", str(tmp_path)])
    assert synthesized.exit_code == 0, synthesized.output
    assert calls == [(project, 20, str(tmp_path))]
    assert project.requirement in synthesized.output


@pytest.mark.slow
@pytest.mark.long
@pytest.mark.container
@pytest.mark.timeout(1800)  # about 3 minutes on an idle 2-core machine; far more while other jobs load it
def test_a_project_given_only_a_spec_entry_yields_twenty_valid_tasks(tmp_path: Path) -> None:
    from rock_gym.cli import main
    from rock_gym.tasks.synth import load_specs

    docker_or_skip()
    (project,) = load_specs(EXTRA_SPECS).values()
    assert project.name not in load_specs()  # not a shipped project
    out = tmp_path / project.name
    args = ["tasks", "synth", "--project", project.requirement, "--spec-file", str(EXTRA_SPECS)]
    synthesized = CliRunner().invoke(main, [*args, "--max-tasks", "20", "--out", str(out)])
    assert synthesized.exit_code == 0, synthesized.output
    assert len(load(out)) == 20
    validated = CliRunner().invoke(main, ["tasks", "validate", str(out)])
    assert validated.exit_code == 0, validated.output
    assert json.loads((out / "validation.json").read_text())["passed"] == 20
