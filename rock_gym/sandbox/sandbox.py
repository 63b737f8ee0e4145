"""The Sandbox: one hardened container with a persistent shell, files in and out, snapshots."""

from __future__ import annotations

import io
import logging
import os
import secrets
import tarfile
import threading
import time
from pathlib import Path, PurePosixPath

import docker.errors
from docker.utils import parse_bytes

from rock_gym.sandbox import cleanup
from rock_gym.sandbox.config import SandboxConfig
from rock_gym.sandbox.engines import Engine
from rock_gym.sandbox.errors import SandboxClosedError, SandboxError, SandboxStartError
from rock_gym.sandbox.limits import END_INSIDE, Guard, GvisorDiskGuard, Watchdog
from rock_gym.sandbox.session import CommandResult, ShellSession

#: Creates the agent's user where the image lacks it (no `useradd` assumed: minimal images have none).
ADD_USER = r"""
mkdir -p -- "$2"
id -u "$1" >/dev/null 2>&1 && exit 0
useradd -m -U -s /bin/bash "$1" 2>/dev/null && exit 0
uid=$(( $(cut -d: -f3 /etc/passwd | sort -n | tail -1) + 1 )); [ "$uid" -lt 1000 ] && uid=1000
echo "$1:x:$uid:$uid::/home/$1:/bin/bash" >> /etc/passwd && echo "$1:x:$uid:" >> /etc/group
mkdir -p "/home/$1" && chown "$uid:$uid" "/home/$1"
"""

log = logging.getLogger(__name__)


