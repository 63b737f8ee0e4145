"""gVisor sandboxes (`runtime="runsc"`) on both engines: the contract's essentials, and attacks contained.

Under gVisor the agent's processes live in gVisor's own kernel, so the host-side watchdog cannot see them: a fork or
memory bomb there may cost the sandbox (the sentry dies with it), which must end clearly, leave the sibling
answering and leave nothing behind. The disk bound holds: the writable layer is watched from the host, and the
writers are ended from inside. (`scripts/test` also runs the contract and red-team suites under runsc.)
"""

from __future__ import annotations

import shutil
import time

import pytest
from redteam import answers_quickly

from rock_gym.sandbox import Sandbox, SandboxClosedError, SandboxConfig, SandboxError
from rock_gym.sandbox.engines import Engine
from rock_gym.sandbox.limits import GvisorDiskGuard

pytestmark = [pytest.mark.container, pytest.mark.usefixtures("no_leak")]


def gvisor(backend: str, **fields: object) -> SandboxConfig:
    if shutil.which("runsc") is None:
        pytest.skip("runsc is not installed (bash scripts/setup installs it)")
    return SandboxConfig(backend=backend, runtime="runsc", timeout=30, **fields)  # type: ignore[arg-type]


def test_a_gvisor_sandbox_runs_calls_keeps_state_and_moves_files(backend):
    with Sandbox(gvisor(backend)) as sb:
        # Its processes are not the host's: only the disk is watched from here.
        assert isinstance(sb.guard, GvisorDiskGuard) and sb.guard.upper is not None
        kernel = sb.run("dmesg 2>/dev/null | head -1; uname -r").output
        assert "gVisor" in kernel or "4.4.0" in kernel, kernel  # gVisor's own kernel, not the host's
        sb.run("cd /tmp && export GREETING=hi")
        assert sb.run("echo $GREETING; pwd").output == "hi\n/tmp\n"
        results = sb.run_many(["echo a", "false", "echo c"])
        assert [r.exit_code for r in results] == [0, 1, 0]
        sb.write_file("/tmp/in/file.txt", "from the host\n")  # /tmp is gVisor's in-memory file system
        assert sb.run("cat /tmp/in/file.txt").output == "from the host\n"
        sb.run("printf 'from inside\\n' > /tmp/out.txt; head -c 3000 /dev/urandom > /root/blob")
        assert sb.read_file("/tmp/out.txt") == "from inside\n"
        assert len(sb.read_file("/root/blob", binary=True)) == 3000
        timed = sb.run("sleep 30", timeout=1)
        assert timed.timed_out and sb.run("echo after").output == "after\n"


def test_a_gvisor_sandbox_has_no_network(backend):
    with Sandbox(gvisor(backend)) as sb:
        probe = "python3 -c \"import socket; socket.create_connection(('10.1.2.3', 80), timeout=2)\""
        result = sb.run(probe)
        assert result.exit_code != 0 and ("unreachable" in result.output.lower() or "no route" in result.output.lower())
        interfaces = sb.run("python3 -c 'import socket; print(sorted(n for _, n in socket.if_nameindex()))'")
        assert interfaces.output.strip() in ("['lo']", "[]"), interfaces
    with pytest.raises(ValueError, match="networking off"):
        SandboxConfig(runtime="runsc", network="bridge")


def test_a_snapshot_of_a_gvisor_sandbox_resumes(backend):
    with Sandbox(gvisor(backend)) as sb:
        sb.run("mkdir -p /work && echo kept > /work/state && cd /work && export MARK=1")
        image = sb.snapshot(tag=f"runsc-{time.monotonic_ns()}")
    try:
        with Sandbox(gvisor(backend, image=image)) as again:
            assert again.run("cat state; echo $MARK; pwd").output == "kept\n1\n/work\n"
    finally:
        Engine.connect(gvisor(backend)).remove_image(image)


@pytest.mark.parametrize(
    "attack",
    ["bash -c ':(){ :|:& };:'; sleep 5", "python3 -c 'b = bytearray(2 << 30)'", "yes flood", "kill -9 -1"],
    ids=["fork-bomb", "memory-bomb", "flood", "kill-all"],
)
def test_attacks_in_gvisor_are_contained_and_end_clearly(backend, sibling, attack):
    with Sandbox(gvisor(backend, pids_limit=128, memory="256m")) as sb:
        try:
            result = sb.run(attack, timeout=5)
            answers_quickly(sibling)
            after = sb.run("echo ok", timeout=20)
            assert "ok" in after.output or result.timed_out or result.exit_code != 0
        except (SandboxClosedError, SandboxError) as exc:  # the sandbox may be lost: it says so
            assert "was lost" in str(exc) or "did not start" in str(exc) or "not running" in str(exc), exc
        answers_quickly(sibling)


def test_a_gvisor_sandbox_keeps_its_disk_bound(backend, sibling):
    with Sandbox(gvisor(backend, disk="200m")) as sb:
        result = sb.run("dd if=/dev/zero of=/fill bs=1M count=2000 2>&1; du -m /fill | cut -f1", timeout=60)
        assert result.exhausted == "disk" and result.ended_processes >= 1, result
        written = int(result.output.split("\n[rock_gym")[0].split()[-1])
        assert 200 < written < 1000, f"{written} MiB written past a 200m bound"
        answers_quickly(sibling)
        sb.run("rm -f /fill")
        again = sb.run("head -c 50M /dev/zero > /again && echo wrote", timeout=30)
        assert again.output == "wrote\n" and again.ended_processes == 0
