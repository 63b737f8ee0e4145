import pytest

from rock_gym.tasks import TaskError, TerminalTask, read_task_dir, read_task_tree, terminal_tasks, write_task_dir

TASK = TerminalTask(
    task_id="hello-world",
    instruction="Create /app/hello.txt holding the greeting named in /app/greeting.txt.\n",
    image="python:3.11-slim",
    workdir="/app",
    files={"greeting.txt": "hello\n", "/etc/motd": 'welcome, "friend"\n', "/app/sub dir/x.txt": "x"},
    tests={"tests/test.sh": "#!/bin/bash\necho 1 > /logs/verifier/reward.txt\n", "tests/test_state.py": "pass\n"},
    solution="#!/bin/bash\ncp /app/greeting.txt /app/hello.txt\n",
    timeouts={"agent": 300, "verifier": 45.5},
    env={"LANG": "C.UTF-8", "GREETING": "a b"},
    metadata={"difficulty": "easy", "tags": ["trivial", "files"], "weight": 2, "nested": {"a": True}},
    expert_turns=[[{"name": "bash", "arguments": {"command": "cat /app/greeting.txt"}}], [{"name": "submit"}]],
)


def test_round_trip(tmp_path):
    root = write_task_dir(TASK, tmp_path / "hello-world")
    assert (root / "environment" / "Dockerfile").read_text().startswith("FROM python:3.11-slim\n")
    assert (root / "tests" / "test.sh").is_file() and (root / "solution" / "solve.sh").is_file()
    assert read_task_dir(root) == TASK


def test_round_trip_of_every_family(tmp_path):
    for task in terminal_tasks(seeds=[0]):
        assert read_task_dir(write_task_dir(task, tmp_path / task.task_id)) == task


def test_reads_handwritten_harbor_dir(tmp_path):
    root = tmp_path / "fix-permissions"
    (root / "environment" / "data").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "instruction.md").write_text("Make /app/run.sh executable.\n")
    (root / "task.toml").write_text(
        'version = "1.0"\n[metadata]\ndifficulty = "easy"\n'
        "[verifier]\ntimeout_sec = 60.0\n[agent]\ntimeout_sec = 90.0\n"
    )
    (root / "environment" / "Dockerfile").write_text(
        "# base\nFROM ubuntu:24.04\nWORKDIR /app\nENV MODE=test\nCOPY run.sh /app/run.sh\nCOPY data /srv/data\n"
    )
    (root / "environment" / "run.sh").write_text("echo hi\n")
    (root / "environment" / "data" / "a.csv").write_text("x,y\n")
    (root / "environment" / "notes.txt").write_text("n\n")
    (root / "tests" / "test.sh").write_text("test -x /app/run.sh\n")
    task = read_task_dir(root)
    assert task.task_id == "fix-permissions"
    assert task.image == "ubuntu:24.04" and task.workdir == "/app" and task.env == {"MODE": "test"}
    assert task.files == {"/srv/data/a.csv": "x,y\n", "/app/notes.txt": "n\n", "/app/run.sh": "echo hi\n"}
    assert task.timeouts.agent == 90 and task.timeouts.verifier == 60
    assert task.tests == {"tests/test.sh": "test -x /app/run.sh\n"}
    assert task.solution is None and task.expert_turns is None and task.dockerfile is None


def test_dockerfile_that_builds_is_kept(tmp_path):
    root = tmp_path / "Build-Me"
    (root / "environment").mkdir(parents=True)
    (root / "instruction.md").write_text("do it")
    (root / "environment" / "Dockerfile").write_text("FROM debian:bookworm\nRUN apt-get update\nCOPY x /x\n")
    (root / "environment" / "x").write_text("x")
    task = read_task_dir(root)
    assert task.image == "rock-gym/task-build-me:latest"
    assert task.dockerfile.startswith("FROM debian") and task.build_files == {"x": "x"} and task.files == {}
    assert read_task_dir(write_task_dir(task, tmp_path / "again")) == task.model_copy(update={"task_id": "Build-Me"})


def test_image_from_task_toml_without_dockerfile(tmp_path):
    root = tmp_path / "t"
    root.mkdir()
    (root / "instruction.md").write_text("x")
    (root / "task.toml").write_text('[task]\nname = "org/t"\n[environment]\ndocker_image = "alpine:3"\n')
    task = read_task_dir(root)
    assert task.task_id == "org/t" and task.image == "alpine:3"


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(TaskError, match="no instruction.md"):
        read_task_dir(tmp_path)
    (tmp_path / "instruction.md").write_text("x")
    with pytest.raises(TaskError, match="no image"):
        read_task_dir(tmp_path)
    (tmp_path / "task.toml").write_text("[agent\n")
    with pytest.raises(TaskError, match="not valid TOML"):
        read_task_dir(tmp_path)


def test_read_tree(tmp_path):
    tasks = terminal_tasks(["csv-groupby", "find-files"], seeds=[1, 2])
    for task in tasks:
        write_task_dir(task, tmp_path / "set" / task.task_id)
    assert read_task_tree(tmp_path) == sorted(tasks, key=lambda task: task.task_id)
    with pytest.raises(TaskError, match="no Harbor task"):
        read_task_tree(tmp_path / "set" / "csv-groupby-1" / "tests")
