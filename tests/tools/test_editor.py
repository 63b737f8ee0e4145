"""The str_replace_editor commands, good and bad paths, on MemoryFiles."""

from __future__ import annotations

import pytest

from rock_gym.tools import Editor, MemoryFiles, ToolError
from rock_gym.tools.editor import MAX_VIEW_CHARS

SOURCE = "import os\n\ndef f():\n\treturn 1\n\ndef g():\n\treturn 1\n"


@pytest.fixture
def files():
    return MemoryFiles({"/repo/app.py": SOURCE, "/repo/pkg/mod.py": "x = 1", "/repo/.git/HEAD": "ref"})


@pytest.fixture
def editor(files):
    return Editor(files)


# -- view -------------------------------------------------------------------------------------------------------


def test_view_numbers_every_line_like_cat_n(editor):
    out = editor.view("/repo/app.py")
    assert out.splitlines()[0] == "Here is /repo/app.py with line numbers (cat -n):"
    assert out.splitlines()[1:] == [f"{n:6}\t{line}" for n, line in enumerate(SOURCE[:-1].split("\n"), 1)]


@pytest.mark.parametrize(("view_range", "numbers"), [([3, 4], [3, 4]), ([6, -1], [6, 7]), ([7, 7], [7])])
def test_view_range(editor, view_range, numbers):
    lines = editor.view("/repo/app.py", view_range).splitlines()[1:]
    assert [int(line.split("\t")[0]) for line in lines] == numbers


@pytest.mark.parametrize(
    ("view_range", "message"),
    [
        ([0, 3], r"start must be between 1 and 7 \(/repo/app.py has 7 lines\)"),
        ([8, -1], "start must be between 1 and 7"),
        ([4, 2], "end must be between 4 and 7, or -1"),
        ([1, 8], "end must be between 1 and 7, or -1"),
        ([1, 2, 3], r"view_range must be \[start, end\]"),
    ],
)
def test_view_bad_range(editor, view_range, message):
    with pytest.raises(ToolError, match=message):
        editor.view("/repo/app.py", view_range)


def test_view_of_an_empty_file(files, editor):
    files.write_file("/empty", "")
    assert editor.view("/empty") == "/empty is empty."


def test_view_clips_huge_files(files, editor):
    files.write_file("/big.txt", "y" * 100 + "\n" * 5000)
    out = editor.view("/big.txt")
    assert len(out) < MAX_VIEW_CHARS + 200
    assert out.endswith("<output clipped: pass view_range to see the rest>")


def test_view_directory_lists_two_levels(editor):
    out = editor.view("/repo")
    assert out.splitlines()[0] == "Files and directories in /repo, two levels deep:"
    assert "/repo/pkg/mod.py" in out and "/repo/app.py" in out


def test_view_directory_through_a_given_lister(files):
    editor = Editor(files, list_dir=lambda path: f"listing of {path}")
    assert editor.view("/repo").endswith("listing of /repo")
    with pytest.raises(ToolError, match="view_range applies to files only"):
        editor.view("/repo", [1, 2])


def test_view_directory_without_a_lister_points_to_bash():
    class PlainFiles:  # read/write only, no list_dir
        def __init__(self):
            self.inner = MemoryFiles({"/repo/a": "a"})

        def read_file(self, path):
            return self.inner.read_file(path)

        def write_file(self, path, content):
            self.inner.write_file(path, content)

    with pytest.raises(ToolError, match="/repo is a directory: list it with bash, e.g. `ls /repo`"):
        Editor(PlainFiles()).view("/repo")


def test_view_reads_bytes_from_files_that_return_them(files):
    class ByteFiles(MemoryFiles):
        def read_file(self, path, binary=False):
            return super().read_file(path, binary=True)

    assert "\tx = 1" in Editor(ByteFiles(files.files)).view("/repo/pkg/mod.py")


# -- errors shared by every command ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "arguments",
    [
        {"command": "view"},
        {"command": "create", "file_text": "x"},
        {"command": "str_replace", "old_str": "x", "new_str": "y"},
        {"command": "insert", "insert_line": 0, "new_str": "x"},
    ],
)
def test_relative_paths_are_refused(editor, arguments):
    with pytest.raises(ToolError, match=r"path must be absolute \(start with /\), got 'repo/app.py': e.g. /repo/"):
        editor.run(path="repo/app.py", **arguments)


@pytest.mark.parametrize(
    "arguments",
    [
        {"command": "view"},
        {"command": "str_replace", "old_str": "x"},
        {"command": "insert", "insert_line": 0, "new_str": "x"},
    ],
)
def test_missing_files_say_how_to_make_them(editor, arguments):
    with pytest.raises(ToolError, match="no file at /repo/nope.py: check the path, or make it with command=create"):
        editor.run(path="/repo/nope.py", **arguments)


@pytest.mark.parametrize(
    "arguments", [{"command": "str_replace", "old_str": "x"}, {"command": "insert", "insert_line": 0, "new_str": "x"}]
)
def test_directories_cannot_be_edited(editor, arguments):
    with pytest.raises(ToolError, match="/repo is a directory: give the path of a file"):
        editor.run(path="/repo", **arguments)


def test_binary_files_are_refused(files, editor):
    files.write_file("/bin", "\x7fELF\x00\x01")
    with pytest.raises(ToolError, match="binary file"):
        editor.view("/bin")


