"""Harbor (terminal-bench) task directories, read into and written from TerminalTask.

A task directory holds::

    instruction.md          the instruction
    task.toml               [task] name, [metadata], [agent]/[verifier] timeout_sec, [environment] docker_image
    environment/Dockerfile  FROM image, WORKDIR, ENV and COPY lines; other files in environment/ are copied in
    tests/test.sh           the checker (+ other files in tests/), run as /tests/test.sh
    solution/solve.sh       optional reference solution
    solution/expert_turns.json  optional reference tool-call turns (a rock_gym addition)
"""

from __future__ import annotations

import json
import shlex
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import ValidationError

from rock_gym.tasks.model import TaskError, TerminalTask, Timeouts, ToolCall

#: Dockerfile instructions that only describe a plain image; anything else means the image must be built.
PLAIN_INSTRUCTIONS = {"FROM", "WORKDIR", "ENV", "COPY"}
EXPERT_TURNS_FILE = "solution/expert_turns.json"


def read_task_dir(path: str | Path) -> TerminalTask:
    """Read one Harbor task directory.

    Raises:
        TaskError: naming the directory and what is missing or wrong.
    """
    root = Path(path)
    if not (root / "instruction.md").is_file():
        raise TaskError(f"{root}: not a Harbor task directory (no instruction.md)")
    config = _read_toml(root / "task.toml")
    fields: dict[str, Any] = {
        "task_id": config.get("task", {}).get("name") or root.name,
        "instruction": (root / "instruction.md").read_text(),
        "metadata": config.get("metadata", {}),
        "timeouts": _timeouts(config),
        "tests": {f"tests/{rel}": text for rel, text in _read_tree(root / "tests").items()},
        "expert_turns": _read_expert_turns(root),
    }
    if (root / "solution" / "solve.sh").is_file():
        fields["solution"] = (root / "solution" / "solve.sh").read_text()
    fields.update(_environment(root / "environment", config.get("environment", {}).get("docker_image")))
    try:
        return TerminalTask(**fields)
    except ValidationError as exc:
        raise TaskError(f"{root}: invalid task: {exc}") from exc


def read_task_tree(path: str | Path) -> list[TerminalTask]:
    """Read every Harbor task directory under `path` (any depth), sorted by path."""
    root = Path(path)
    dirs = sorted(marker.parent for marker in root.rglob("instruction.md"))
    if not dirs:
        raise TaskError(f"{root}: no Harbor task directories (none holds an instruction.md)")
    return [read_task_dir(task_dir) for task_dir in dirs]


def write_task_dir(task: TerminalTask, path: str | Path) -> Path:
    """Write `task` as a Harbor task directory at `path` (created); `read_task_dir` gives the task back."""
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    (root / "instruction.md").write_text(task.instruction)
    (root / "task.toml").write_text(_task_toml(task))
    if task.dockerfile is not None:
        _write_tree(root / "environment", {**task.build_files, "Dockerfile": task.dockerfile})
    else:
        context = {_context_path(dest): text for dest, text in task.files.items()}
        _write_tree(root / "environment", {**context, "Dockerfile": _plain_dockerfile(task)})
    _write_tree(root, task.tests)
    if task.solution is not None:
        _write_tree(root, {"solution/solve.sh": task.solution})
    if task.expert_turns is not None:
        turns = [[call.model_dump() for call in turn] for turn in task.expert_turns]
        _write_tree(root, {EXPERT_TURNS_FILE: json.dumps(turns, indent=2) + "\n"})
    return root


# -- reading ----------------------------------------------------------------------------------------------------


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise TaskError(f"{path}: not valid TOML: {exc}") from exc


def _timeouts(config: dict[str, Any]) -> Timeouts:
    values = {
        name: config[name]["timeout_sec"] for name in ("agent", "verifier") if "timeout_sec" in config.get(name, {})
    }
    return Timeouts(**values)


def _read_tree(root: Path) -> dict[str, str]:
    if not root.is_dir():
        return {}
    files = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        try:
            files[path.relative_to(root).as_posix()] = path.read_text()
        except UnicodeDecodeError as exc:
            raise TaskError(f"{path}: binary files are not supported in task directories") from exc
    return files


def _read_expert_turns(root: Path) -> list[list[ToolCall]] | None:
    path = root / EXPERT_TURNS_FILE
    if not path.is_file():
        return None
    try:
        return [[ToolCall(**call) for call in turn] for turn in json.loads(path.read_text())]
    except (json.JSONDecodeError, TypeError, ValidationError) as exc:
        raise TaskError(f"{path}: expected a list of turns, each a list of {{name, arguments}}: {exc}") from exc


