import pytest

from rock_gym.tasks import FAMILIES, TaskFamily, get_family, register_family, terminal_tasks

NAMES = sorted(FAMILIES)


def test_at_least_six_families():
    assert len(FAMILIES) >= 6


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_task_different_seeds_differ(name):
    family = get_family(name)
    assert family.generate(7) == family.generate(7)
    variants = [family.generate(seed) for seed in range(6)]
    assert len({task.model_dump_json(exclude={"task_id", "metadata"}) for task in variants}) == 6
    assert len({task.tests["tests/test.sh"] for task in variants}) == 6


@pytest.mark.parametrize("name", NAMES)
def test_instruction_does_not_hold_the_answer(name):
    # The instruction is the same for every seed, so what a variant needs must be read from its files.
    assert len({get_family(name).generate(seed).instruction for seed in range(6)}) == 1


@pytest.mark.parametrize("name", NAMES)
def test_task_shape(name):
    task = get_family(name).generate(3)
    assert task.task_id == f"{name}-3" and task.metadata["family"] == name
    assert task.image == "rock-gym/base:bookworm"
    assert set(task.tests) == {"tests/test.sh"} and "/logs/verifier/reward.txt" in task.tests["tests/test.sh"]
    assert task.solution.startswith("#!/bin/bash")
    assert all(path.startswith("/data/") for path in task.files)
    turns = task.expert_turns
    assert len(turns) >= 3 and turns[-1][0].name == "submit"
    assert all(len(turn) == 1 and turn[0].name == "bash" for turn in turns[:-1])
    assert turns[0][0].arguments["command"].startswith("cat /data/")  # the expert looks first


def test_terminal_tasks_order_and_unknown_name():
    tasks = terminal_tasks(seeds=range(2))
    assert [task.task_id for task in tasks[:2]] == [f"{next(iter(FAMILIES))}-0", f"{next(iter(FAMILIES))}-1"]
    assert len(tasks) == 2 * len(FAMILIES)
    with pytest.raises(KeyError, match="registered:"):
        terminal_tasks(["nope"])


def test_register_rejects_duplicates():
    with pytest.raises(ValueError, match="already registered"):
        register_family(TaskFamily("find-files", "dup", FAMILIES["find-files"].build))
