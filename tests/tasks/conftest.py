"""Fixtures for task tests: one sandbox shared by the container tests of a module (the machine is small)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rock_gym.sandbox import DEFAULT_IMAGE, SandboxConfig


@pytest.fixture(scope="module")
def sandbox() -> Iterator[object]:
    from rock_gym.sandbox import Sandbox

    with Sandbox(SandboxConfig(image=DEFAULT_IMAGE, backend="docker", timeout=60)) as sb:
        yield sb
