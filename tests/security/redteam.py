"""Helpers of the red-team suite (imported by its tests and its conftest)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from rock_gym.sandbox import Sandbox, SandboxClosedError, SandboxConfig, SandboxError
from rock_gym.sandbox.engines import LABEL_OWNER_PID, Engine

#: The suite runs on gVisor when ROCK_GYM_RUNTIME=runsc (`scripts/test` has such a pass): the agent's processes then
#: live in gVisor's kernel, not the host's, and a few attacks end differently (each test says how).
GVISOR = SandboxConfig().runtime == "runsc"


def held_or_lost(attack: Callable[[], object], sandbox: Sandbox) -> bool:
    """Under gVisor a fork or memory bomb may take the sandbox's sentry down with it: run `attack`, and return False
    if the sandbox was lost and says so clearly, True if it held and still answers."""
    try:
        attack()
        return sandbox.run("echo held", timeout=20).output.endswith("held\n")
    except (SandboxClosedError, SandboxError) as exc:
        assert any(w in str(exc) for w in ("was lost", "did not start", "not running")), exc
        return False


def required(backend: str) -> bool:
    return backend in os.environ.get("ROCK_GYM_REQUIRE_ENGINES", "").split(",")


def skip_or_fail(backend: str, reason: str) -> None:
    """Skip, unless CI requires this backend (ROCK_GYM_REQUIRE_ENGINES): then the missing piece fails the test."""
    if required(backend):
        pytest.fail(f"{reason} (required: ROCK_GYM_REQUIRE_ENGINES names {backend})")
    pytest.skip(reason)


def our_containers(engine: Engine) -> list[str]:
    """Labelled containers this test process started, running or not."""
    return [c["Id"][:12] for c in engine.labelled_containers() if c["Labels"].get(LABEL_OWNER_PID) == str(os.getpid())]


def host_processes(marker: str) -> list[str]:
    """Processes anywhere on the host (any PID namespace) whose command line holds `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if marker in argv:
                found.append(f"{entry.name}: {argv[:120]}")
    return found


def answers_quickly(sandbox: Sandbox, within: float = 2.0) -> float:
    """Run `echo ok` in the sandbox; assert it answered within `within` seconds, and return the time taken."""
    started = time.perf_counter()
    result = sandbox.run("echo ok", timeout=within + 5)
    took = time.perf_counter() - started
    assert result.output == "ok\n", result
    assert took < within, f"the sibling sandbox took {took:.2f}s to answer `echo ok` during the attack"
    return took
