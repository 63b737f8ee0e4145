"""No leaks: close live sandboxes at exit, on SIGTERM and Ctrl-C; remove containers of dead owners (`rock-gym gc`)."""

from __future__ import annotations

import atexit
import os
import signal
import socket
import threading
from typing import TYPE_CHECKING, Any

from rock_gym.sandbox.engines import (
    LABEL_OWNER_HOST,
    LABEL_OWNER_PID,
    LABEL_OWNER_START,
    Engine,
    process_start_time,
)

if TYPE_CHECKING:
    from rock_gym.sandbox.sandbox import Sandbox

_live: dict[int, Sandbox] = {}
_lock = threading.Lock()
_installed = False


def track(sandbox: Sandbox) -> None:
    """Remember a started sandbox so that it is closed when the process exits."""
    with _lock:
        _live[id(sandbox)] = sandbox
        _install_handlers()


def untrack(sandbox: Sandbox) -> None:
    with _lock:
        _live.pop(id(sandbox), None)


def close_all() -> None:
    """Close every sandbox this process started and has not closed."""
    with _lock:
        sandboxes = list(_live.values())
    for sandbox in sandboxes:
        sandbox.close()


def _on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds `with` blocks, then atexit closes the rest


def _install_handlers() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    atexit.register(close_all)
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)


def owner_alive(labels: dict[str, str]) -> bool:
    """Whether the process that started a labelled container still runs (on this host)."""
    if labels.get(LABEL_OWNER_HOST) != socket.gethostname():
        return True  # another machine's container: not ours to judge
    try:
        pid = int(labels.get(LABEL_OWNER_PID, ""))
    except ValueError:
        return False
    if pid == os.getpid():
        return True
    start = process_start_time(pid)
    return start is not None and start == labels.get(LABEL_OWNER_START, start)


def collect_garbage(engine: Engine, everything: bool = False) -> list[str]:
    """Remove labelled containers whose owner process is gone (or all labelled ones); return their ids."""
    removed = []
    for container in engine.labelled_containers():
        if everything or not owner_alive(container.get("Labels") or {}):
            engine.remove(container["Id"])
            removed.append(container["Id"])
    return removed
