"""Safe defaults: no network, dropped capabilities, no new privileges, memory/pid/cpu limits."""

from __future__ import annotations

import pytest

from rock_gym.sandbox import SandboxClosedError, SandboxConfig

pytestmark = pytest.mark.container

#: Under gVisor (ROCK_GYM_RUNTIME=runsc) the agent's kernel is gVisor's: its errors and its cgroup view differ.
GVISOR = SandboxConfig().runtime == "runsc"


def test_network_is_absent(sandbox):
    # Only loopback exists; nothing can be routed anywhere (no packet leaves: there is no interface to send on).
    links = sandbox.run("cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '")
    assert links.output.split() == ["lo"]
    route = sandbox.run("cat /proc/net/route | tail -n +2 | wc -l")
    assert route.output.strip() == "0"
    probe = sandbox.run("python3 -c \"import socket; socket.create_connection(('10.0.0.1', 80), timeout=2)\"")
    refused = "no route to host" if GVISOR else "network is unreachable"
    assert probe.exit_code != 0 and refused in probe.output.lower()


def test_capabilities_dropped_and_no_new_privileges(sandbox):
    status = sandbox.run("grep -E '^(CapEff|CapBnd)' /proc/self/status").output
    fields = dict(line.split(":\t") for line in status.strip().splitlines())
    no_new_privs = sandbox.run("python3 -c 'import ctypes; print(ctypes.CDLL(None).prctl(39, 0, 0, 0, 0))'")
    assert no_new_privs.output == "1\n"  # PR_GET_NO_NEW_PRIVS (gVisor's /proc/self/status has no such line)
    effective = int(fields["CapEff"], 16)
    assert effective == int(fields["CapBnd"], 16)
    cap_net_raw, cap_sys_admin, cap_net_admin, cap_mknod, cap_sys_ptrace = 13, 21, 12, 27, 19
    for cap in (cap_net_raw, cap_sys_admin, cap_net_admin, cap_mknod, cap_sys_ptrace):
        assert not effective & (1 << cap), f"capability {cap} should be dropped"
    assert sandbox.run("mount -t tmpfs none /mnt").exit_code != 0
    assert sandbox.run("mknod /tmp/dev b 254 0 && head -c 1 /tmp/dev").exit_code != 0  # gVisor: a node, no disk


def test_memory_hog_is_killed(backend):
    from rock_gym.sandbox import Sandbox, SandboxConfig

    with Sandbox(SandboxConfig(backend=backend, memory="128m")) as sb:
        try:
            hog = sb.run("python3 -c \"b = bytearray(1024 * 1024 * 1024); print('ALLOC', len(b))\"", timeout=60)
        except SandboxClosedError as exc:  # gVisor: the cgroup's OOM killer may end its sentry, the whole sandbox
            assert GVISOR and "was lost" in str(exc), exc
            return
        assert hog.exit_code != 0 and "ALLOC 1073741824" not in hog.output
        assert sb.run("echo survived").output == "survived\n"


@pytest.mark.skipif(GVISOR, reason="gVisor's own cgroup view has no pids limit; tests/security/test_runsc.py covers it")
def test_fork_bomb_stays_inside_the_pids_limit(backend):
    from rock_gym.sandbox import Sandbox, SandboxConfig

    with Sandbox(SandboxConfig(backend=backend, pids_limit=64)) as sb:
        sb.run("bomb() { bomb | bomb & }; bomb", timeout=5)
        # While the bomb keeps trying, the shell still answers (builtins only: forks fail at the limit).
        for _ in range(3):
            answer = sb.run(
                "read -r n < /sys/fs/cgroup/pids/pids.current; read -r m < /sys/fs/cgroup/pids/pids.max;"
                ' echo "PIDS $n $m"',
                timeout=10,
            )
            line = next(w for w in answer.output.splitlines() if w.startswith("PIDS "))
            current, limit = line.split()[1:]
            assert limit == "64" and int(current) <= 64


def test_cpu_and_memory_limits_are_applied(engine, sandbox):
    host = engine.api.inspect_container(sandbox.container_id)["HostConfig"]
    assert host["NanoCpus"] == 1_000_000_000
    assert host["Memory"] == 1024**3 and host["MemorySwap"] == 1024**3
    assert host["PidsLimit"] == 256
    assert host["Privileged"] is False
    assert host["NetworkMode"] == "none"
