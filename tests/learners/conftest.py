"""Fixtures for the learner tests: docker (skipped when unreachable), a tiny saved model, a few terminal tasks."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def docker(docker_engine) -> str:  # type: ignore[no-untyped-def]
    """Docker only; skipped where it is unreachable (a failure when ROCK_GYM_REQUIRE_ENGINES names docker)."""
    return "docker"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from learners.policies.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def short_tasks():  # type: ignore[no-untyped-def]
    """Terminal tasks the expert solves in three turns (look, act, submit)."""
    from rock_gym.tasks import terminal_tasks

    return [task for task in terminal_tasks(seeds=range(2)) if task.task_id.startswith("find-files")]
