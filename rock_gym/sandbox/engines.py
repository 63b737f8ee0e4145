"""Where sandboxes run: Docker or Podman, both driven through the Docker Engine API (the `docker` SDK).

Podman serves the same API from `podman system service`, so one client class covers both; the differences (user
namespaces, explicit ulimits) live in `container_spec`.

User namespaces: a sandbox's root must not be the host's root. Docker remaps every container when its daemon runs
with `userns-remap` (`scripts/setup` configures it); Podman gives each container its own range (`UsernsMode
auto`, from the `containers` entry of /etc/subuid). `Engine.check_userns` warns once where neither holds.

The disk bound is not the engines' `storage_opt size` (only btrfs quotas, whose qgroups pile up under churn, or xfs
project quotas, which this kernel lacks, enforce it): `rock_gym.sandbox.limits` watches the writable layer instead.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import socket
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any, BinaryIO

import docker
import docker.errors
from docker.types import Ulimit
from docker.utils.socket import frames_iter

from rock_gym.sandbox.config import DEFAULT_IMAGE, SHELL_CAPABILITIES, SandboxConfig
from rock_gym.sandbox.errors import EngineUnavailableError, ImageNotFoundError, SandboxError

LABEL = "rock_gym"
LABEL_OWNER_PID = "rock_gym.owner_pid"
LABEL_OWNER_HOST = "rock_gym.owner_host"
LABEL_OWNER_START = "rock_gym.owner_start"

#: Podman's per-container user namespace: a free range of this many ids from /etc/subuid's `containers` entry.
PODMAN_USERNS = "auto:size=65536"

log = logging.getLogger(__name__)

_START_HINTS = {
    "docker": "start it with `dockerd &` (or run `bash scripts/setup`)",
    "podman": "start it with `podman system service --time=0 unix:///run/podman/podman.sock &` (or run `bash "
    "scripts/setup`)",
}


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of a process (clock ticks since boot), to tell a live owner from a reused pid."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def owner_labels() -> dict[str, str]:
    """Labels that tie a container to this process, for `rock-gym gc`."""
    pid = os.getpid()
    return {
        LABEL: "1",
        LABEL_OWNER_PID: str(pid),
        LABEL_OWNER_HOST: socket.gethostname(),
        LABEL_OWNER_START: process_start_time(pid) or "",
    }


class Engine:
    """One container engine at one address; shared by every sandbox that uses it (see `Engine.connect`)."""

    _cache: dict[tuple[str, str], Engine] = {}
    _cache_lock = threading.Lock()

    def __init__(self, backend: str, url: str) -> None:
        self.backend = backend
        self.url = url
        try:
            self.client = docker.DockerClient(base_url=url, timeout=120, max_pool_size=256)
        except docker.errors.DockerException as exc:
            raise EngineUnavailableError(
                f"cannot reach the {backend} engine at {url}: {_START_HINTS[backend]}; or set engine_url. ({exc})"
            ) from exc
        self.api = self.client.api
        self._warned: set[str] = set()
        self._warn_lock = threading.Lock()  # each warning once, however many threads start sandboxes
        self.podman_userns: str | None = PODMAN_USERNS if backend == "podman" else None
        self.userns_checked = False

    @classmethod
    def connect(cls, config: SandboxConfig) -> Engine:
        """The shared engine for a config's backend and address."""
        key = (config.backend, config.resolved_engine_url())
        with cls._cache_lock:
            engine = cls._cache.get(key)
            if engine is None:
                engine = cls._cache[key] = cls(*key)
            return engine

    # -- containers -------------------------------------------------------------------------------------------

    def container_spec(self, config: SandboxConfig) -> dict[str, Any]:
        """Keyword arguments of `APIClient.create_container` for a hardened sandbox."""
        host_config = self.api.create_host_config(
            network_mode=config.network,
            privileged=False,
            cap_drop=["ALL"],
            cap_add=list(SHELL_CAPABILITIES),
            security_opt=["no-new-privileges"],
            pids_limit=config.pids_limit,
            mem_limit=config.memory,
            memswap_limit=config.memory,
            nano_cpus=int(config.cpus * 1e9),
            init=True,
            # Podman on hybrid cgroups cannot raise rlimits: set them explicitly, at or below the host's.
            ulimits=[Ulimit(name="nofile", soft=1024, hard=1024), Ulimit(name="nproc", soft=4096, hard=4096)],
            runtime=config.runtime if config.runtime != "runc" else None,
        )
        if self.podman_userns:  # the SDK only lets `host` through its userns_mode argument
            host_config["UsernsMode"] = self.podman_userns
        return {
            "image": config.image,
            # PID 1 waits on a stdin that nobody writes: bash only, no `sleep` binary assumed.
            "command": ["bash", "-c", "while read -r _; do :; done"],
            # No working_dir: Podman creates a missing one owned by the host's root, which a user-namespaced root
            # cannot write; the shell makes it (ShellSession.open).
            "stdin_open": True,
            "environment": config.env,
            "labels": {**config.labels, **owner_labels()},
            "network_disabled": config.network == "none",
            "host_config": host_config,
        }

    def create(self, config: SandboxConfig) -> str:
        """Create (not start) a sandbox container and return its id."""
        try:
            try:
                return self.api.create_container(**self.container_spec(config))["Id"]
            except docker.errors.APIError as exc:
                if not self.podman_userns or "subuid" not in str(exc).lower() + str(exc.explanation).lower():
                    raise
                self.podman_userns = None
                self.warn_once(
                    "userns",
                    f"podman cannot give containers their own user namespace ({exc.explanation})"
                    ": add `containers:200000:268435456` to /etc/subuid and /etc/subgid (`bash "
                    "scripts/setup` does); sandboxes here run as the host's root",
                )
                return self.api.create_container(**self.container_spec(config))["Id"]
        except docker.errors.ImageNotFound as exc:
            raise ImageNotFoundError(missing_image_message(config.image, self.backend)) from exc
        except docker.errors.APIError as exc:
            if "no such image" in str(exc).lower() or "image not known" in str(exc).lower():
                raise ImageNotFoundError(missing_image_message(config.image, self.backend)) from exc
            if config.runtime != "runc" and "runtime" in str(exc).lower():
                raise SandboxError(
                    f"the {self.backend} engine at {self.url} has no runtime {config.runtime!r}: register it (`bash "
                    f"scripts/setup` registers runsc with the engines it starts): {exc.explanation or exc}"
                ) from exc
            raise SandboxError(f"{self.backend} could not create a container from {config.image}: {exc}") from exc

    # -- checks -----------------------------------------------------------------------------------------------

    def warn_once(self, key: str, message: str) -> None:
        with self._warn_lock:
            if key in self._warned:
                return
            self._warned.add(key)
        log.warning("the %s engine at %s: %s", self.backend, self.url, message)

    def check_userns(self, uid_map: str) -> None:
        """Warn once when a sandbox's root is the host's root (its /proc/self/uid_map maps 0 to 0)."""
        first = uid_map.split()[:2]
        if first == ["0", "0"]:
            fix = (
                "run dockerd with `userns-remap` (`bash scripts/setup` configures the daemon it starts)"
                if self.backend == "docker"
                else "give /etc/subuid a `containers` range (`bash scripts/setup` does)"
            )
            self.warn_once("userns", f"sandboxes run as the host's root (no user namespace): {fix}")

    def remove(self, container_id: str, attempts: int = 4) -> None:
        """Kill and remove a container; a container already gone is fine.

        A busy engine (a container still stopping, an exec session closing) may refuse once: retried with backoff.
        """
        for attempt in range(attempts):
            try:
                self.api.remove_container(container_id, force=True, v=True)
                return
            except docker.errors.NotFound:
                return
            except docker.errors.APIError as exc:
                if "removal" in str(exc) and "already in progress" in str(exc):
                    return
                if attempt == attempts - 1:
                    raise
                time.sleep(0.25 * 2**attempt)

    def answers(self, timeout: float = 5.0) -> bool:
        """Whether the engine answers a ping within `timeout` seconds (a stopped or hung engine does not)."""
        try:
            return bool(self.api.get(f"{self.api.base_url}/_ping", timeout=timeout).ok)
        except (OSError, docker.errors.DockerException):  # requests' errors are OSErrors
            return False

    def is_running(self, container_id: str) -> bool:
        try:
            return bool(self.api.inspect_container(container_id)["State"]["Running"])
        except docker.errors.NotFound:
            return False

    def labelled_containers(self) -> list[dict[str, Any]]:
        """Every container (running or not) that carries the rock_gym label."""
        return self.api.containers(all=True, filters={"label": LABEL})

    # -- exec -------------------------------------------------------------------------------------------------

    def attach_shell(self, container_id: str, user: str | None = None) -> tuple[str, socket.socket, Callable[[], None]]:
        """Start `bash` in the container (as `user`, default the image's) with stdin attached.

        Returns the exec id, the raw stream socket, and a function that releases the stream (socket, file wrapper
        and HTTP response: the socket's file descriptor is freed only once all three are closed).
        """
        exec_id = self.api.exec_create(
            container_id,
            ["bash", "--noprofile", "--norc"],
            stdin=True,
            stdout=True,
            stderr=True,
            tty=False,
            user=user or "",
        )["Id"]
        stream = self.api.exec_start(exec_id, socket=True)
        raw = getattr(stream, "_sock", stream)

        def release() -> None:
            for closable in (getattr(stream, "_response", None), stream, raw):
                if closable is not None:
                    with contextlib.suppress(Exception):
                        closable.close()

        return exec_id, raw, release

    def exec_exit_code(self, exec_id: str) -> int | None:
        try:
            return self.api.exec_inspect(exec_id).get("ExitCode")
        except docker.errors.APIError:
            return None

    def exec_run(
        self, container_id: str, argv: list[str], timeout: float = 10.0, user: str = ""
    ) -> tuple[int | None, bytes]:
        """Run a one-off command (a new exec) and wait for it, at most `timeout` seconds between two reads.

        An exec into a container at its pids limit (a fork bomb) can hang in the engine without a word: the wait is
        bounded, and TimeoutError raised.
        """
        exec_id = self.api.exec_create(container_id, argv, stdout=True, stderr=True, user=user)["Id"]
        stream = self.api.exec_start(exec_id, socket=True)
        raw = getattr(stream, "_sock", stream)
        try:
            raw.settimeout(timeout)
            output = b"".join(data for _, data in frames_iter(raw, tty=False))
        except OSError as exc:  # socket.timeout included
            raise TimeoutError(f"a one-off exec in {container_id[:12]} gave nothing for {timeout}s: {exc}") from exc
        finally:
            for closable in (getattr(stream, "_response", None), stream, raw):
                if closable is not None:
                    with contextlib.suppress(Exception):
                        closable.close()
        return self.exec_exit_code(exec_id), output

    # -- files ------------------------------------------------------------------------------------------------

    def put_archive(self, container_id: str, path: str, data: bytes, inside: bool = False) -> None:
        """Extract a tar archive into the container at `path`.

        `inside`: through `tar` run in the container rather than the engine's archive API, for gVisor sandboxes,
        whose files the engine does not see as the sandbox does (its in-memory /tmp; Podman cannot write at all).
        """
        if inside:
            code, output = self._exec_bytes(container_id, ["tar", "-x", "-f", "-", "-C", path], stdin=data)
            if code != 0:
                raise SandboxError(f"tar in the sandbox could not extract into {path}: {output[-500:]!r}")
            return
        if not self.api.put_archive(container_id, path, data):
            raise SandboxError(f"the {self.backend} engine refused to extract an archive into {path}")

    def get_archive(self, container_id: str, path: str, inside: bool = False) -> tarfile.TarFile:
        """The tar archive of a path in the container; FileNotFoundError when it does not exist."""
        if inside:
            parent, _, name = path.rstrip("/").rpartition("/")
            code, data = self._exec_bytes(container_id, ["tar", "-c", "-f", "-", "-C", parent or "/", name or "."])
            if code != 0:
                raise FileNotFoundError(f"no such file or directory in the sandbox: {path}")
            return tarfile.open(fileobj=io.BytesIO(data))
        try:
            chunks, _ = self.api.get_archive(container_id, path)
            data = b"".join(chunks)
        except docker.errors.NotFound as exc:
            raise FileNotFoundError(f"no such file or directory in the sandbox: {path}") from exc
        except docker.errors.APIError as exc:
            if "no such file" in str(exc).lower() or "not found" in str(exc).lower():
                raise FileNotFoundError(f"no such file or directory in the sandbox: {path}") from exc
            raise
        return tarfile.open(fileobj=io.BytesIO(data))

    def _exec_bytes(
        self,
        container_id: str,
        argv: list[str],
        stdin: bytes | None = None,
        timeout: float = 120.0,
        out: BinaryIO | None = None,
    ) -> tuple[int | None, bytes]:
        """Run argv as root with `stdin` fed and closed; (exit code, stdout), stdout kept apart from stderr.

        With `out`, stdout is written there instead (a whole file system does not fit in memory).
        """
        exec_id = self.api.exec_create(container_id, argv, stdin=stdin is not None, stdout=True, stderr=True, user="0")[
            "Id"
        ]
        stream = self.api.exec_start(exec_id, socket=True)
        raw = getattr(stream, "_sock", stream)
        collected = bytearray()
        try:
            raw.settimeout(timeout)
            if stdin is not None:
                raw.sendall(stdin)
                raw.shutdown(socket.SHUT_WR)
            for kind, data in frames_iter(raw, tty=False):
                if kind == 1:
                    if out is not None:
                        out.write(data)
                    else:
                        collected += data
        finally:
            for closable in (getattr(stream, "_response", None), stream, raw):
                if closable is not None:
                    with contextlib.suppress(Exception):
                        closable.close()
        return self.exec_exit_code(exec_id), bytes(collected)

    # -- images -----------------------------------------------------------------------------------------------

    def has_image(self, image: str) -> bool:
        try:
            self.api.inspect_image(image)
            return True
        except docker.errors.ImageNotFound:
            return False
        except docker.errors.APIError as exc:
            if exc.status_code == 404:
                return False
            raise

    def commit(self, container_id: str, repository: str, tag: str) -> str:
        """Commit a container's filesystem to `repository:tag` and return that reference.

        Podman 4's commit of a user-namespaced container writes the host's shifted ids into the image (a new
        sandbox then sees its files owned by nobody, or cannot map them at all): there the file system is read by
        `tar` as the sandbox's root sees it and imported as a new image with the container's config.
        """
        if self.podman_userns is None:
            self.api.commit(container_id, repository=repository, tag=tag, conf={"Labels": {LABEL: "1"}})
            return f"{repository}:{tag}"
        config = self.api.inspect_container(container_id)["Config"]
        changes = [f"ENV {item}" for item in config.get("Env") or []] + [f"LABEL {LABEL}=1"]
        if config.get("Cmd"):
            changes.append(f"CMD {json.dumps(config['Cmd'])}")
        if config.get("WorkingDir"):
            changes.append(f"WORKDIR {config['WorkingDir']}")
        argv = ["tar", "--numeric-owner", "--one-file-system", "-c", "-f", "-", "-C", "/", "."]
        with tempfile.TemporaryFile() as rootfs:
            code, _ = self._exec_bytes(container_id, argv, out=rootfs, timeout=600)
            if code not in (0, 1):  # 1: a file changed as it was read
                raise SandboxError(f"could not read the sandbox's file system to snapshot it (tar exited {code})")
            rootfs.seek(0)
            answer = str(self.api.import_image_from_data(rootfs, repository=repository, tag=tag, changes=changes))
        reference = f"{repository}:{tag}"
        at = answer.find("sha256:")
        if at >= 0:  # podman's import ignores repository and tag (and an earlier image may hold the tag)
            self.api.tag(answer[at : at + 71], repository, tag, force=True)
        return reference

    def remove_image(self, image: str) -> None:
        """Remove an image; one already gone is fine."""
        with contextlib.suppress(docker.errors.NotFound):  # podman answers a plain 404, docker ImageNotFound
            self.api.remove_image(image, force=True)


def missing_image_message(image: str, backend: str) -> str:
    if image == DEFAULT_IMAGE:
        return f"image {image} not found in the {backend} engine: run `rock-gym images build --backend {backend}`"
    return (
        f"image {image} not found in the {backend} engine: pull it (`{backend} pull {image}`) on a machine with "
        "registry access, or build it, then retry"
    )


def wait_until(predicate: Any, timeout: float, interval: float = 0.05) -> bool:
    """Poll `predicate` until it is true or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
