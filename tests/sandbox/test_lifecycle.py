"""No leaks and clear errors: close, exits, signals, gc, startup failures, bad configs, missing engines/images."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from pydantic import ValidationError

from rock_gym.sandbox import (
    EngineUnavailableError,
    ImageNotFoundError,
    Sandbox,
    SandboxClosedError,
    SandboxConfig,
    SandboxStartError,
)
from rock_gym.sandbox.cleanup import collect_garbage
from rock_gym.sandbox.engines import LABEL_OWNER_PID


def labelled_ids(engine, owner_pid: int | None = None) -> set[str]:
    return {
        c["Id"]
        for c in engine.labelled_containers()
        if owner_pid is None or c["Labels"].get(LABEL_OWNER_PID) == str(owner_pid)
    }


def owner_script(backend: str, tail: str) -> str:
    return textwrap.dedent(f"""
        import signal, sys, time
        # Ctrl-C as a terminal gives it, even when this test runs in the background (where SIGINT comes ignored).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from rock_gym.sandbox import Sandbox, SandboxConfig
        sb = Sandbox(SandboxConfig(backend={backend!r})).start()
        print(sb.container_id, flush=True)
    """) + textwrap.dedent(tail)


def start_owner(backend: str, tail: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-c", owner_script(backend, tail)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    container_id = proc.stdout.readline().strip()
    assert container_id, "owner process did not start a sandbox"
    return proc, container_id


@pytest.mark.container
def test_close_is_idempotent_and_removes_the_container(engine, backend):
    sb = Sandbox(SandboxConfig(backend=backend)).start()
    assert sb.is_alive() and sb.container_id in labelled_ids(engine)
    sb.close()
    sb.close()
    assert sb.container_id not in labelled_ids(engine)
    with pytest.raises(SandboxClosedError, match="closed"):
        sb.run("true")


@pytest.mark.container
def test_use_before_start_is_a_clear_error(backend):
    with pytest.raises(SandboxClosedError, match="not started"):
        Sandbox(SandboxConfig(backend=backend)).run("true")


@pytest.mark.container
@pytest.mark.parametrize("how", ["exit", "sigterm", "sigint"])
def test_owner_exit_or_signal_removes_its_containers(engine, backend, how):
    tails = {
        "exit": "sys.exit(0)\n",
        "sigterm": "time.sleep(60)\n",
        "sigint": "time.sleep(60)\n",  # Ctrl-C: KeyboardInterrupt, then atexit
    }
    proc, container_id = start_owner(backend, tails[how])
    if how == "sigterm":
        proc.send_signal(signal.SIGTERM)
    elif how == "sigint":
        proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    assert container_id not in labelled_ids(engine)


@pytest.mark.container
def test_gc_removes_containers_of_a_killed_owner_only(engine, backend):
    proc, orphan = start_owner(backend, "time.sleep(60)\n")
    with Sandbox(SandboxConfig(backend=backend)) as mine:
        proc.kill()
        proc.wait(timeout=30)
        assert orphan in labelled_ids(engine)
        removed = collect_garbage(engine)
        assert orphan in removed
        assert orphan not in labelled_ids(engine)
        assert mine.container_id in labelled_ids(engine), "gc must spare containers of live owners"
        assert mine.run("echo alive").output == "alive\n"


@pytest.mark.container
def test_gc_command_line(engine, backend):
    proc, orphan = start_owner(backend, "time.sleep(60)\n")
    proc.kill()
    proc.wait(timeout=30)
    done = subprocess.run(["rock-gym", "gc", "--backend", backend], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert orphan not in labelled_ids(engine)


@pytest.mark.container
def test_startup_that_never_gets_ready_fails_clearly_and_removes_the_container(engine, backend):
    # An image whose bash never answers: bash is replaced by a script that hangs.
    with Sandbox(SandboxConfig(backend=backend)) as sb:
        sb.run(
            "cp /bin/bash /bin/real-bash && printf '#!/bin/real-bash\\nexec /bin/real-bash -c \"sleep 600\"\\n'"
            " > /bin/bash.new && chmod +x /bin/bash.new"
        )
        image = sb.snapshot(tag=f"hang-{os.getpid()}")
    try:
        with Sandbox(SandboxConfig(backend=backend, image=image)) as sb2:
            sb2.run("mv /bin/bash.new /bin/bash")  # from now on, a new shell never answers
            hanging = sb2.snapshot(tag=f"hang2-{os.getpid()}")
        before = labelled_ids(engine, os.getpid())
        started = time.monotonic()
        with pytest.raises(SandboxStartError, match="did not become ready within 2.0s and was removed"):
            Sandbox(SandboxConfig(backend=backend, image=hanging, startup_timeout=2)).start()
        assert time.monotonic() - started < 30
        assert labelled_ids(engine, os.getpid()) == before
        engine.remove_image(hanging)
    finally:
        engine.remove_image(image)


@pytest.mark.container
def test_missing_image_names_the_fix(backend):
    with pytest.raises(ImageNotFoundError, match=f"pull it .*{backend} pull rock-gym/no-such-image:1"):
        Sandbox(SandboxConfig(backend=backend, image="rock-gym/no-such-image:1")).start()


def test_missing_default_image_message_names_the_build_command():
    from rock_gym.sandbox.engines import missing_image_message

    message = missing_image_message("rock-gym/base:bookworm", "podman")
    assert (
        message == "image rock-gym/base:bookworm not found in the podman engine: run `rock-gym images build "
        "--backend podman`"
    )


def test_unreachable_engine_names_the_fix(tmp_path):
    config = SandboxConfig(backend="docker", engine_url=f"unix://{tmp_path}/nothing.sock")
    with pytest.raises(EngineUnavailableError, match="cannot reach the docker engine .* start it with `dockerd"):
        Sandbox(config).start()


@pytest.mark.parametrize(
    ("field", "value"),
    [("backend", "lxc"), ("memory", "lots"), ("cpus", 0), ("pids_limit", 2), ("workdir", "relative"), ("bogus", 1)],
)
def test_bad_config_is_rejected_with_the_field_named(field, value):
    with pytest.raises(ValidationError, match=field):
        SandboxConfig(**{field: value})


def test_bad_timeout_is_rejected():
    with pytest.raises(ValueError, match="timeouts must be positive"):
        Sandbox(SandboxConfig()).run_many(["true"], timeout=[-1])
