"""A sandbox survives what its calls leave behind, its root is not the host's, and its agent user stays unprivileged.

Both engines; each test checks that nothing is left (the `no_leak` fixture).
"""

from __future__ import annotations

import os
import time

import pytest
from redteam import answers_quickly

from rock_gym.sandbox import Sandbox, SandboxConfig

pytestmark = [pytest.mark.container, pytest.mark.usefixtures("no_leak")]

BOMB = "bash -c ':(){ :|:& };:'; sleep 5"


def config(backend: str, **fields: object) -> SandboxConfig:
    return SandboxConfig(backend=backend, timeout=30, **fields)  # type: ignore[arg-type]


def answers_within(sandbox: Sandbox, seconds: float) -> None:
    """A plain call (it forks: `ls`, a pipe) gives the right answer within `seconds`.

    Only its last line counts (before the watchdog's note, where it ended what a bomb left): a bomb's complaints,
    written before it was ended, share the shell's output.
    """
    started = time.perf_counter()
    result = sandbox.run("ls / | grep -c -x -e tmp -e etc", timeout=30)
    took = time.perf_counter() - started
    assert result.output.split("\n[rock_gym:")[0].splitlines()[-1:] == ["2"], result
    assert result.exit_code == 0, result
    assert took < seconds, f"a plain call took {took:.2f}s after the attack"


def test_hostile_calls_in_one_sandbox_each_leave_it_working(backend, sibling):
    with Sandbox(config(backend, pids_limit=128, memory="256m", disk="200m")) as sb:
        sb.run("sleep 600 >/dev/null 2>&1 & echo $! > /tmp/server.pid")  # a server within budget: it must survive

        bomb = sb.run(BOMB)
        assert bomb.exhausted == "process" and bomb.ended_processes > 10, bomb
        assert "process budget was exhausted" in bomb.output
        answers_within(sb, 2.0)
        assert sb.run("echo ok").output == "ok\n"
        again = sb.run("echo ok; ls / >/dev/null; echo fine")
        assert again.output == "ok\nfine\n" and "fork: retry" not in again.output, again

        memory = sb.run("python3 -c 'b = bytearray(1 << 30)'")
        assert memory.exit_code == 137, memory  # the cgroup's OOM killer or the watchdog: either way it is gone
        answers_within(sb, 2.0)

        fill = sb.run("dd if=/dev/zero of=/fill bs=1M count=2000 2>/dev/null; echo done")
        assert fill.exhausted == "disk", fill
        sb.run("rm -f /fill")
        answers_within(sb, 2.0)

        sb.run("for i in 1 2 3; do (while :; do :; done) & done")
        answers_within(sb, 2.0)
        answers_quickly(sibling)

        server = sb.run("kill -0 $(cat /tmp/server.pid) && echo alive")
        assert server.output == "alive\n", "a background process within budget was ended"


def test_a_bomb_left_behind_between_calls_is_ended(backend):
    with Sandbox(config(backend, pids_limit=64)) as sb:
        sb.run("bomb() { bomb | bomb & }; bomb")  # returns at once: the bomb grows after the call
        time.sleep(1.0)
        answers_within(sb, 2.0)
        count = sb.run("ls /proc | grep -c '^[0-9]'")
        assert int(count.output.split()[-1]) < 20, count.output


def test_a_timed_out_call_at_the_pids_limit_ends_quickly(backend):
    with Sandbox(config(backend, pids_limit=64)) as sb:
        started = time.perf_counter()
        result = sb.run("bomb() { bomb | bomb & }; bomb; sleep 60", timeout=2)
        assert result.exit_code is None or result.exhausted == "process", result
        assert time.perf_counter() - started < 10
        answers_within(sb, 2.0)


def test_the_sandbox_root_is_an_unprivileged_host_uid(backend):
    with Sandbox(config(backend)) as sb:
        uid_map = sb.run("cat /proc/self/uid_map").output.split()
        assert uid_map[0] == "0" and uid_map[1] != "0", f"root is mapped to host uid {uid_map[1]}"
        sb.run("touch /made-by-root && id -u")
        assert sb.guard is not None and sb.guard.upper is not None
        owner = os.stat(os.path.join(sb.guard.upper, "made-by-root")).st_uid
        assert owner != 0 and owner == int(uid_map[1]), f"a file the sandbox's root made is owned by host uid {owner}"


ESCALATIONS = {
    "sudo": "sudo -n id -u",
    "su": "su -c 'id -u' root </dev/null",
    "setuid-copy": "/tmp/rootbash -p -c 'id -u'",
    "write-passwd": "echo 'agent::0:0::/root:/bin/bash' >> /etc/passwd && echo wrote",
    "setuid-own": "cp /bin/bash /tmp/mine && chmod u+s /tmp/mine && /tmp/mine -p -c 'id -u'",
}


@pytest.mark.parametrize("attempt", sorted(ESCALATIONS))
def test_the_agent_user_gains_nothing(backend, attempt):
    with Sandbox(config(backend, user="agent")) as sb:
        assert sb.run("id -un").output == "agent\n"
        # Setup as root still works beside the agent's shell: a setuid-root shell the agent could try.
        made = sb.run("cp /bin/bash /tmp/rootbash && chmod 4755 /tmp/rootbash && id -u", root=True)
        assert made.output == "0\n", made
        result = sb.run(ESCALATIONS[attempt], timeout=20)
        assert "wrote" not in result.output and not result.output.strip().endswith("\n0"), result
        assert result.output.strip().splitlines()[-1:] != ["0"], result
        assert sb.run("id -u").output != "0\n"
