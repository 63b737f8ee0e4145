"""Where sandboxes run: Docker or Podman, both driven through the Docker Engine API (the `docker` SDK).

Podman serves the same API from `podman system service`, so one client class covers both; the differences (init
binary, explicit ulimits) live in `container_spec`.

The disk bound is the engine's `storage_opt size`, which only some storage can enforce: btrfs with quotas (both
engines, through the API) and overlay on xfs mounted with `pquota`. `Engine.disk_driver` finds out once per engine.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import socket
import tarfile
import threading
import time
from collections.abc import Callable
from typing import Any

import docker
import docker.errors
from docker.types import Ulimit
from docker.utils import parse_bytes
from docker.utils.socket import frames_iter

from rock_gym.sandbox.config import DEFAULT_IMAGE, SHELL_CAPABILITIES, SandboxConfig
from rock_gym.sandbox.errors import EngineUnavailableError, ImageNotFoundError, SandboxError

LABEL = "rock_gym"
LABEL_OWNER_PID = "rock_gym.owner_pid"
LABEL_OWNER_HOST = "rock_gym.owner_host"
LABEL_OWNER_START = "rock_gym.owner_start"

#: What both engines answer when asked for a size on storage that cannot enforce it.
NO_DISK_QUOTA = "--storage-opt is supported only for"
_UNKNOWN = "?"

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
        self._disk_driver: str | None = _UNKNOWN
        self._disk_lock = threading.Lock()  # asked once, and warned about once, however many threads start sandboxes

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
            storage_opt=self.storage_opt(config),
        )
        return {
            "image": config.image,
            # PID 1 waits on a stdin that nobody writes: bash only, no `sleep` binary assumed.
            "command": ["bash", "-c", "while read -r _; do :; done"],
            "stdin_open": True,
            "working_dir": config.workdir,
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
                if NO_DISK_QUOTA not in str(exc) or self.disk_driver() is None:
                    raise
                self._no_disk_quota(f"its storage refused the size: {exc.explanation or exc}")
                return self.api.create_container(**self.container_spec(config))["Id"]
        except docker.errors.ImageNotFound as exc:
            raise ImageNotFoundError(missing_image_message(config.image, self.backend)) from exc
        except docker.errors.APIError as exc:
            if "no such image" in str(exc).lower() or "image not known" in str(exc).lower():
                raise ImageNotFoundError(missing_image_message(config.image, self.backend)) from exc
            raise SandboxError(f"{self.backend} could not create a container from {config.image}: {exc}") from exc

    # -- disk bound -------------------------------------------------------------------------------------------

    def disk_driver(self) -> str | None:
        """The storage driver when it can bound a container's disk (btrfs, or overlay on xfs), else None."""
        with self._disk_lock:
            if self._disk_driver == _UNKNOWN:
                self._find_disk_driver()
        return self._disk_driver

    def _find_disk_driver(self) -> None:
        info = self.api.info()
        driver = str(info.get("Driver", ""))
        backing = dict(info.get("DriverStatus") or []).get("Backing Filesystem", "")
        if driver == "btrfs" or (driver.startswith("overlay") and backing == "xfs"):
            self._disk_driver = driver
        else:
            self._no_disk_quota(f"its storage is {driver} on {backing or 'an unknown filesystem'}")

    def disk_bounded(self, config: SandboxConfig) -> bool:
        """Whether sandboxes made from `config` on this engine get their disk bound."""
        return config.disk is not None and self.disk_driver() is not None

    def storage_opt(self, config: SandboxConfig) -> dict[str, str] | None:
        """The `storage_opt` that bounds the bytes a sandbox adds to its filesystem, or None where it cannot."""
        if not self.disk_bounded(config):
            return None
        size = parse_bytes(str(config.disk))
        if self._disk_driver == "btrfs":
            # A btrfs quota counts every byte the container's snapshot refers to, the image's included.
            with contextlib.suppress(docker.errors.APIError):
                size += int(self.api.inspect_image(config.image).get("Size") or 0)
        return {"size": str(size)}

    def _no_disk_quota(self, why: str) -> None:
        self._disk_driver = None
        log.warning(
            "the %s engine at %s cannot bound a sandbox's disk (%s): sandboxes there may fill the host's disk. "
            "Put its storage on btrfs with quotas (`bash scripts/setup` does so on a machine whose engines are not "
            "running yet), or set disk=None to silence this.",
            self.backend,
            self.url,
            why,
        )

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

    def is_running(self, container_id: str) -> bool:
        try:
            return bool(self.api.inspect_container(container_id)["State"]["Running"])
        except docker.errors.NotFound:
            return False

    def labelled_containers(self) -> list[dict[str, Any]]:
        """Every container (running or not) that carries the rock_gym label."""
        return self.api.containers(all=True, filters={"label": LABEL})

    # -- exec -------------------------------------------------------------------------------------------------

    def attach_shell(self, container_id: str) -> tuple[str, socket.socket, Callable[[], None]]:
        """Start `bash` in the container with stdin attached.

        Returns the exec id, the raw stream socket, and a function that releases the stream (socket, file wrapper
        and HTTP response: the socket's file descriptor is freed only once all three are closed).
        """
        exec_id = self.api.exec_create(
            container_id, ["bash", "--noprofile", "--norc"], stdin=True, stdout=True, stderr=True, tty=False
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

    def exec_run(self, container_id: str, argv: list[str], timeout: float = 10.0) -> tuple[int | None, bytes]:
        """Run a one-off command (a new exec) and wait for it, at most `timeout` seconds between two reads.

        An exec into a container at its pids limit (a fork bomb) can hang in the engine without a word: the wait is
        bounded, and TimeoutError raised.
        """
        exec_id = self.api.exec_create(container_id, argv, stdout=True, stderr=True)["Id"]
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

    def put_archive(self, container_id: str, path: str, data: bytes) -> None:
        if not self.api.put_archive(container_id, path, data):
            raise SandboxError(f"the {self.backend} engine refused to extract an archive into {path}")

    def get_archive(self, container_id: str, path: str) -> tarfile.TarFile:
        """The tar archive of a path in the container; FileNotFoundError when it does not exist."""
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
        """Commit a container's filesystem to `repository:tag` and return that reference."""
        self.api.commit(container_id, repository=repository, tag=tag, conf={"Labels": {LABEL: "1"}})
        return f"{repository}:{tag}"

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
