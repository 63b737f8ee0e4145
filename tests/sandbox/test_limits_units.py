"""The watchdog's parts on this host's own processes and files: no container needed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rock_gym.sandbox.limits import Ending, Guard, read_process, stop_then_kill, tree_bytes
from rock_gym.sandbox.session import CommandResult, with_endings

FORKER = """
import os, time
for _ in range(3):
    if os.fork() == 0:
        time.sleep(60)
        os._exit(0)
time.sleep(60)
"""


def children_of(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    found.add(int(entry))
        except (OSError, IndexError, ValueError):  # not a process, or one that just exited
            continue
    return found


def test_stop_then_kill_ends_a_process_tree_and_counts_it():
    parent = subprocess.Popen([sys.executable, "-c", FORKER])
    try:
        deadline = time.monotonic() + 10
        while len(children_of(parent.pid)) < 3:
            assert time.monotonic() < deadline, "the children did not start"
            time.sleep(0.01)
        count = stop_then_kill(lambda: ({parent.pid} | children_of(parent.pid)) if parent.poll() is None else set())
        assert count == 4
        assert parent.wait(timeout=5) == -9
    finally:
        parent.kill()


def test_stop_then_kill_finds_nothing_and_kills_nothing():
    assert stop_then_kill(set) == 0


def session_members(sid: int) -> set[int]:
    """Live processes of a session (a zombie left to a host init that reaps late does not run)."""
    members = set()
    for p in map(read_process, map(int, filter(str.isdigit, os.listdir("/proc")))):
        if p is not None and p.session == sid and "State:\tZ" not in Path(f"/proc/{p.pid}/status").read_text():
            members.add(p.pid)
    return members


@pytest.fixture
def cgroup(tmp_path):
    """A fresh pids cgroup of this host (v1 or v2), removed afterwards; as the watchdog sees a container's."""
    parent = Path("/sys/fs/cgroup/pids")
    if not parent.is_dir():
        parent = Path("/sys/fs/cgroup")
    path = parent / f"rock-gym-test-{os.getpid()}"
    try:
        path.mkdir()
    except OSError as e:
        pytest.skip(f"cannot make a cgroup here ({e}): needs root")
    yield path
    deadline = time.monotonic() + 5
    while (path / "cgroup.procs").read_text().split() and time.monotonic() < deadline:
        time.sleep(0.05)
    path.rmdir()


def test_a_shell_that_loops_on_its_own_is_ended_with_everything_it_forked(cgroup):
    # The loop runs in the session's leader, as a timed-out `eval` does: it forks on while its children are killed.
    shell = subprocess.Popen(
        ["bash", "-c", "read -r _; trap '' TERM INT HUP; while :; do sleep 5; done"],
        stdin=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        (cgroup / "cgroup.procs").write_text(str(shell.pid))
        shell.stdin.write(b"go\n")
        shell.stdin.flush()
        guard = Guard.attach({"Id": "host", "State": {"Pid": shell.pid}}, 1 << 30, 1 << 62, None)
        assert guard is not None
        time.sleep(0.2)
        assert guard.kill_session(shell.pid, include_shell=True)
        assert shell.wait(timeout=5) == -9
        time.sleep(0.3)  # a child forked in a gap would be running by now
        assert session_members(shell.pid) == set()
    finally:
        shell.kill()


def test_tree_bytes_counts_blocks_once_per_hard_link(tmp_path):
    (tmp_path / "sub").mkdir()
    big = tmp_path / "sub" / "big"
    big.write_bytes(os.urandom(1 << 20))
    os.link(big, tmp_path / "again")
    os.symlink("/usr", tmp_path / "link")  # not followed
    total = tree_bytes(str(tmp_path))
    assert (1 << 20) <= total < (1 << 20) + (64 << 10), total


def test_read_process_sees_this_process_and_its_session():
    me = read_process(os.getpid())
    assert me is not None and me.pid == os.getpid() and me.inner == os.getpid() and me.session == os.getsid(0)
    assert read_process(2**22 + 7) is None


def test_endings_are_noted_on_the_call_they_happened_in_and_earlier_ones_on_the_first():
    results = [CommandResult("a", "A\n", 0), CommandResult("b", "B\n", 137)]
    noted = with_endings(
        results,
        [7, 8],
        [Ending(8, "process", 40, "the sandbox's process budget was exhausted"), Ending(0, "disk", 1, "d")],
    )
    assert noted[1].ended_processes == 40 and noted[1].exhausted == "process"
    assert noted[1].output == "B\n\n[rock_gym: the sandbox's process budget was exhausted: 40 process(es) ended]\n"
    assert noted[0].ended_processes == 1 and noted[0].exhausted == "disk"
    assert with_endings(results, [7, 8], []) == results


def test_a_refused_fork_counts_as_the_process_budget_exhausted_once(tmp_path):
    """pids.events' `max` counter grows when the kernel refuses a fork at the limit: that is exhaustion, even with
    the current count under the 90% mark; a counter that stays put is not."""
    (tmp_path / "pids.current").write_text("10\n")
    (tmp_path / "pids.events").write_text("max 0\n")
    guard = Guard("c0ffee", os.getpid(), {"pids": tmp_path, "memory": tmp_path}, None, 64, 1 << 40, None)
    (tmp_path / "memory.usage_in_bytes").write_text("0\n")
    assert guard._exhausted() is None
    (tmp_path / "pids.events").write_text("max 3\n")
    assert guard._exhausted() == "process"
    assert guard._exhausted() is None  # nothing refused since the last look
    (tmp_path / "pids.current").write_text("60\n")
    assert guard._exhausted() == "process"  # 60 of 64: past the mark
