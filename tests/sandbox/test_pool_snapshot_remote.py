"""Warm pool, snapshots, and an engine reached over TCP (a second podman service on loopback)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

import pytest

from rock_gym.sandbox import Sandbox, SandboxConfig, SandboxPool
from rock_gym.sandbox.engines import LABEL_OWNER_PID

pytestmark = pytest.mark.container


def test_pool_hands_out_fresh_started_sandboxes_and_refills(engine, backend):
    config = SandboxConfig(backend=backend)
    with SandboxPool(config, size=2) as pool:
        assert pool.wait_full(timeout=60)
        first = pool.acquire(timeout=1)
        second = pool.acquire(timeout=1)
        assert first.container_id != second.container_id
        first.run("echo used > /marker")
        with first, second:
            assert pool.wait_full(timeout=60), "the pool refills in the background"
            third = pool.acquire(timeout=1)
            with third:
                assert third.run("cat /marker").exit_code != 0, "sandboxes are never reused"
        queued = [c["Id"] for c in engine.labelled_containers() if c["Labels"][LABEL_OWNER_PID] == str(os.getpid())]
    remaining = {c["Id"] for c in engine.labelled_containers()}
    assert all(cid not in remaining for cid in queued), "closing the pool removes its ready sandboxes"


def test_pool_rejects_bad_size():
    with pytest.raises(ValueError, match="at least 1"):
        SandboxPool(SandboxConfig(), size=0)


def test_snapshot_restarts_from_the_same_files_and_shell_state(engine, backend):
    with Sandbox(SandboxConfig(backend=backend)) as sb:
        sb.run("mkdir -p /work && cd /work && echo progress > state.txt && export STEP=3")
        image = sb.snapshot(tag=f"test-{os.getpid()}")
    try:
        with Sandbox(SandboxConfig(backend=backend, image=image)) as resumed:
            assert resumed.run("cat state.txt; echo $STEP; pwd").output == "progress\n3\n/work\n"
            assert resumed.run("echo ok").exit_code == 0
    finally:
        engine.remove_image(image)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def podman_over_tcp():
    """A second podman API service on a loopback TCP port: the same path a remote engine takes."""
    if shutil.which("podman") is None:
        pytest.skip("podman not installed")
    port = free_port()
    service = subprocess.Popen(
        ["podman", "system", "service", "--time=0", f"tcp://127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    yield f"tcp://127.0.0.1:{port}"
    service.terminate()
    service.wait(timeout=30)


def test_engine_address_is_configurable_tcp(podman_over_tcp):
    config = SandboxConfig(backend="podman", engine_url=podman_over_tcp)
    with Sandbox(config) as sb:
        sb.write_file("/remote.txt", "far away\n")
        results = sb.run_many(["cat /remote.txt", "cd /tmp", "pwd"])
        assert [r.output for r in results] == ["far away\n", "", "/tmp\n"]
        assert sb.engine is not None and sb.engine.url == podman_over_tcp
