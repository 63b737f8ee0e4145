"""The file editor behind the ``str_replace_editor`` tool (SWE-agent / Anthropic semantics).

Every method returns the text the model sees, or raises :class:`~rock_gym.tools.calls.ToolError` with a message
saying what to do instead. File content is kept exact: tabs, ``\\r`` and the presence or absence of a final newline
survive every edit.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import TypeVar

from rock_gym.tools.calls import ToolError
from rock_gym.tools.files import Files

T = TypeVar("T")

#: Lines of context shown around an edit.
SNIPPET_CONTEXT = 4
#: Most characters of a view shown before it is clipped.
MAX_VIEW_CHARS = 20_000
#: Most occurrence lines listed when old_str is not unique.
MAX_LISTED_LINES = 10


def list_dir_command(path: str) -> str:
    """A shell command that lists a directory two levels deep, hidden entries left out, for ``Editor(list_dir=...)``.

    Examples:
        >>> list_dir_command("/repo")
        "find /repo -maxdepth 2 -not -path '*/.*' | sort"
    """
    return f"find {shlex.quote(path)} -maxdepth 2 -not -path '*/.*' | sort"


class Editor:
    """View, create and edit files through a :class:`~rock_gym.tools.files.Files`.

    Args:
        files: where the files live (a Sandbox, or MemoryFiles in tests).
        list_dir: lists a directory for ``view``; defaults to ``files.list_dir`` where it exists. With a sandbox,
            pass ``lambda path: sandbox.run(list_dir_command(path)).output``.

    Examples:
        >>> from rock_gym.tools.files import MemoryFiles
        >>> editor = Editor(MemoryFiles({"/a.txt": "hello\\n"}))
        >>> editor.str_replace("/a.txt", "hello", "bye").splitlines()[1]
        '     1\\tbye'
    """

    def __init__(self, files: Files, list_dir: Callable[[str], str] | None = None) -> None:
        self.files = files
        self.list_dir = list_dir or getattr(files, "list_dir", None)

    def run(
        self,
        command: str,
        path: str,
        file_text: str | None = None,
        old_str: str | None = None,
        new_str: str | None = None,
        insert_line: int | None = None,
        view_range: list[int] | None = None,
    ) -> str:
        """Run one ``str_replace_editor`` call; takes the arguments of ``EditorArguments`` by name.

        Raises:
            ToolError: an unknown command, a missing argument, or the command's own failure.
        """
        if command == "view":
            return self.view(path, view_range)
        if command == "create":
            return self.create(path, _required(file_text, "file_text", command))
        if command == "str_replace":
            return self.str_replace(path, _required(old_str, "old_str", command), new_str or "")
        if command == "insert":
            return self.insert(
                path, _required(insert_line, "insert_line", command), _required(new_str, "new_str", command)
            )
        raise ToolError(f"unknown command {command!r}: use view, create, str_replace or insert")

    def view(self, path: str, view_range: list[int] | None = None) -> str:
        """A file with line numbers (all of it, or lines ``[start, end]``, end -1 meaning to the end), or a listing."""
        _check_absolute(path)
        try:
            content = self._read(path)
        except IsADirectoryError:
            return self._view_dir(path, view_range)
        lines, _ = _split(content)
        start, end = _view_bounds(view_range, len(lines), path)
        if not lines:
            return f"{path} is empty."
        shown = _numbered(lines[start - 1 : end], start)
        if len(shown) > MAX_VIEW_CHARS:
            shown = shown[:MAX_VIEW_CHARS] + "\n<output clipped: pass view_range to see the rest>"
        return f"Here is {path} with line numbers (cat -n):\n{shown}"

    def create(self, path: str, file_text: str) -> str:
        """Write a new file; an existing file is left alone (edit it with str_replace)."""
        _check_absolute(path)
        try:
            self.files.read_file(path)
        except IsADirectoryError:
            raise ToolError(f"{path} is a directory: give the path of a file to create") from None
        except FileNotFoundError:
            self._write(path, file_text)
            return f"File created at {path}."
        raise ToolError(f"file already exists at {path}: use str_replace to edit it")

    def str_replace(self, path: str, old_str: str, new_str: str = "") -> str:
        """Replace the one occurrence of ``old_str`` with ``new_str``; fails if it occurs zero or several times."""
        _check_absolute(path)
        if not old_str:
            raise ToolError("old_str is empty: give the exact text to replace, copied from the file")
        content = self._read_file(path)
        starts = _occurrences(content, old_str)
        if not starts:
            raise ToolError(f"no match for old_str in {path}: check whitespace and indentation (view the file)")
        if len(starts) > 1:
            lines = [str(content.count("\n", 0, start) + 1) for start in starts[:MAX_LISTED_LINES]]
            more = ", ..." if len(starts) > MAX_LISTED_LINES else ""
            raise ToolError(
                f"old_str occurs {len(starts)} times in {path} (lines {', '.join(lines)}{more}): "
                "include more context to make it unique"
            )
        edited = content[: starts[0]] + new_str + content[starts[0] + len(old_str) :]
        self._write(path, edited)
        first = content.count("\n", 0, starts[0]) + 1
        return self._edited(path, edited, first, first + new_str.count("\n"))

    def insert(self, path: str, insert_line: int, new_str: str) -> str:
        """Insert ``new_str`` as whole lines after line ``insert_line`` (0 inserts at the top)."""
        _check_absolute(path)
        content = self._read_file(path)
        lines, final_newline = _split(content)
        if not 0 <= insert_line <= len(lines):
            raise ToolError(
                f"insert_line {insert_line} is out of range for {path}: "
                f"use 0 (top) to {len(lines)} (after the last line)"
            )
        new_lines, _ = _split(new_str)
        if not new_lines:
            raise ToolError("new_str is empty: give the text to insert")
        edited_lines = lines[:insert_line] + new_lines + lines[insert_line:]
        self._write(path, "\n".join(edited_lines) + ("\n" if final_newline else ""))
        return self._edited(path, "\n".join(edited_lines), insert_line + 1, insert_line + len(new_lines))

    # -- internals --------------------------------------------------------------------------------------------

    def _view_dir(self, path: str, view_range: list[int] | None) -> str:
        if view_range is not None:
            raise ToolError(f"{path} is a directory: view_range applies to files only")
        if self.list_dir is None:
            raise ToolError(f"{path} is a directory: list it with bash, e.g. `ls {shlex.quote(path)}`")
        return f"Files and directories in {path}, two levels deep:\n{self.list_dir(path)}"

    def _read(self, path: str) -> str:
        """The file's text; FileNotFoundError becomes a ToolError, IsADirectoryError passes through."""
        try:
            content = self.files.read_file(path)
        except FileNotFoundError:
            raise ToolError(f"no file at {path}: check the path, or make it with command=create") from None
        text = content.decode("utf-8", errors="replace") if isinstance(content, bytes) else content
        if "\x00" in text:
            raise ToolError(f"{path} is a binary file: the editor works on text files only")
        return text

    def _read_file(self, path: str) -> str:
        try:
            return self._read(path)
        except IsADirectoryError:
            raise ToolError(f"{path} is a directory: give the path of a file") from None

    def _write(self, path: str, content: str) -> None:
        try:
            self.files.write_file(path, content)
        except (IsADirectoryError, NotADirectoryError, PermissionError) as exc:
            raise ToolError(f"cannot write {path}: {exc}") from None

    def _edited(self, path: str, content: str, first: int, last: int) -> str:
        lines, _ = _split(content)
        start = max(1, first - SNIPPET_CONTEXT)
        end = min(len(lines), max(last, first) + SNIPPET_CONTEXT)
        snippet = _numbered(lines[start - 1 : end], start) if lines else "(the file is now empty)"
        return (
            f"The file {path} has been edited. Here is the edited region with line numbers:\n{snippet}\n"
            "Review it and edit again if it is not right."
        )