class Sandbox:
    """A container with a persistent bash session.

    Examples:
        >>> with Sandbox(SandboxConfig(backend="docker")) as sb:  # doctest: +SKIP
        ...     sb.run("cd /tmp && export GREETING=hi")
        ...     sb.run("echo $GREETING; pwd").output
        'hi\\n/tmp\\n'
    """

    def __init__(self, config: SandboxConfig | None = None, **overrides: object) -> None:
        base = config or SandboxConfig()
        self.config = base.model_copy(update=overrides) if overrides else base
        if overrides:
            self.config = SandboxConfig.model_validate(self.config.model_dump())
        self.engine: Engine | None = None
        self.container_id: str | None = None
        self.session: ShellSession | None = None
        self.root_session: ShellSession | None = None  # setup and grading, when the agent's shell is not root
        self.guard: Guard | None = None
        self.startup_seconds: float | None = None
        self._lock = threading.RLock()  # one call (or file transfer) at a time
        self._close_lock = threading.Lock()
        self._closed = False

    # -- lifecycle --------------------------------------------------------------------------------------------

    def start(self) -> Sandbox:
        """Create and start the container and its shell; on any failure the container is removed."""
        if self.container_id is not None:
            return self
        started = time.monotonic()
        self.engine = Engine.connect(self.config)
        self.container_id = self.engine.create(self.config)
        cleanup.track(self)
        try:
            self.engine.api.start(self.container_id)
            if self.config.user:
                code, out = self.engine.exec_run(
                    self.container_id,
                    ["bash", "-c", ADD_USER, "add", self.config.user, self.config.workdir],
                    timeout=self.config.startup_timeout,
                    user="0",
                )
                if code != 0:
                    raise SandboxError(f"could not create user {self.config.user!r}: {out.decode(errors='replace')}")
            self.session = ShellSession(
                self.engine, self.container_id, self.config.output_limit, self.config.user, self.config.workdir
            )
            self.session.open(timeout=self.config.startup_timeout)
            self._guard()
        except BaseException as exc:
            self.close()
            if isinstance(exc, Exception):
                raise SandboxStartError(
                    f"sandbox from {self.config.image} did not become ready within {self.config.startup_timeout}s "
                    f"and was removed: {exc}"
                ) from exc
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def close(self) -> None:
        """Remove the container and everything in it. Idempotent.

        Safe to call from another thread while a command runs (Ctrl-C, a vector env shutting down): the container
        goes first, which ends the command at once; the shell's stream is released once that call has returned.
        """
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        if self.guard is not None:
            Watchdog.get().remove(self.guard)
        if self.engine is not None and self.container_id is not None:
            try:
                self.engine.remove(self.container_id)
            except docker.errors.DockerException as exc:  # an engine that is gone: `rock-gym gc` cleans up later
                log.warning("could not remove container %s (run `rock-gym gc`): %s", self.container_id[:12], exc)
            except BaseException:  # cut off (Ctrl-C, a test's timeout): still tracked, so exit handlers remove it
                with self._close_lock:
                    self._closed = False
                raise
        for session in (self.session, self.root_session):
            if session is not None:
                session.interrupt()  # gVisor keeps an exec's stream open after its container is gone
        with self._lock:
            for session in (self.session, self.root_session):
                if session is not None:
                    session.close()
        cleanup.untrack(self)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def is_alive(self) -> bool:
        """True while the container is running."""
        return not self._closed and self.engine is not None and self.engine.is_running(self._require_started())

    def engine_answers(self, timeout: float = 5.0) -> bool:
        """Whether the sandbox's engine still answers: a sandbox lost while its engine answers was lost by its own
        doing (or its container's), not the engine's."""
        return self.engine is not None and self.engine.answers(timeout)

    # -- commands ---------------------------------------------------------------------------------------------

    def run(self, command: str, timeout: float | None = None, root: bool = False) -> CommandResult:
        """Run one command in the persistent shell (`root`: in the root shell, see `run_many`)."""
        return self.run_many([command], timeout=timeout, root=root)[0]

    def run_many(
        self, commands: list[str], timeout: float | list[float] | None = None, root: bool = False
    ) -> list[CommandResult]:
        """Run a chunk of commands in order, written to the shell in one round trip.

        Args:
            commands: shell commands; each sees the cwd and variables the previous ones left.
            timeout: seconds per command (one value for all, or one per command); default config.timeout.
            root: run them as the sandbox's root (task setup, grading) in a second persistent shell, where the
                agent's shell runs as `config.user`; the same shell as the agent's otherwise.
        """
        if isinstance(timeout, list):
            timeouts = [float(t) for t in timeout]
        else:
            timeouts = [float(timeout or self.config.timeout)] * len(commands)
        if any(t <= 0 for t in timeouts):
            raise ValueError(f"timeouts must be positive, got {timeouts}")
        with self._lock:
            self._require_started()
            try:
                return self._session(root).run_many(list(commands), timeouts)
            except (SandboxError, docker.errors.DockerException, OSError) as exc:
                raise SandboxClosedError(f"sandbox {self._short_id()} was lost: {exc}") from exc

    def as_root(self) -> RootView:
        """This sandbox with its commands run as root: what task setup and grading take (see `run_many`'s `root`)."""
        return RootView(self)

    # -- files ------------------------------------------------------------------------------------------------

    def write_file(self, path: str, content: str | bytes, mode: int = 0o644) -> None:
        """Write a file (parent directories are created)."""
        data = content.encode() if isinstance(content, str) else content
        target = self._absolute(path)
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            info = tarfile.TarInfo(str(target).lstrip("/"))
            info.size, info.mode, info.mtime = len(data), mode, int(time.time())
            tar.addfile(info, io.BytesIO(data))
        self._put(buffer.getvalue())

    def read_file(self, path: str, binary: bool = False) -> str | bytes:
        """Read a file; FileNotFoundError if missing, IsADirectoryError for a directory."""
        target = self._absolute(path)
        with self._lock:
            tar = self._engine().get_archive(self._require_started(), str(target), inside=self._inside)
        member = tar.next()
        if member is None:
            raise FileNotFoundError(f"no such file in the sandbox: {target}")
        if member.isdir():
            raise IsADirectoryError(f"{target} is a directory in the sandbox")
        while member.issym() or member.islnk():  # follow a link through the shell's view of the path
            return self.read_file(str(target.parent / member.linkname), binary=binary)
        extracted = tar.extractfile(member)
        data = extracted.read() if extracted else b""
        return data if binary else data.decode("utf-8", errors="replace")

    def upload(self, local_path: str | os.PathLike[str], remote_dir: str) -> None:
        """Copy a local file or directory tree into `remote_dir` (created if missing), as one tar stream."""
        source = Path(local_path)
        if not source.exists():
            raise FileNotFoundError(f"nothing to upload at {source}")
        target = self._absolute(remote_dir)
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            if source.is_dir():
                for child in sorted(source.rglob("*")):
                    tar.add(child, arcname=str(target / child.relative_to(source)).lstrip("/"), recursive=False)
            else:
                tar.add(source, arcname=str(target / source.name).lstrip("/"))
        self._put(buffer.getvalue())

    def download(self, remote_path: str, local_dir: str | os.PathLike[str]) -> Path:
        """Copy a file or directory out of the sandbox into `local_dir`; returns the local path."""
        target = self._absolute(remote_path)
        with self._lock:
            tar = self._engine().get_archive(self._require_started(), str(target), inside=self._inside)
        Path(local_dir).mkdir(parents=True, exist_ok=True)
        tar.extractall(local_dir, filter="data")
        return Path(local_dir) / target.name

    # -- snapshots --------------------------------------------------------------------------------------------

    def snapshot(self, tag: str | None = None, repository: str = "rock-gym/snapshot") -> str:
        """Commit the container to an image and return its reference; start a new Sandbox from it to resume.

        The shell's cwd and exported variables are saved in the image and restored by the new sandbox's shell;
        running processes are not.
        """
        self.run("mkdir -p /.rock_gym && { export -p; printf 'cd -- %q\\n' \"$PWD\"; } > /.rock_gym/session.sh")
        with self._lock:
            return self._engine().commit(self._require_started(), repository, tag or secrets.token_hex(6))

    # -- internals --------------------------------------------------------------------------------------------

    @property
    def _inside(self) -> bool:
        """Files go through tar in the sandbox: gVisor's view of its files is not the engine's."""
        return self.config.runtime == "runsc"

    def _session(self, root: bool) -> ShellSession:
        assert self.session is not None and self.engine is not None and self.container_id is not None
        if not root or not self.config.user:
            return self.session
        if self.root_session is None:
            session = ShellSession(
                self.engine, self.container_id, self.config.output_limit, user="0", workdir=self.config.workdir
            )
            session.open(timeout=self.config.startup_timeout)
            # The agent owns the work tree now: git refuses, as root, a repository another user owns.
            trust = "export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=safe.directory GIT_CONFIG_VALUE_0='*'"
            session.run_many([trust], [10.0])
            session.guard = self.guard
            self.root_session = session
        return self.root_session

    def _guard(self) -> None:
        """Watch this sandbox's budgets from the host, when its processes are here (see `limits`)."""
        assert self.engine is not None and self.session is not None and self.container_id is not None
        if self.config.runtime == "runc" and not self.engine.userns_checked:
            self.engine.userns_checked = True
            self.engine.check_userns(self.session.run_many(["cat /proc/self/uid_map"], [10.0])[0].output)
        disk = parse_bytes(self.config.disk) if self.config.disk else None
        guard: Guard | None = None
        if self.config.runtime == "runc":
            inspect = self.engine.api.inspect_container(self.container_id)
            guard = Guard.attach(inspect, self.config.pids_limit, parse_bytes(self.config.memory), disk)
        elif disk is not None:  # gVisor's host processes are its sentry and gofer: only the disk is watched
            guard = self._gvisor_disk_guard(disk)
        if guard is None:
            if self.config.runtime == "runsc" and disk is None:
                return
            self.engine.warn_once(
                f"unguarded-{self.config.runtime}",
                "its sandboxes' storage is not on this host (a remote engine): the disk bound is not enforced"
                " and processes a call leaves behind are ended only through the engine",
            )
            return
        if disk is not None and guard.upper is None:
            self.engine.warn_once("no-upper", "its storage has no overlay upper directory here: disks are unbounded")
        guard.protected.add(self.session.pid or 0)
        self.session.guard = self.guard = guard
        Watchdog.get().add(guard)

    def _gvisor_disk_guard(self, disk: int) -> GvisorDiskGuard | None:
        assert self.engine is not None and self.session is not None and self.container_id is not None
        engine, container_id = self.engine, self.container_id
        listing = self.session.run_many(["echo /proc/[0-9]*"], [10.0])[0].output  # init, keeper, this shell
        protected = {int(pid) for pid in listing.replace("/proc/", " ").split() if pid.isdigit()}

        def end_inside(keep: list[int]) -> int:
            code, out = engine.exec_run(container_id, ["sh", "-c", END_INSIDE, "sh", *map(str, keep)], 30.0, "0")
            words = out.decode(errors="replace").split()
            return int(words[-1]) if code == 0 and words and words[-1].isdigit() else 0

        inspect = engine.api.inspect_container(container_id)
        return GvisorDiskGuard.for_sandbox(inspect, protected, disk, end_inside)

    def _put(self, archive: bytes) -> None:
        with self._lock:
            try:
                self._engine().put_archive(self._require_started(), "/", archive, inside=self._inside)
            except docker.errors.APIError as exc:
                raise SandboxError(f"could not write into sandbox {self._short_id()}: {exc}") from exc

    def _absolute(self, path: str) -> PurePosixPath:
        if not path:
            raise ValueError("empty path")
        joined = PurePosixPath(self.config.workdir) / path
        parts: list[str] = []
        for part in joined.parts[1:]:
            if part == "..":
                if parts:
                    parts.pop()
            elif part != ".":
                parts.append(part)
        return PurePosixPath("/", *parts)

    def _engine(self) -> Engine:
        if self.engine is None:
            raise SandboxClosedError("sandbox not started: use `with Sandbox(config) as sb:` or call start()")
        return self.engine

    def _require_started(self) -> str:
        if self._closed:
            raise SandboxClosedError(f"sandbox {self._short_id()} is closed")
        if self.container_id is None:
            raise SandboxClosedError("sandbox not started: use `with Sandbox(config) as sb:` or call start()")
        return self.container_id

    def _short_id(self) -> str:
        return (self.container_id or "unstarted")[:12]

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("running" if self.container_id else "new")
        return f"Sandbox({self.config.image!r}, {self.config.backend}, {self._short_id()}, {state})"


class RootView:
    """A sandbox whose `run`/`run_many` run as root; files go through the engine (as root) either way."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.config = sandbox.config

    def run(self, command: str, timeout: float | None = None) -> CommandResult:
        return self.sandbox.run(command, timeout=timeout, root=True)

    def run_many(self, commands: list[str], timeout: float | list[float] | None = None) -> list[CommandResult]:
        return self.sandbox.run_many(commands, timeout=timeout, root=True)

    def __getattr__(self, name: str) -> object:  # files, snapshots, lifecycle: the sandbox's own
        return getattr(self.sandbox, name)


def _add_parents(tar: tarfile.TarFile, target: PurePosixPath) -> None:
    """Directory entries for the parents of `target`, so that extraction creates them (mode 755)."""
    for parent in reversed(target.parents):
        if str(parent) in ("/", "."):
            continue
        info = tarfile.TarInfo(str(parent).lstrip("/"))
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, int(time.time())
        tar.addfile(info)
