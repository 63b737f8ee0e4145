"""A tiny chat model, built once per session and loaded through the same path as a user's model."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from learners.policies.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def hf_policy(tiny_model_dir: Path):  # type: ignore[no-untyped-def]
    from learners.policies import make_policy

    return make_policy(f"hf:{tiny_model_dir}")


@pytest.fixture
def conversations() -> list[list[dict[str, str]]]:
    return [
        [{"role": "system", "content": "You are an agent."}, {"role": "user", "content": "List the files."}],
        [{"role": "user", "content": "Fix the failing test in the repository, then submit."}],
        [{"role": "user", "content": "hi"}],
    ]