def _required(value: T | None, name: str, command: str) -> T:
    if value is None:
        raise ToolError(f"command {command!r} needs {name}")
    return value


def _check_absolute(path: str) -> None:
    if not path.startswith("/"):
        raise ToolError(f"path must be absolute (start with /), got {path!r}: e.g. /repo/{path.lstrip('./')}")


def _split(content: str) -> tuple[list[str], bool]:
    """The lines of ``content`` (split on ``\\n`` only) and whether it ends with a newline; "" has no lines."""
    if not content:
        return [], True
    final_newline = content.endswith("\n")
    return (content[:-1] if final_newline else content).split("\n"), final_newline


def _numbered(lines: list[str], first: int) -> str:
    return "\n".join(f"{number:6}\t{line}" for number, line in enumerate(lines, start=first))


def _occurrences(content: str, text: str) -> list[int]:
    starts, start = [], content.find(text)
    while start != -1:
        starts.append(start)
        start = content.find(text, start + len(text))
    return starts


def _view_bounds(view_range: list[int] | None, count: int, path: str) -> tuple[int, int]:
    """``(start, end)``, 1-based and inclusive, of the lines to show; ToolError for a bad range."""
    if view_range is None:
        return 1, count
    if len(view_range) != 2:
        raise ToolError(f"view_range must be [start, end], got {view_range}")
    start, end = view_range
    if not 1 <= start <= count:
        raise ToolError(
            f"invalid view_range {view_range}: start must be between 1 and {count} ({path} has {count} lines)"
        )
    if end == -1:
        return start, count
    if not start <= end <= count:
        raise ToolError(
            f"invalid view_range {view_range}: end must be between {start} and {count}, or -1 for the end of the file"
        )
    return start, end
