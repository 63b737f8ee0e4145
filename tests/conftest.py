"""Shared fixtures: real engines, real containers.

A backend whose engine cannot be reached is skipped, unless ROCK_GYM_REQUIRE_ENGINES names it (CI sets
`docker,podman`): then the tests fail, so a missing engine never passes silently.
"""

from __future__ import annotations

import os
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


@pytest.fixture(scope="session", autouse=True)
def no_leaked_containers() -> Iterator[None]:
    """After the whole suite, no container started by this process may remain, on any engine."""
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
                leaked.append((name, container["Id"][:12], container.get("Image")))
    close_all()
    assert not leaked, f"containers left behind by the suite: {leaked}"
