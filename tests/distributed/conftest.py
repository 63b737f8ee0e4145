"""A real two-node Ray cluster on this machine: a head raylet and a second one started with `ray start`, each with its
own custom resource (``node_a``, ``node_b``) and CPUs, as two machines of a cluster would be.

Both raylets (and every process Ray starts for them: GCS, agents, workers) share one temporary directory made for the
session; teardown ends exactly the processes whose command line names it, and their children, so a Ray instance
someone else runs on this machine is left alone. The cluster uses token authentication with a token of its own in
that directory (Ray 2.60 turns tokens on for a head when ``~/.ray/auth_token`` exists, and a second node or a driver
without the token is refused), so it depends on nothing in the home directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

NODES = {"node_a": 2, "node_b": 2}
#: Object store per raylet: small, the tiny model's weights are half a megabyte.
OBJECT_STORE_BYTES = 256 * 2**20


@dataclass(frozen=True)
class RayCluster:
    address: str
    temp_dir: str


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: Ray's authentication settings, set for `ray start` and for this process while the cluster runs.
AUTH_VARIABLES = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


def auth_env(temp_dir: str) -> dict[str, str]:
    token = Path(temp_dir) / "auth_token"
    if not token.exists():
        token.write_text(secrets.token_hex(32))
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}


def reload_auth() -> None:
    """Make this process's Ray re-read its authentication settings (its C++ side caches them)."""
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def ray_start(temp_dir: str, *args: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", *AUTH_VARIABLES)} | auth_env(temp_dir)
    # Both raylets on loopback: no test sends traffic to any other address of this machine.
    common = [
        "--disable-usage-stats",
        f"--object-store-memory={OBJECT_STORE_BYTES}",
        "--num-cpus=2",
        "--node-ip-address=127.0.0.1",
    ]
    done = subprocess.run(["ray", "start", *args, *common], capture_output=True, text=True, env=env, timeout=180)
    if done.returncode != 0:
        raise RuntimeError(f"ray start {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")


def processes_under(marker: str) -> list[int]:
    """Processes whose command line contains ``marker``, and all their descendants (not this process)."""
    parents: dict[int, int] = {}
    named: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if marker in command:
            named.add(int(entry.name))
    found = set(named)
    grown = True
    while grown:
        children = {pid for pid, parent in parents.items() if parent in found} - found
        found |= children
        grown = bool(children)
    found.discard(os.getpid())
    return sorted(found)


def stop_processes(pids: list[int], grace_s: float = 3.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace_s
        while sig == signal.SIGTERM and time.monotonic() < deadline and any(_running(p) for p in pids):
            time.sleep(0.1)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    """A head node (``node_a``) and a second node (``node_b``), 2 CPUs each; the test process is connected."""
    ray = pytest.importorskip("ray")
    temp_dir = tempfile.mkdtemp(prefix="rgray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    port = free_port()
    saved = {name: os.environ.get(name) for name in AUTH_VARIABLES}
    try:
        head = ["--head", f"--port={port}", f"--temp-dir={temp_dir}", "--include-dashboard=false"]
        ray_start(temp_dir, *head, f"--resources={json.dumps({'node_a': NODES['node_a']})}")
        ray_start(temp_dir, f"--address=127.0.0.1:{port}", f"--resources={json.dumps({'node_b': NODES['node_b']})}")
        address = f"127.0.0.1:{port}"
        os.environ.pop("RAY_AUTH_TOKEN", None)
        os.environ.update(auth_env(temp_dir))
        reload_auth()
        ray.init(address=address, log_to_driver=False, _node_ip_address="127.0.0.1")
        deadline = time.monotonic() + 60
        while len([n for n in ray.nodes() if n["Alive"]]) < 2:
            if time.monotonic() > deadline:
                raise RuntimeError("the second raylet did not join the cluster within 60 s")
            time.sleep(0.5)
        yield RayCluster(address, temp_dir)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        stop_processes(processes_under(temp_dir))
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        reload_auth()
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from learners.policies.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")
