"""Budgets a sandbox keeps over a whole run: processes, memory and disk, watched from the host.

The engine's cgroup limits stop a fork bomb or a memory hog from hurting the host, but not from poisoning the sandbox
itself: a bomb that outlives its call keeps the sandbox at its pids limit, and every later call stalls in
`fork: retry`. The disk has no kernel bound at all on overlay storage over ext4 (this machine's kernel has no quota
formats, and overlayfs writes with the engine's credentials, which quotas exempt). So one `Watchdog` thread per
process looks at every local sandbox's cgroup and writable layer a few times a second:

- processes or memory at 90% of the budget: the processes started since the current chunk began are stopped, then
  killed (SIGSTOP first, over rounds, so a bomb cannot fork faster than it is ended); if the budget is still
  exhausted, every process but the container's init, its keeper and the shell. Processes within budget (a server
  the agent started) keep running.
- disk: the writable layer's size (a walk of the overlay upper directory, done only when the engine's storage file
  system grew since the last walk) past `SandboxConfig.disk`: everything but init, keeper and shell is ended.

Each ending is reported on the result of the call it happened in. The same host-side view lets a timed-out call's
processes be ended without a new exec (which itself hangs at the pids limit).

All of this needs the container's processes and storage on this host (`Guard.attach` returns None otherwise: a
remote engine); sandboxes there keep the engine's limits only. Under gVisor the host's processes of a sandbox are
gVisor's own sentry and gofer, never to be signalled: a `GvisorDiskGuard` watches the writable layer alone (gVisor
runs with its root overlay off, `--overlay2=none`, so writes land in the engine's upper directory) and ends the
writers from inside, through one exec; processes and memory stay with gVisor and the engine's cgroup.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

log = logging.getLogger(__name__)

#: Fraction of a budget at which the watchdog steps in.
EXHAUSTED = 0.9
#: Seconds between two looks at every sandbox.
POLL = 0.1
#: A walk of every writable layer is due when the storage grew this much since the last one...
DISK_WALK_GROWTH = 32 << 20
#: ...or this many seconds passed with any growth.
DISK_WALK_EVERY = 5.0


@dataclass(frozen=True)
class Ending:
    """Processes the watchdog ended, and why; reported on the result of call `seq`."""

    seq: int
    budget: str  # "processes", "memory" or "disk"
    count: int
    detail: str

    def note(self) -> str:
        return f"\n[rock_gym: {self.detail}: {self.count} process(es) ended]\n"


@dataclass(frozen=True)
class HostProcess:
    pid: int  # on the host
    inner: int  # in the container's pid namespace
    session: int  # session id, as a host pid


def read_process(pid: int) -> HostProcess | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(errors="replace")
        status = Path(f"/proc/{pid}/status").read_text(errors="replace")
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    nspid = next((line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:")), [str(pid)])
    return HostProcess(pid, int(nspid[-1]), int(fields[3]))


def stop_then_kill(find: Callable[[], set[int]], rounds: int = 100, settle: float = 2.0) -> int:
    """SIGSTOP what `find()` returns, again and again until it finds no new process, then SIGKILL them all.

    A stopped process cannot fork, so a bomb cannot outrun this. Waits up to `settle` seconds for the killed to be
    gone (their memory and pids freed), so a budget read next is not stale; returns how many were killed.
    """
    stopped: set[int] = set()
    quiet = 0
    for _ in range(rounds):
        fresh = find() - stopped
        quiet = 0 if fresh else quiet + 1
        if quiet == 2:  # twice nothing new: a fork in flight at the first look has landed by the second
            break
        for pid in fresh:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGSTOP)
        stopped |= fresh
    for pid in stopped:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + settle
    while stopped and time.monotonic() < deadline and stopped & find():
        time.sleep(0.01)
    return len(stopped)


def _wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    """Killed processes free their pids only once reaped (by init): poll the budget for a moment."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _cgroup_dirs(pid: int) -> dict[str, Path]:
    """The process's cgroup directories for the pids and memory controllers (v1), or the unified one (v2)."""
    dirs: dict[str, Path] = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for name in ("pids", "memory"):
            if name in controllers.split(","):
                dirs[name] = Path("/sys/fs/cgroup", name, path.lstrip("/"))
        if controllers == "" and not dirs:
            unified = Path("/sys/fs/cgroup", path.lstrip("/"))
            dirs = {"pids": unified, "memory": unified, "v2": unified}
    return dirs


