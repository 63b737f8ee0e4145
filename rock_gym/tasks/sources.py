"""One entry point for every task source: Harbor directories, JSONL files of tasks or SWE-bench rows, row lists."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, cast

from pydantic import BaseModel

from rock_gym.tasks.harbor import read_task_dir, read_task_tree
from rock_gym.tasks.kind import TaskKind
from rock_gym.tasks.model import SWETask, Task, TaskError, TerminalTask, parse_task, read_jsonl


def load(source: str | Path | Iterable[Task | Mapping[str, Any]]) -> list[Task]:
    """Tasks from a path or from rows.

    Args:
        source: a Harbor task directory, a directory tree of them, a directory holding `tasks.jsonl`, a `.jsonl`
            file (rock_gym tasks or SWE-bench rows), or an iterable of tasks / row dicts (e.g. HF-datasets rows).

    Raises:
        TaskError: the source holds no tasks, or a row is invalid (the row and the field are named).

    Examples:
        >>> load([{"instance_id": "a__b-1", "problem_statement": "boom"}])[0].instance_id
        'a__b-1'
    """
    if isinstance(source, (str, Path)):
        return _load_path(Path(source))
    tasks: list[Task] = []
    for index, row in enumerate(source):
        if isinstance(row, (SWETask, TerminalTask)):
            tasks.append(row)
        elif isinstance(row, BaseModel):
            tasks.append(parse_task(row.model_dump(), index))
        else:
            tasks.append(parse_task(dict(row), index))
    if not tasks:
        raise TaskError("no tasks given")
    return tasks


def load_kinds(source: str | Path | Iterable[TaskKind | Mapping[str, Any]]) -> list[TaskKind]:
    """Tasks for an env: task objects of any `TaskKind` as given (a new kind needs no row format), else `load`.

    Examples:
        >>> [task.task_id for task in load_kinds([{"instance_id": "a__b-1", "problem_statement": "boom"}])]
        ['a__b-1']
    """
    if isinstance(source, (str, Path)):
        return list(load(source))
    given = list(source)
    kinds = [task for task in given if isinstance(task, TaskKind)]
    if kinds and len(kinds) == len(given):
        return kinds
    return list(load(cast(list[Mapping[str, Any]], given)))  # rows (or built-in tasks among them): validated there


def _load_path(path: Path) -> list[Task]:
    if not path.exists():
        raise TaskError(f"{path}: no such file or directory")
    if path.is_file():
        return list(read_jsonl(path))
    if (path / "instruction.md").is_file():
        return [read_task_dir(path)]
    if (path / "tasks.jsonl").is_file():
        return list(read_jsonl(path / "tasks.jsonl"))
    return list(read_task_tree(path))