def test_run_checks_the_command_and_its_arguments(editor):
    with pytest.raises(ToolError, match="unknown command 'delete'"):
        editor.run("delete", "/repo/app.py")
    with pytest.raises(ToolError, match="command 'create' needs file_text"):
        editor.run("create", "/repo/new.py")
    with pytest.raises(ToolError, match="command 'insert' needs new_str"):
        editor.run("insert", "/repo/app.py", insert_line=1)


# -- create -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["a\nb\n", "no final newline", "", "tabs\tand\r\nCRLF\r\n", "ünï 日本 🐍\n"])
def test_create_writes_the_text_exactly(files, editor, text):
    assert editor.create("/repo/new/file.txt", text) == "File created at /repo/new/file.txt."
    assert files.read_file("/repo/new/file.txt") == text


def test_create_refuses_to_overwrite(files, editor):
    with pytest.raises(ToolError, match="file already exists at /repo/app.py: use str_replace to edit it"):
        editor.create("/repo/app.py", "oops")
    assert files.read_file("/repo/app.py") == SOURCE
    with pytest.raises(ToolError, match="/repo/pkg is a directory: give the path of a file to create"):
        editor.create("/repo/pkg", "oops")


def test_create_under_a_file_fails_clearly(editor):
    with pytest.raises(ToolError, match="cannot write /repo/app.py/x: /repo/app.py is a file"):
        editor.create("/repo/app.py/x", "oops")


# -- str_replace ------------------------------------------------------------------------------------------------


def test_str_replace_edits_once_and_shows_the_region(files, editor):
    out = editor.str_replace("/repo/app.py", "def g():\n\treturn 1", "def g():\n\treturn 2\n\t# changed")
    assert files.read_file("/repo/app.py") == SOURCE.replace(
        "def g():\n\treturn 1", "def g():\n\treturn 2\n\t# changed"
    )
    lines = out.splitlines()
    assert lines[0] == "The file /repo/app.py has been edited. Here is the edited region with line numbers:"
    expected = [
        (2, ""),
        (3, "def f():"),
        (4, "\treturn 1"),
        (5, ""),
        (6, "def g():"),
        (7, "\treturn 2"),
        (8, "\t# changed"),
    ]
    assert lines[1:-1] == [f"{number:6}\t{text}" for number, text in expected]
    assert lines[-1] == "Review it and edit again if it is not right."


def test_str_replace_keeps_a_missing_final_newline(files, editor):
    editor.str_replace("/repo/pkg/mod.py", "x = 1", "x = 2")
    assert files.read_file("/repo/pkg/mod.py") == "x = 2"


def test_str_replace_with_nothing_deletes(files, editor):
    editor.run("str_replace", "/repo/app.py", old_str="import os\n\n")
    assert files.read_file("/repo/app.py") == SOURCE.removeprefix("import os\n\n")


def test_str_replace_without_match_says_to_check_whitespace(files, editor):
    with pytest.raises(ToolError, match="no match for old_str in /repo/app.py: check whitespace and indentation"):
        editor.str_replace("/repo/app.py", "    return 1", "    return 2")  # the file indents with tabs
    assert files.read_file("/repo/app.py") == SOURCE


def test_str_replace_with_several_matches_lists_their_lines(files, editor):
    with pytest.raises(ToolError, match=r"old_str occurs 2 times in /repo/app.py \(lines 4, 7\): include more context"):
        editor.str_replace("/repo/app.py", "\treturn 1", "\treturn 2")
    assert files.read_file("/repo/app.py") == SOURCE


def test_str_replace_lists_at_most_ten_lines(files, editor):
    files.write_file("/many", "x\n" * 12)
    with pytest.raises(ToolError, match=r"occurs 12 times in /many \(lines 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, \.\.\.\)"):
        editor.str_replace("/many", "x", "y")


def test_str_replace_refuses_an_empty_old_str(editor):
    with pytest.raises(ToolError, match="old_str is empty"):
        editor.str_replace("/repo/app.py", "", "x")


# -- insert -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "line", "new_str", "expected"),
    [
        ("a\nb\n", 0, "x", "x\na\nb\n"),
        ("a\nb\n", 1, "x\ny\n", "a\nx\ny\nb\n"),
        ("a\nb\n", 2, "x", "a\nb\nx\n"),
        ("a\nb", 2, "x", "a\nb\nx"),
        ("a\nb", 1, "x", "a\nx\nb"),
        ("", 0, "x", "x\n"),
        ("a\n", 1, "\n", "a\n\n"),
        ("a\r\nb\r\n", 1, "x\r", "a\r\nx\r\nb\r\n"),
    ],
)
def test_insert_adds_whole_lines_and_keeps_the_final_newline(files, editor, content, line, new_str, expected):
    files.write_file("/f", content)
    editor.insert("/f", line, new_str)
    assert files.read_file("/f") == expected


def test_insert_shows_the_region(files, editor):
    out = editor.insert("/repo/app.py", 3, "\t# start")
    assert f"{4:6}\t\t# start" in out.splitlines()
    assert out.splitlines()[1] == f"{1:6}\timport os"


@pytest.mark.parametrize("line", [-1, 8])
def test_insert_out_of_range(editor, line):
    with pytest.raises(ToolError, match=rf"insert_line {line} is out of range for /repo/app.py: use 0 \(top\) to 7"):
        editor.insert("/repo/app.py", line, "x")


def test_insert_refuses_empty_text(editor):
    with pytest.raises(ToolError, match="new_str is empty"):
        editor.insert("/repo/app.py", 0, "")