def _read_int(path: Path) -> int:
    text = path.read_text().strip()
    return 1 << 62 if text == "max" else int(text)


def tree_bytes(root: str) -> int:
    """Bytes of disk a directory tree takes (allocated blocks; hard links once; links not followed)."""
    total, seen, stack = 0, set(), [root]
    while stack:
        with contextlib.suppress(OSError), os.scandir(stack.pop()) as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    st = entry.stat(follow_symlinks=False)
                    if st.st_nlink > 1:
                        if st.st_ino in seen:
                            continue
                        seen.add(st.st_ino)
                    total += st.st_blocks * 512
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
    return total


@dataclass(eq=False)  # one per container, hashed by identity (the watchdog holds a weak set)
class Guard:
    """The host-side view of one sandbox: its cgroup, its processes, its writable layer, and its budgets."""

    container_id: str
    init_pid: int
    dirs: dict[str, Path]
    upper: str | None
    pids_limit: int
    memory_limit: int
    disk_limit: int | None
    protected: set[int] = field(default_factory=set)  # inner pids never ended: init, keeper, shells
    seq: int = 0  # the call now running (0: none)
    before: frozenset[int] = frozenset()  # host pids alive when the current chunk began
    endings: list[Ending] = field(default_factory=list)
    disk_used: int = 0
    forks_refused: int = 0  # pids.events' max counter at the last look
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def attach(cls, inspect: dict, pids_limit: int, memory_limit: int, disk_limit: int | None) -> Guard | None:
        """A guard for a started container from its engine inspect, or None when its processes are not here."""
        pid = int((inspect.get("State") or {}).get("Pid") or 0)
        if pid <= 0:
            return None
        try:
            dirs = _cgroup_dirs(pid)
            _read_int(dirs["pids"] / "pids.current")
        except (OSError, KeyError, ValueError):
            return None  # not this host's process, or no cgroup we can read
        upper = ((inspect.get("GraphDriver") or {}).get("Data") or {}).get("UpperDir")
        guard = cls(
            inspect["Id"],
            pid,
            dirs,
            upper if upper and os.path.isdir(upper) else None,
            pids_limit,
            memory_limit,
            disk_limit,
        )
        guard.protected = {p.inner for p in guard.processes()}  # init and its keeper, before any call
        return guard

    # -- reading ---------------------------------------------------------------------------------------------

    def _pids(self) -> list[int]:
        try:
            return [int(pid) for pid in (self.dirs["pids"] / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def processes(self) -> list[HostProcess]:
        return [p for p in map(read_process, self._pids()) if p is not None]

    def pids_current(self) -> int:
        return _read_int(self.dirs["pids"] / "pids.current")

    def _forks_refused(self) -> bool:
        """True when a fork failed at the pids limit since the last look (`pids.events`' max counter grew).

        A bomb can hover below the 90% mark between two polls, its forks refused and retried (bash backs off): a
        refused fork is the budget exhausted all the same.
        """
        try:
            events = (self.dirs["pids"] / "pids.events").read_text().split()
        except (OSError, KeyError):
            return False
        refused = int(events[events.index("max") + 1]) if "max" in events else 0
        grew, self.forks_refused = refused > self.forks_refused, refused
        return grew

    def memory_used(self) -> int:
        """Anonymous memory of the sandbox (what an OOM is about; page cache of written files does not count)."""
        memory = self.dirs["memory"]
        if "v2" in self.dirs:
            usage = _read_int(memory / "memory.current")
        else:
            usage = _read_int(memory / "memory.usage_in_bytes")
        if usage < EXHAUSTED * self.memory_limit:
            return usage  # usage bounds rss: no need to read the stats
        stats = dict(line.split() for line in (memory / "memory.stat").read_text().splitlines())
        return int(stats.get("anon", stats.get("total_rss", usage)))

    # -- calls -----------------------------------------------------------------------------------------------

    def begin(self, seq: int, shell: int | None) -> None:
        with self.lock:
            self.seq, self.before = seq, frozenset(self._pids())
            if shell:
                self.protected.add(shell)

    def next_call(self, seq: int) -> None:
        self.seq = seq

    def end(self) -> list[Ending]:
        """The chunk is over: check once more, hand over what was ended.

        A chunk that exhausted a budget leaves nothing behind: a bomb hovering just under the threshold as it is
        ended would otherwise regrow after the call.
        """
        self.check()
        with self.lock:
            hostile = [e for e in self.endings if e.budget in ("process", "memory") and e.seq]
            if hostile:
                with contextlib.suppress(OSError):
                    rest = stop_then_kill(lambda: self._killable() - self.before)
                    last = hostile[-1]
                    self.endings[self.endings.index(last)] = replace(last, count=last.count + rest)
            self.seq = 0
            endings, self.endings = self.endings, []
        return endings

    # -- enforcing -------------------------------------------------------------------------------------------

    def check(self) -> None:
        """End what exhausts the process or memory budget (the watchdog's poll, and once after each chunk).

        Between chunks too: what a chunk left behind is ended and reported on the next chunk's first result.
        """
        with self.lock:
            try:
                budget = self._exhausted()
                if budget is None:
                    return
                count = stop_then_kill(lambda: self._killable() - self.before)
                if not _wait_until(lambda: self._exhausted() is None, 1.0):  # an older process is the hog
                    count += stop_then_kill(self._killable)
            except OSError:
                return  # the container is going away
            detail = f"the sandbox's {budget} budget was exhausted"
            self.endings.append(Ending(self.seq, budget, count, detail))
            log.info("sandbox %s: %s, %d processes ended", self.container_id[:12], detail, count)

    def enforce_disk(self) -> None:
        if self.disk_limit is None or self.upper is None:
            return
        used = tree_bytes(self.upper)
        with self.lock:
            self.disk_used = used
            if used <= self.disk_limit:
                return
            count = self._end_writers()
            if count:
                detail = (
                    f"the sandbox's disk bound of {self.disk_limit >> 20} MiB was exceeded ({used >> 20} MiB "
                    "written): free space (rm) before writing more"
                )
                self.endings.append(Ending(self.seq, "disk", count, detail))

    def _end_writers(self) -> int:
        """End what writes past the disk bound; how many processes were ended."""
        # The chunk's own writers first; a writer from an earlier call only when the chunk has none.
        return stop_then_kill(lambda: self._killable() - self.before) or stop_then_kill(self._killable)

    def kill_session(self, shell_inner: int, include_shell: bool = False) -> bool:
        """End every process of the shell's session (a timed-out call), from the host; False if not possible."""
        procs = self.processes()
        shell = next((p for p in procs if p.inner == shell_inner), None)
        if shell is None:
            return False

        # A shell that is itself looping (`eval` runs in it) forks on: it is stopped with the rest, never left
        # running while its children are killed.
        stop_then_kill(
            lambda: {
                p.pid for p in self.processes() if p.session == shell.pid and (include_shell or p.pid != shell.pid)
            }
        )
        return True

    def _exhausted(self) -> str | None:
        if self.pids_current() >= EXHAUSTED * self.pids_limit or self._forks_refused():
            return "process"
        if self.memory_used() >= EXHAUSTED * self.memory_limit:
            return "memory"
        return None

    def _killable(self) -> set[int]:
        """Host pids of the processes that may be ended: all but init, keeper and shells."""
        return {p.pid for p in self.processes() if p.inner not in self.protected}


#: Run inside a gVisor sandbox (`sh -c SCRIPT sh PROTECTED...`): SIGSTOP every process but init, the protected
#: and itself until a look finds no new one, SIGKILL them all, print how many. Builtins only: no fork to fail.
END_INSIDE = r"""
keep=" 1 $* $$ " all=" " quiet=0
while [ $quiet -lt 2 ]; do
  fresh=0
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    case "$keep$all" in *" $p "*) continue ;; esac
    kill -STOP "$p" 2>/dev/null && { all="$all$p "; fresh=1; }
  done
  if [ $fresh = 0 ]; then quiet=$((quiet + 1)); else quiet=0; fi
done
n=0
for p in $all; do kill -KILL "$p" 2>/dev/null; n=$((n + 1)); done
echo "ended $n"
"""


@dataclass(eq=False)
class GvisorDiskGuard(Guard):
    """The disk bound of a gVisor sandbox: its writable layer watched from the host, its writers ended from inside.

    `end_inside(protected)` runs `END_INSIDE` in the sandbox (a one-off exec as root) and returns how many processes
    it ended. The process and memory budgets are not watched (gVisor's kernel and the engine's cgroup hold them).
    """

    end_inside: Callable[[list[int]], int] = lambda protected: 0  # noqa: E731

    @classmethod
    def for_sandbox(
        cls, inspect: dict, protected: set[int], disk_limit: int, end_inside: Callable[[list[int]], int]
    ) -> GvisorDiskGuard | None:
        upper = ((inspect.get("GraphDriver") or {}).get("Data") or {}).get("UpperDir")
        if not upper or not os.path.isdir(upper):
            return None
        return cls(inspect["Id"], 0, {}, upper, 0, 0, disk_limit, set(protected), end_inside=end_inside)

    def _pids(self) -> list[int]:
        return []  # the host's pids of this sandbox are gVisor's, never the agent's

    def check(self) -> None:
        return None

    def kill_session(self, shell_inner: int, include_shell: bool = False) -> bool:
        return False  # the session ends a timed-out call through the engine

    def _end_writers(self) -> int:
        try:
            return self.end_inside(sorted(self.protected))
        except Exception as exc:  # noqa: BLE001 - a container going away, an engine refusing: looked at again
            log.info("sandbox %s: could not end its writers: %s", self.container_id[:12], exc)
            return 0


class Watchdog:
    """One daemon thread per process that polls every attached guard; started on first use."""

    _instance: Watchdog | None = None
    _instance_lock = threading.Lock()

    def __init__(self) -> None:
        self.guards: weakref.WeakSet[Guard] = weakref.WeakSet()
        self.lock = threading.Lock()
        self.storage_used: dict[int, tuple[int, float]] = {}  # st_dev -> (bytes used at the last walk, when)
        self.thread = threading.Thread(target=self._loop, name="rock-gym-watchdog", daemon=True)
        self.thread.start()

    @classmethod
    def get(cls) -> Watchdog:
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def add(self, guard: Guard) -> None:
        with self.lock:
            self.guards.add(guard)

    def remove(self, guard: Guard) -> None:
        with self.lock:
            self.guards.discard(guard)

    def _loop(self) -> None:
        while True:
            time.sleep(POLL)
            with self.lock:
                guards = list(self.guards)
            for guard in guards:
                try:
                    guard.check()
                except Exception:  # noqa: BLE001 - a watchdog that dies protects nothing
                    log.exception("watchdog check of %s failed", guard.container_id[:12])
            try:
                self._watch_disks([g for g in guards if g.disk_limit is not None and g.upper])
            except Exception:  # noqa: BLE001
                log.exception("watchdog disk walk failed")

    def _watch_disks(self, guards: list[Guard]) -> None:
        by_device: dict[int, list[Guard]] = {}
        for guard in guards:
            with contextlib.suppress(OSError):
                by_device.setdefault(os.stat(guard.upper).st_dev, []).append(guard)  # type: ignore[arg-type]
        now = time.monotonic()
        for device, members in by_device.items():
            fs = os.statvfs(members[0].upper)  # type: ignore[arg-type]
            used = (fs.f_blocks - fs.f_bfree) * fs.f_frsize
            last, when = self.storage_used.get(device, (-1, 0.0))
            grew = used - last
            if last >= 0 and grew < DISK_WALK_GROWTH and not (grew > 0 and now - when > DISK_WALK_EVERY):
                continue
            for guard in members:
                guard.enforce_disk()
            self.storage_used[device] = (used, now)
