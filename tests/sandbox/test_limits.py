"""Safe defaults: no network, dropped capabilities, no new privileges, memory/pid/cpu limits."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.container


def test_network_is_absent(sandbox):
    # Only loopback exists; nothing can be routed anywhere (no packet leaves: there is no interface to send on).
    links = sandbox.run("cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '")
    assert links.output.split() == ["lo"]
    route = sandbox.run("cat /proc/net/route | tail -n +2 | wc -l")
    assert route.output.strip() == "0"
    probe = sandbox.run("python3 -c \"import socket; socket.create_connection(('10.0.0.1', 80), timeout=2)\"")
    assert probe.exit_code != 0 and "unreachable" in probe.output.lower()


def test_capabilities_dropped_and_no_new_privileges(sandbox):
    status = sandbox.run("grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status").output
    fields = dict(line.split(":\t") for line in status.strip().splitlines())
    assert fields["NoNewPrivs"] == "1"
    effective = int(fields["CapEff"], 16)
    assert effective == int(fields["CapBnd"], 16)
    cap_net_raw, cap_sys_admin, cap_net_admin, cap_mknod, cap_sys_ptrace = 13, 21, 12, 27, 19
    for cap in (cap_net_raw, cap_sys_admin, cap_net_admin, cap_mknod, cap_sys_ptrace):
        assert not effective & (1 << cap), f"capability {cap} should be dropped"
    assert sandbox.run("mount -t tmpfs none /mnt").exit_code != 0
    assert sandbox.run("mknod /tmp/dev c 1 3").exit_code != 0


def test_memory_hog_is_killed(backend):
    from rock_gym.sandbox import Sandbox, SandboxConfig

    with Sandbox(SandboxConfig(backend=backend, memory="128m")) as sb:
        hog = sb.run("python3 -c \"b = bytearray(1024 * 1024 * 1024); print('ALLOC', len(b))\"", timeout=60)
        assert hog.exit_code != 0 and "ALLOC 1073741824" not in hog.output
        assert sb.run("echo survived").output == "survived\n"


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
