"""Task specs: SWE-bench style repository tasks and Harbor style terminal tasks, plus procedural families.

Importing this package loads pydantic only; nothing here starts containers or imports docker.
"""

from rock_gym.tasks.builtin import builtin_swe_tasks
from rock_gym.tasks.family import TaskFamily, Variant
from rock_gym.tasks.harbor import read_task_dir, read_task_tree, write_task_dir
from rock_gym.tasks.kind import TaskKind, Verdict
from rock_gym.tasks.model import (
    SWETask,
    Task,
    TaskError,
    TerminalTask,
    Timeouts,
    ToolCall,
    parse_task,
    parse_tasks,
    read_jsonl,
)
from rock_gym.tasks.sources import load, load_kinds
from rock_gym.tasks.terminal import FAMILIES, get_family, register_family, terminal_tasks

__all__ = [
    "FAMILIES",
    "SWETask",
    "Task",
    "TaskError",
    "TaskFamily",
    "TaskKind",
    "TerminalTask",
    "Timeouts",
    "ToolCall",
    "Variant",
    "Verdict",
    "builtin_swe_tasks",
    "get_family",
    "load",
    "load_kinds",
    "parse_task",
    "parse_tasks",
    "read_jsonl",
    "read_task_dir",
    "read_task_tree",
    "register_family",
    "terminal_tasks",
    "write_task_dir",
]
