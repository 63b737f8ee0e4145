"""Shared fixtures: real engines, real containers.

A backend whose engine cannot be reached is skipped, unless ROCK_GYM_REQUIRE_ENGINES names it (CI sets
`docker,podman`): then the tests fail, so a missing engine never passes silently.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

BACKENDS = ("docker", "podman")


def engine_or_skip(backend: str):  # type: ignore[no-untyped-def]
    from rock_gym.sandbox import EngineUnavailableError, SandboxConfig
    from rock_gym.sandbox.engines import Engine

    try:
        engine = Engine.connect(SandboxConfig(backend=backend))  # type: ignore[arg-type]
        engine.api.ping()
        return engine
    except (EngineUnavailableError, Exception) as exc:  # noqa: BLE001
        required = os.environ.get("ROCK_GYM_REQUIRE_ENGINES", "").split(",")
        if backend in required:
            pytest.fail(f"{backend} engine required but unreachable: {exc}")
        pytest.skip(f"{backend} engine unreachable: {exc}")


@pytest.fixture(params=BACKENDS, scope="session")
def backend(request: pytest.FixtureRequest) -> str:
    engine_or_skip(request.param)
    return request.param


@pytest.fixture(scope="session")
def engine(backend: str):  # type: ignore[no-untyped-def]
    return engine_or_skip(backend)


@pytest.fixture(scope="session")
def docker_engine():  # type: ignore[no-untyped-def]
    """The docker engine alone, for tests whose subject does not depend on the engine."""
    return engine_or_skip("docker")


@pytest.fixture
def sandbox(backend: str) -> Iterator[object]:
    from rock_gym.sandbox import Sandbox, SandboxConfig

    with Sandbox(SandboxConfig(backend=backend, timeout=30)) as sb:  # type: ignore[arg-type]
        yield sb


#: Container id -> node id of the test in which its sandbox was first seen still open (after a test's setup, call or
#: teardown), for the leak report: that report comes at the end of the session, so pytest shows it against whichever
#: test ran last.
STARTED_DURING: dict[str, str] = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    yield
    cleanup = sys.modules.get("rock_gym.sandbox.cleanup")  # never imported here: a test without sandboxes stays light
    if cleanup is not None:
        with cleanup._lock:
            open_now = [getattr(sandbox, "container_id", None) for sandbox in cleanup._live.values()]
        for container_id in filter(None, open_now):
            STARTED_DURING.setdefault(container_id, item.nodeid)


@pytest.fixture(scope="session", autouse=True)
def no_leaked_containers() -> Iterator[None]:
    """After the whole suite, no container started by this process may remain, on any engine.

    The report names, for each leaked container, the test in which its sandbox was left open (one a module- or
    session-scoped fixture holds counts only if it outlives its scope), or says that no open Sandbox held it.
    """
    yield
    from rock_gym.sandbox.cleanup import close_all
    from rock_gym.sandbox.config import SandboxConfig
    from rock_gym.sandbox.engines import LABEL_OWNER_PID, Engine

    leaked = []
    for name in BACKENDS:
        key = (name, SandboxConfig(backend=name).resolved_engine_url())  # type: ignore[arg-type]
        engine = Engine._cache.get(key)
        if engine is None:
            continue
        for container in engine.labelled_containers():
            if container["Labels"].get(LABEL_OWNER_PID) == str(os.getpid()):
                test = STARTED_DURING.get(container["Id"])
                where = f"left open in {test}" if test else "held by no open Sandbox: a create, close or removal failed"
                leaked.append((name, container["Id"][:12], container.get("Image"), where))
    close_all()
    assert not leaked, f"containers left behind by the suite: {leaked}"
