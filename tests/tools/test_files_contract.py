"""One contract for every Files: MemoryFiles (in process) and a real docker Sandbox behave alike under the editor."""

from __future__ import annotations

import secrets

import pytest

from rock_gym.tools import Editor, MemoryFiles, ToolError, list_dir_command


@pytest.fixture(scope="module")
def docker_sandbox():
    from rock_gym.sandbox import EngineUnavailableError, Sandbox, SandboxConfig

    try:
        sandbox = Sandbox(SandboxConfig(backend="docker", timeout=30)).start()
    except EngineUnavailableError as exc:
        pytest.skip(f"docker engine unreachable: {exc}")
    yield sandbox
    sandbox.close()


@pytest.fixture(params=["memory", pytest.param("docker", marks=pytest.mark.container)])
def files(request):
    if request.param == "memory":
        return MemoryFiles()
    return request.getfixturevalue("docker_sandbox")


@pytest.fixture
def root():
    """A fresh directory per test, so that the module's one sandbox can be shared."""
    return f"/tmp/editor-{secrets.token_hex(4)}"


@pytest.fixture
def editor(files):
    if isinstance(files, MemoryFiles):
        return Editor(files)  # finds MemoryFiles.list_dir on its own
    return Editor(files, list_dir=lambda path: files.run(list_dir_command(path)).output.rstrip("\n"))


def test_read_of_a_missing_path_is_file_not_found(files, root):
    with pytest.raises(FileNotFoundError):
        files.read_file(f"{root}/missing.txt")


def test_read_of_a_directory_is_is_a_directory(files, root):
    files.write_file(f"{root}/dir/a.txt", "a")
    with pytest.raises(IsADirectoryError):
        files.read_file(f"{root}/dir")


@pytest.mark.parametrize("text", ["a\nb\n", "no final newline", "", "tabs\tand\r\nCRLF\r\n", "ünï 日本 🐍\n"])
def test_write_then_read_is_exact_and_makes_parents(files, root, text):
    files.write_file(f"{root}/deep/er/file.txt", text)
    assert files.read_file(f"{root}/deep/er/file.txt") == text


def test_editor_session(files, root, editor):
    path = f"{root}/app.py"
    assert editor.run("create", path, file_text="def f():\n    return 1\n") == f"File created at {path}."
    with pytest.raises(ToolError, match=f"file already exists at {path}"):
        editor.run("create", path, file_text="x")

    assert editor.run("view", path).splitlines()[1:] == ["     1\tdef f():", "     2\t    return 1"]

    out = editor.run("str_replace", path, old_str="return 1", new_str="return 2")
    assert "     2\t    return 2" in out.splitlines()
    with pytest.raises(ToolError, match=f"no match for old_str in {path}"):
        editor.run("str_replace", path, old_str="return 1", new_str="return 3")

    editor.run("insert", path, insert_line=0, new_str="import os")
    assert files.read_file(path) == "import os\ndef f():\n    return 2\n"
    with pytest.raises(ToolError, match="out of range"):
        editor.run("insert", path, insert_line=9, new_str="x")

    assert f"{root}/app.py" in editor.run("view", root).splitlines()
    with pytest.raises(ToolError, match=f"no file at {root}/missing.py"):
        editor.run("view", f"{root}/missing.py")