def _environment(env_dir: Path, toml_image: str | None) -> dict[str, Any]:
    """Image, workdir, env and files from environment/; a Dockerfile beyond the plain subset is kept to build."""
    context = _read_tree(env_dir)
    dockerfile = context.pop("Dockerfile", None)
    if dockerfile is None:
        if not toml_image:
            raise TaskError(f"{env_dir.parent}: no image: add environment/Dockerfile or [environment] docker_image")
        return {"image": toml_image, "files": {_dest_in("/", rel): text for rel, text in context.items()}}
    instructions = dockerfile_instructions(dockerfile)
    if any(name not in PLAIN_INSTRUCTIONS for name, _ in instructions):
        tag = toml_image or f"rock-gym/task-{env_dir.parent.name.lower()}:latest"
        workdir = "/"
        for name, args in instructions:  # the shell starts where the built image's WORKDIR leaves it
            if name == "WORKDIR":
                workdir = str(PurePosixPath(workdir) / args.strip())
        return {"image": tag, "workdir": workdir, "dockerfile": dockerfile, "build_files": context}
    return _plain_environment(instructions, context, toml_image, env_dir)


def _plain_environment(
    instructions: list[tuple[str, str]], context: dict[str, str], toml_image: str | None, env_dir: Path
) -> dict[str, Any]:
    image, workdir, env, copies = toml_image, "/", {}, []
    for name, args in instructions:
        if name == "FROM":
            image = toml_image or args.split()[0]
        elif name == "WORKDIR":
            workdir = str(PurePosixPath(workdir) / args.strip())
        elif name == "ENV":
            env.update(_env_pairs(args))
        else:
            copies.append([word for word in shlex.split(args) if not word.startswith("--")])
    if not image:
        raise TaskError(f"{env_dir / 'Dockerfile'}: no FROM line and no [environment] docker_image in task.toml")
    files = {_copy_dest(rel, copies, workdir): text for rel, text in context.items()}
    return {"image": image, "workdir": workdir, "env": env, "files": files}


def dockerfile_instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, comments dropped and continuation lines joined."""
    joined = dockerfile.replace("\\\n", " ")
    pairs = []
    for line in joined.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            name, _, args = stripped.partition(" ")
            pairs.append((name.upper(), args.strip()))
    return pairs


def _env_pairs(args: str) -> dict[str, str]:
    words = shlex.split(args)
    if words and "=" not in words[0]:  # legacy `ENV KEY value with spaces`
        return {words[0]: " ".join(words[1:])}
    return dict(word.split("=", 1) for word in words)


def _copy_dest(rel: str, copies: list[list[str]], workdir: str) -> str:
    """Where a build-context file lands: through the COPY that names it, else under workdir."""
    return copy_destination(rel, copies, workdir) or _dest_in(workdir, rel)


def copy_destination(rel: str, copies: list[list[str]], workdir: str) -> str | None:
    """Where the COPY lines `copies` (their words) put the build-context file `rel`; None when none names it."""
    for words in copies:
        *sources, dest = words
        for source in sources:
            source = source.strip("/") if source not in (".", "./") else ""
            if rel == source:
                return _dest_in(workdir, dest + PurePosixPath(rel).name if dest.endswith("/") else dest)
            if source == "" or rel.startswith(source + "/"):
                return _dest_in(workdir, str(PurePosixPath(dest) / rel[len(source) :].lstrip("/")))
    return None


def _dest_in(workdir: str, path: str) -> str:
    return str(PurePosixPath(workdir) / path)


# -- writing ----------------------------------------------------------------------------------------------------


def _context_path(dest: str) -> str:
    """The build-context path of a file placed at `dest`: its absolute path without the leading slash."""
    return dest.lstrip("/") if dest.startswith("/") else f"_workdir/{dest}"


def _plain_dockerfile(task: TerminalTask) -> str:
    lines = [f"FROM {task.image}", f"WORKDIR {task.workdir}"]
    lines += [f"ENV {key}={shlex.quote(value)}" for key, value in task.env.items()]
    for dest in task.files:
        target = dest if dest.startswith("/") else str(PurePosixPath(task.workdir) / dest)
        lines.append(f"COPY {shlex.quote(_context_path(dest))} {shlex.quote(target)}")
    return "\n".join(lines) + "\n"


def _task_toml(task: TerminalTask) -> str:
    tables = {
        "task": {"name": task.task_id},
        "metadata": task.metadata,
        "verifier": {"timeout_sec": task.timeouts.verifier},
        "agent": {"timeout_sec": task.timeouts.agent},
        "environment": {"docker_image": task.image},
    }
    out = ['version = "1.0"']
    for name, table in tables.items():
        out.append(f"\n[{name}]")
        out += [f"{_toml_key(key)} = {_toml_value(value)}" for key, value in table.items()]
    return "\n".join(out) + "\n"


def _toml_key(key: str) -> str:
    bare = key.replace("_", "").replace("-", "").isalnum() and key.isascii()
    return key if bare else json.dumps(key)


def _toml_value(value: Any) -> str:
    # JSON string escapes are valid TOML basic-string escapes.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TaskError(f"cannot write {value!r} ({type(value).__name__}) to task.toml")


def _write_tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
