"""A persistent bash session reached over one attached exec stream.

Every call is written to the shell's stdin as `eval $'...' </dev/null`, followed by a `printf` of an end marker that
carries a per-session nonce, the call's sequence number and its exit status. A call therefore costs one pipe round
trip, and a chunk of calls is written at once and read back in order. Shell state (cwd, variables, functions)
persists because every call runs in the same bash process.

A call that outlives its timeout has every process of the shell's session except the shell itself killed (from the
host when the sandbox's processes are visible there, see `limits.Guard`; else through a separate exec); if the shell
is the one busy (a builtin loop), it is killed and the session restarted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
import select
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rock_gym.sandbox.engines import Engine
from rock_gym.sandbox.errors import SandboxError
from rock_gym.sandbox.limits import Ending, Guard

#: Seconds a timed-out call's shell gets to report back after its processes are killed.
KILL_GRACE = 2.0
#: Runs as a one-off exec; kills every process of session $1 except its leader (the shell), a few rounds to catch
#: processes forked meanwhile. Bash only: no procps assumed.
KILL_SESSION_SCRIPT = r"""
root=$1
for round in 1 2 3 4 5 6 7 8 9 10; do
  found=
  for stat in /proc/[0-9]*/stat; do
    read -r line < "$stat" 2>/dev/null || continue
    set -- ${line##*) }
    pid=${stat#/proc/}; pid=${pid%/stat}
    if [ "$4" = "$root" ] && [ "$pid" != "$root" ]; then kill -9 "$pid" 2>/dev/null; found=1; fi
  done
  [ -z "$found" ] && break
done
"""


@dataclass(frozen=True)
class CommandResult:
    """What one call produced.

    Attributes:
        command: the command as given.
        output: stdout and stderr merged, decoded as UTF-8 with replacement of bad bytes; head and tail kept.
        exit_code: the command's exit status; None when it timed out before reporting or the shell died.
        timed_out: the call ran past its timeout and was killed.
        truncated: the output exceeded the sandbox's output_limit; the middle was dropped and marked.
        duration: seconds from the call's start to its end marker.
        session_restarted: the shell died during the call (`exit`, `kill -9 $$`, a stuck builtin) and a new one
            was started; cwd, variables and functions are back to their defaults.
        ended_processes: processes the sandbox's watchdog ended during (or right after) the call because the
            sandbox's process, memory or disk budget was exhausted (see `rock_gym.sandbox.limits`).
        exhausted: which budget that was ("process", "memory" or "disk"), else None.
    """

    command: str
    output: str
    exit_code: int | None
    timed_out: bool = False
    truncated: bool = False
    duration: float = 0.0
    session_restarted: bool = False
    ended_processes: int = 0
    exhausted: str | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


def bash_quote(text: str) -> bytes:
    """`text` as a bash ANSI-C quoted word ($'...'), every byte outside printable ASCII escaped."""
    out = bytearray(b"$'")
    for byte in text.encode("utf-8", errors="surrogateescape"):
        if byte in (0x27, 0x5C):  # ' and \
            out += b"\\" + bytes([byte])
        elif 0x20 <= byte < 0x7F:
            out.append(byte)
        else:
            out += b"\\x%02x" % byte
    out += b"'"
    return bytes(out)


class CappedOutput:
    """Collects a call's output, keeping the first and last `limit // 2` bytes once it exceeds `limit`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.half = limit // 2
        self.total = 0
        self.head = bytearray()
        self.tail = bytearray()
        self.overflow = False

    def add(self, data: bytes | bytearray) -> None:
        self.total += len(data)
        if not self.overflow:
            self.head += data
            if len(self.head) > self.limit:
                self.overflow = True
                self.tail = self.head[-self.half :]
                del self.head[self.half :]
            return
        self.tail += data
        if len(self.tail) > 4 * self.half:
            del self.tail[: -self.half]

    def text(self) -> str:
        if not self.overflow:
            return self.head.decode("utf-8", errors="replace")
        del self.tail[: -self.half]
        omitted = self.total - len(self.head) - len(self.tail)
        note = f"\n[... {omitted} bytes omitted: output exceeded {self.limit} bytes ...]\n".encode()
        return bytes(self.head + note + self.tail).decode("utf-8", errors="replace")


class FrameDecoder:
    """Decodes the engine's multiplexed stream (8-byte header: stream, 0, 0, 0, big-endian size; then payload)."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> bytes:
        self.buffer += data
        payload = bytearray()
        while len(self.buffer) >= 8:
            size = struct.unpack(">I", self.buffer[4:8])[0]
            if len(self.buffer) < 8 + size:
                break
            payload += self.buffer[8 : 8 + size]
            del self.buffer[: 8 + size]
        return bytes(payload)


class ShellDied(Exception):
    """The shell's stream ended (internal to the session)."""


@dataclass
class _Call:
    seq: int
    command: str
    timeout: float
    output: CappedOutput
    started: float = 0.0
    killed: bool = False
    result: CommandResult | None = field(default=None)


class ShellSession:
    """One bash process inside a container, driven over its attached stdin/stdout."""

    def __init__(
        self, engine: Engine, container_id: str, output_limit: int, user: str | None = None, workdir: str = "/"
    ) -> None:
        self.engine = engine
        self.workdir = workdir
        self.container_id = container_id
        self.output_limit = output_limit
        self.user = user
        self.guard: Guard | None = None  # set by the sandbox once the container's processes are found on this host
        self.nonce = secrets.token_hex(8).encode()
        self.seq = 0
        self.pid: int | None = None
        self.exec_id: str | None = None
        self.sock: socket.socket | None = None
        self._release: Callable[[], None] = lambda: None
        self.decoder = FrameDecoder()
        self.pending = bytearray()
        self.outbox = bytearray()

    # -- lifecycle --------------------------------------------------------------------------------------------

    def open(self, timeout: float) -> None:
        """Start the shell and wait until it answers; raise SandboxError if it does not within `timeout`."""
        self.exec_id, self.sock, self._release = self.engine.attach_shell(self.container_id, self.user)
        self.sock.setblocking(False)
        self.decoder = FrameDecoder()
        self.pending = bytearray()
        self.outbox = bytearray()
        # A snapshot carries the shell state it was taken with (see Sandbox.snapshot).
        where = bash_quote(self.workdir).decode()
        bootstrap = f"exec 2>&1; mkdir -p -- {where} 2>/dev/null; cd -- {where}; "
        bootstrap += "[ -r /.rock_gym/session.sh ] && . /.rock_gym/session.sh; echo $$"
        results = self.run_many([bootstrap], [timeout], restart_on_death=False)
        lines = results[0].output.strip().splitlines()
        if results[0].exit_code is None or not lines or not lines[-1].isdigit():
            raise SandboxError(f"the shell did not start: {results[0].output[-500:]!r}")
        self.pid = int(lines[-1])

    def close(self) -> None:
        if self.sock is not None:
            self._release()
            self.sock = None

    def interrupt(self) -> None:
        """End a call in progress from another thread: its reads see the stream end (the socket stays owned here)."""
        sock = self.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def restart(self, timeout: float) -> None:
        self.close()
        self.open(timeout)

    # -- calls ------------------------------------------------------------------------------------------------

    def run_many(
        self, commands: list[str], timeouts: list[float], restart_on_death: bool = True
    ) -> list[CommandResult]:
        """Run commands in order in this shell, written in one go; one result per command."""
        calls = [self._new_call(cmd, t) for cmd, t in zip(commands, timeouts, strict=True)]
        if self.guard is not None:
            self.guard.begin(calls[0].seq, self.pid)
        self._send(calls)
        index = 0
        while index < len(calls):
            try:
                self._await(calls[index])
                index += 1
            except ShellDied:
                if not restart_on_death:
                    calls[index].result = self._died_result(calls[index])
                    for call in calls[index + 1 :]:
                        call.result = CommandResult(call.command, "shell not started", None)
                    break
                calls[index].result = self._died_result(calls[index])
                index += 1
                self.restart(timeout=60.0)
                rest = calls[index:]
                for call in rest:
                    call.seq = self._next_seq()
                self._send(rest)
                if self.guard is not None:
                    self.guard.begin(rest[0].seq if rest else 0, self.pid)
        results = [call.result for call in calls if call.result is not None]
        if self.guard is not None:
            results = with_endings(results, [call.seq for call in calls], self.guard.end())
        return results

    def _next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def _new_call(self, command: str, timeout: float) -> _Call:
        return _Call(self._next_seq(), command, timeout, CappedOutput(self.output_limit))

    def _marker_prefix(self) -> bytes:
        return b"\x1eRG" + self.nonce + b":"

    def _send(self, calls: list[_Call]) -> None:
        for call in calls:
            self.outbox += b"eval " + bash_quote(call.command) + b" </dev/null\n"
            self.outbox += b"printf '\\036RG%s:%d:%d\\036' " + self.nonce + b" " + str(call.seq).encode() + b' "$?"\n'

    def _await(self, call: _Call) -> None:
        """Pump the socket until `call`'s end marker arrives, enforcing its timeout."""
        call.started = time.monotonic()
        if self.guard is not None:
            self.guard.next_call(call.seq)
        deadline = call.started + call.timeout
        while True:
            if self._take_marker(call):
                return
            now = time.monotonic()
            if now >= deadline:
                if call.killed:  # the shell itself is stuck: kill it; the stream ends and the session restarts
                    self._kill_shell()
                    deadline = now + 30.0
                else:
                    call.killed = True
                    self._kill_children()
                    deadline = now + KILL_GRACE
                continue
            self._pump(min(deadline - now, 1.0))

    def _pump(self, wait: float) -> None:
        if self.sock is None:
            raise ShellDied("stream closed")
        writers = [self.sock] if self.outbox else []
        readable, writable, _ = select.select([self.sock], writers, [], max(wait, 0.0))
        if writable:
            sent = self.sock.send(self.outbox[:65536])
            del self.outbox[:sent]
        if readable:
            try:
                data = self.sock.recv(1 << 20)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                raise ShellDied(str(exc)) from exc
            if not data:
                raise ShellDied("stream closed")
            self.pending += self.decoder.feed(data)

    def _take_marker(self, call: _Call) -> bool:
        """Move pending bytes into the call's output; True once its end marker was found and consumed."""
        prefix = self._marker_prefix()
        while True:
            at = self.pending.find(prefix)
            if at < 0:
                keep = len(prefix) + 24
                if len(self.pending) > keep:
                    call.output.add(self.pending[:-keep])
                    del self.pending[:-keep]
                return False
            end = self.pending.find(b"\x1e", at + len(prefix))
            if end < 0:
                call.output.add(self.pending[:at])
                del self.pending[:at]
                return False
            seq_text, _, rc_text = bytes(self.pending[at + len(prefix) : end]).partition(b":")
            call.output.add(self.pending[:at])
            del self.pending[: end + 1]
            if int(seq_text) != call.seq:  # a marker of an earlier call whose result was already given up
                continue
            exit_code = int(rc_text)
            call.result = CommandResult(
                command=call.command,
                output=call.output.text(),
                exit_code=None if call.killed else exit_code,
                timed_out=call.killed,
                truncated=call.output.overflow,
                duration=time.monotonic() - call.started,
            )
            return True

    def _died_result(self, call: _Call) -> CommandResult:
        call.output.add(self.pending)
        self.pending.clear()
        code = None if call.killed or self.exec_id is None else self.engine.exec_exit_code(self.exec_id)
        note = "\n[the shell exited; a new shell session was started: cwd and variables are reset]\n"
        return CommandResult(
            command=call.command,
            output=call.output.text() + note,
            exit_code=code,
            timed_out=call.killed,
            truncated=call.output.overflow,
            duration=time.monotonic() - call.started if call.started else 0.0,
            session_restarted=True,
        )

    # -- killing ----------------------------------------------------------------------------------------------

    def _kill_children(self) -> None:
        if self.pid is None:
            return
        if self.guard is not None and self.guard.kill_session(self.pid):
            return
        # The container may be gone: the next read tells.
        with contextlib.suppress(Exception):
            self.engine.exec_run(self.container_id, ["bash", "-c", KILL_SESSION_SCRIPT, "kill", str(self.pid)])

    def _kill_shell(self) -> None:
        if self.pid is None:
            self.close()
            return
        if self.guard is not None and self.guard.kill_session(self.pid, include_shell=True):
            return
        try:
            # Stopped first: a shell looping on its own would fork new children while they are killed.
            script = 'kill -STOP "$1" 2>/dev/null\n' + KILL_SESSION_SCRIPT + 'kill -9 "$root"\n'
            self.engine.exec_run(self.container_id, ["bash", "-c", script, "kill", str(self.pid)])
        except Exception:  # noqa: BLE001
            self.close()


def with_endings(results: list[CommandResult], seqs: list[int], endings: list[Ending]) -> list[CommandResult]:
    """Results with the watchdog's endings noted on the call each happened in (earlier ones on the first)."""
    if not endings or not results:
        return results
    results = list(results)
    for ending in endings:
        at = seqs.index(ending.seq) if ending.seq in seqs[: len(results)] else 0
        old = results[at]
        results[at] = dataclasses.replace(
            old,
            output=old.output + ending.note(),
            ended_processes=old.ended_processes + ending.count,
            exhausted=old.exhausted or ending.budget,
        )
    return results
