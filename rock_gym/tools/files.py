"""What the editor needs from a sandbox (:class:`Files`), and an in-process fake of it for fast tests."""

from __future__ import annotations

import posixpath
from typing import Protocol


class Files(Protocol):
    """File access the editor needs; ``rock_gym.sandbox.Sandbox`` provides it.

    ``read_file`` raises FileNotFoundError for a missing path and IsADirectoryError for a directory;
    ``write_file`` creates parent directories.
    """

    def read_file(self, path: str) -> str | bytes:
        """The content of the file at ``path``."""
        ...

    def write_file(self, path: str, content: str) -> None:
        """Write ``content`` to ``path``, replacing what was there."""
        ...


class MemoryFiles:
    """Files kept in a dict, with the read/write contract of a sandbox; for unit tests.

    Directories exist implicitly as the parents of files, as in a tar stream.

    Examples:
        >>> files = MemoryFiles({"/repo/a.py": "x = 1\\n"})
        >>> files.read_file("/repo/a.py")
        'x = 1\\n'
        >>> print(files.list_dir("/repo"))
        /repo
        /repo/a.py
    """

    def __init__(self, files: dict[str, str] | None = None) -> None:
        self.files: dict[str, str] = {}
        for path, content in (files or {}).items():
            self.write_file(path, content)

    def read_file(self, path: str, binary: bool = False) -> str | bytes:
        """The content at ``path``; FileNotFoundError if missing, IsADirectoryError for a directory."""
        target = _normal(path)
        if target in self.files:
            content = self.files[target]
            return content.encode() if binary else content
        if self.is_dir(target):
            raise IsADirectoryError(f"{target} is a directory")
        raise FileNotFoundError(f"no such file: {target}")

    def write_file(self, path: str, content: str | bytes) -> None:
        """Store ``content`` at ``path``; IsADirectoryError for a directory, NotADirectoryError under a file."""
        target = _normal(path)
        if self.is_dir(target):
            raise IsADirectoryError(f"{target} is a directory")
        for parent in _parents(target):
            if parent in self.files:
                raise NotADirectoryError(f"{parent} is a file, not a directory")
        self.files[target] = content.decode() if isinstance(content, bytes) else content

    def is_dir(self, path: str) -> bool:
        """Whether ``path`` is the parent of some file (``/`` always is)."""
        target = _normal(path)
        prefix = target.rstrip("/") + "/"
        return target == "/" or any(name.startswith(prefix) for name in self.files)

    def list_dir(self, path: str) -> str:
        """``path`` and what lies under it, two levels deep, one per line (like ``find PATH -maxdepth 2``)."""
        target = _normal(path)
        if not self.is_dir(target):
            raise NotADirectoryError(f"{target} is not a directory")
        prefix = target.rstrip("/") + "/"
        entries = {target}
        for name in self.files:
            if name.startswith(prefix):
                parts = name[len(prefix) :].split("/")
                entries.update(prefix + "/".join(parts[:depth]) for depth in range(1, min(len(parts), 2) + 1))
        return "\n".join(sorted(entries))


def _normal(path: str) -> str:
    return posixpath.normpath(posixpath.join("/", path)).replace("//", "/")


def _parents(path: str) -> list[str]:
    parents = []
    while path != "/":
        path = posixpath.dirname(path)
        parents.append(path)
    return parents
