"""close() from another thread ends a running command at once (Ctrl-C, vector env shutdown)."""

from __future__ import annotations

import threading
import time

import pytest

from rock_gym.sandbox import SandboxClosedError

pytestmark = pytest.mark.container


def test_close_from_another_thread_ends_a_running_command(sandbox, engine):
    outcome: dict[str, object] = {}

    def long_call() -> None:
        try:
            outcome["result"] = sandbox.run("sleep 60", timeout=120)
        except SandboxClosedError as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=long_call)
    worker.start()
    time.sleep(0.5)
    started = time.monotonic()
    sandbox.close()
    worker.join(timeout=30)
    assert not worker.is_alive() and time.monotonic() - started < 10
    assert "error" in outcome or outcome["result"].exit_code != 0
    assert sandbox.container_id not in {c["Id"] for c in engine.labelled_containers()}
