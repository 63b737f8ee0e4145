"""Build a Harbor task's image inside a sandbox: its Dockerfile's steps run with networking off, under the same
hardening as an episode, then the container is committed as the task's image.

Engines' own builders do not all honour a network mode (Podman's compatible API ignores it), so the build never
goes through them; a step that needs the network fails as it would in an episode.
"""

from __future__ import annotations

import shlex
from pathlib import PurePosixPath

from rock_gym.sandbox import Sandbox, SandboxConfig
from rock_gym.sandbox.engines import Engine
from rock_gym.tasks.harbor import copy_destination, dockerfile_instructions
from rock_gym.tasks.model import TaskError, TerminalTask

#: Instructions that describe metadata an episode does not use.
IGNORED = {
    "CMD",
    "ENTRYPOINT",
    "EXPOSE",
    "LABEL",
    "MAINTAINER",
    "VOLUME",
    "HEALTHCHECK",
    "STOPSIGNAL",
    "SHELL",
    "USER",
    "ARG",
    "ONBUILD",
}
RUN_TIMEOUT = 900.0


def build_task_image(task: TerminalTask, base: SandboxConfig) -> str:
    """Make sure `task.image` exists, building it from `task.dockerfile` when missing; returns the image.

    Raises:
        TaskError: an unsupported Dockerfile (multi-stage, ADD of a URL) or a failing RUN step, with its output.
    """
    engine = Engine.connect(base)
    if task.dockerfile is None or engine.has_image(task.image):
        return task.image
    steps = dockerfile_instructions(task.dockerfile)
    sources = [args.split()[0] for name, args in steps if name == "FROM"]
    if len(sources) != 1:
        raise TaskError(f"{task.task_id}: the Dockerfile needs exactly one FROM (multi-stage builds are not supported)")
    workdir = "/"
    with Sandbox(base.model_copy(update={"image": sources[0], "workdir": "/", "env": {}})) as sandbox:
        for name, args in steps:
            if name == "RUN":
                _run(sandbox, task, args)
            elif name in ("COPY", "ADD"):
                _copy(sandbox, task, args, workdir)
            elif name == "WORKDIR":
                workdir = str(PurePosixPath(workdir) / args.strip())
                sandbox.run(f"mkdir -p {shlex.quote(workdir)} && cd {shlex.quote(workdir)}")
            elif name == "ENV":
                for key, value in _env_pairs(args).items():
                    sandbox.run(f"export {key}={shlex.quote(value)}")
            elif name not in IGNORED and name != "FROM":
                raise TaskError(f"{task.task_id}: Dockerfile instruction {name} is not supported")
        repository, _, tag = task.image.rpartition(":")
        return sandbox.snapshot(tag=tag or "latest", repository=repository or task.image)


def _run(sandbox: Sandbox, task: TerminalTask, command: str) -> None:
    if command.startswith("["):  # exec form: RUN ["executable", "arg"]
        import json

        command = shlex.join(json.loads(command))
    result = sandbox.run(command, timeout=RUN_TIMEOUT)
    if not result.ok:
        status = "timed out" if result.timed_out else f"exit {result.exit_code}"
        raise TaskError(
            f"{task.task_id}: building {task.image}: RUN {command} failed ({status}):\n{result.output[-2000:]}"
        )


def _copy(sandbox: Sandbox, task: TerminalTask, args: str, workdir: str) -> None:
    words = [word for word in shlex.split(args) if not word.startswith("--")]
    if any("://" in word for word in words):
        raise TaskError(f"{task.task_id}: ADD from a URL needs the network, which builds do not have")
    copied = False
    for rel, content in task.build_files.items():
        destination = copy_destination(rel, [words], workdir)
        if destination is not None:
            sandbox.write_file(destination, content, mode=0o755 if rel.endswith(".sh") else 0o644)
            copied = True
    if not copied:
        raise TaskError(f"{task.task_id}: COPY {args}: no such file in environment/")


def _env_pairs(args: str) -> dict[str, str]:
    words = shlex.split(args)
    if words and "=" not in words[0]:  # legacy `ENV KEY value with spaces`
        return {words[0]: " ".join(words[1:])}
    return dict(word.split("=", 1) for word in words)
