"""Red-team fixtures: a sibling sandbox that must keep answering, leak checks, and private engines.

The private engines (a dockerd and a podman API service on their own sockets, with their storage on a loop-mounted
ext4 file system of their own, as `scripts/setup` gives the machine's) are this suite's own: tests may restart or stop
them without touching the machine's engines, which other work may be using.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from redteam import host_processes, our_containers, skip_or_fail

from rock_gym.sandbox import Sandbox, SandboxConfig
from rock_gym.sandbox.engines import Engine, wait_until

PRIVATE_ROOT = Path("/var/lib/rock-gym-test")


@pytest.fixture
def sibling(backend: str) -> Iterator[Sandbox]:
    """A sandbox started before the attack; `answers_quickly` checks it is unaffected."""
    with Sandbox(SandboxConfig(backend=backend, timeout=30)) as sb:  # type: ignore[arg-type]
        yield sb


@pytest.fixture
def no_leak(backend: str) -> Iterator[None]:
    """After the test: none of this process's containers is left on the engine."""
    yield
    engine = Engine.connect(SandboxConfig(backend=backend))  # type: ignore[arg-type]
    assert wait_until(lambda: not our_containers(engine), 10), f"containers left: {our_containers(engine)}"


# -- private engines --------------------------------------------------------------------------------------------


@dataclass
class PrivateEngines:
    """A dockerd and a podman service of this test session, with overlay storage on their own file system."""

    root: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def url(self, backend: str) -> str:
        return f"unix://{self.root}/{backend}.sock"

    def config(self, backend: str, **fields: object) -> SandboxConfig:
        return SandboxConfig(backend=backend, engine_url=self.url(backend), **fields)  # type: ignore[arg-type]

    def engine(self, backend: str) -> Engine:
        return Engine.connect(self.config(backend))

    def start(self, backend: str) -> None:
        storage, logs = self.root / "storage", open(self.root / f"{backend}.log", "ab")  # noqa: SIM115
        sock = self.url(backend)
        if backend == "docker":
            argv = [
                "dockerd",
                f"--data-root={storage}/docker",
                f"--exec-root={self.root}/docker-exec",
                f"--pidfile={self.root}/docker.pid",
                f"--host={sock}",
                # Its own (empty) config file: the machine's /etc/docker/daemon.json names a data-root too, and dockerd
                # refuses a directive given both as a flag and in its config file.
                f"--config-file={self.root}/daemon.json",
                "--storage-driver=overlay2",
                "--bridge=none",
                "--iptables=false",
                "--ip-masq=false",
                "--shutdown-timeout=2",
            ]
            env = os.environ
        else:
            argv = ["podman", "system", "service", "--time=0", sock]
            env = {**os.environ, "CONTAINERS_CONF": str(self.root / "containers.conf")}
            env["CONTAINERS_STORAGE_CONF"] = str(self.root / "storage.conf")
        self.procs[backend] = subprocess.Popen(
            argv, stdout=logs, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True
        )
        if not wait_until(lambda: _pings(sock), 60, interval=0.2):
            log = (self.root / f"{backend}.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the private {backend} engine did not start:\n{log}")

    def stop(self, backend: str) -> None:
        proc = self.procs.pop(backend, None)
        if proc is None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        Engine._cache.pop((backend, self.url(backend)), None)  # its client pool points at a dead server

    def restart(self, backend: str) -> None:
        self.stop(backend)
        self.start(backend)


def _pings(url: str) -> bool:
    import docker

    try:
        return bool(docker.APIClient(base_url=url, timeout=2).ping())
    except Exception:  # noqa: BLE001 - not up yet
        return False


def _private_engines_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "private engines need root (loop mounts, a second dockerd)"
    for tool in ("dockerd", "podman", "mkfs.ext4", "losetup"):
        if shutil.which(tool) is None:
            return f"private engines need `{tool}` (bash scripts/setup installs it)"
    return None


def _write_private_configs(root: Path) -> None:
    storage = root / "storage"
    (root / "daemon.json").write_text("{}\n")
    (root / "storage.conf").write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{storage}/containers"\nrunroot = "{root}/podman-run"\n'
    )
    # File locks and its own tmp dir: a fresh tmp dir makes podman "refresh", which would free the shared-memory
    # locks of the machine's own podman if both used them.
    (root / "containers.conf").write_text(
        '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n'
        f'[engine]\nruntime = "runc"\nlock_type = "file"\ntmp_dir = "{root}/podman-tmp"\nevents_logger = "file"\n'
    )


@pytest.fixture(scope="session")
def private_engines() -> Iterator[PrivateEngines]:
    from rock_gym.sandbox.images import build_base_image

    why = _private_engines_unavailable()
    if why:
        skip_or_fail("docker", why)
    root = PRIVATE_ROOT / str(os.getpid())
    (root / "storage").mkdir(parents=True, exist_ok=True)
    image = root / "storage.ext4"
    engines = PrivateEngines(root)
    try:
        subprocess.run(["truncate", "-s", "16G", str(image)], check=True)
        subprocess.run(
            ["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=1", str(image)], check=True, capture_output=True
        )
        subprocess.run(["mount", "-o", "loop", str(image), str(root / "storage")], check=True)
        _write_private_configs(root)
        for backend in ("docker", "podman"):
            engines.start(backend)
            build_base_image(backend, engines.url(backend))
        yield engines
    finally:
        _tear_down(engines, root)


def _tear_down(engines: PrivateEngines, root: Path) -> None:
    for backend in list(engines.procs):
        with contextlib.suppress(Exception):
            for container in engines.engine(backend).api.containers(all=True):
                engines.engine(backend).remove(container["Id"])
        engines.stop(backend)
    # podman's exec monitors (conmon) linger a few minutes after their container: they are ours, and hold the mount.
    for line in host_processes(str(root)):
        with contextlib.suppress(OSError):
            os.kill(int(line.split(":")[0]), signal.SIGKILL)
    if subprocess.run(["umount", "-R", str(root / "storage")], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-R", "-l", str(root / "storage")], capture_output=True)
    shutil.rmtree(root, ignore_errors=True)
