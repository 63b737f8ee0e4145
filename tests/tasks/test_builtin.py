from rock_gym.tasks import SWETask, builtin_swe_tasks


def test_builtin_tasks_are_self_contained():
    tasks = builtin_swe_tasks()
    assert 3 <= len(tasks) <= 5
    assert len({task.instance_id for task in tasks}) == len(tasks)
    for task in tasks:
        assert isinstance(task, SWETask) and task.image == "rock-gym/base:bookworm" and task.repo_files
        assert task.patch.startswith("diff --git a/") and task.FAIL_TO_PASS and task.PASS_TO_PASS
        for test_id in [*task.FAIL_TO_PASS, *task.PASS_TO_PASS]:
            assert test_id.split("::")[0] in task.test_files


def test_expert_edit_matches_the_gold_patch():
    for task in builtin_swe_tasks():
        view, edit, run, submit = (turn[0] for turn in task.expert_turns)
        assert view.arguments == {"command": "view", "path": edit.arguments["path"]}
        rel = edit.arguments["path"].removeprefix("/testbed/")
        assert task.repo_files[rel].count(edit.arguments["old_str"]) == 1
        assert f"a/{rel}" in task.patch
        assert run.name == "bash" and submit.name == "submit"


def test_builtin_tasks_validate_from_their_dump():
    for task in builtin_swe_tasks():
        assert SWETask.model_validate_json(task.model_dump_json()) == task
