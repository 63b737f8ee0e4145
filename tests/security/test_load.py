"""A short run of benchmarks/sandbox_load.py: 8 sandboxes for 20 s, a quarter of them hostile."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from sandbox_load import HOSTILE_CHUNKS, run_load  # noqa: E402

pytestmark = [pytest.mark.container, pytest.mark.slow]


def test_normal_chunks_survive_hostile_neighbours(backend):
    figures = run_load(backend, sandboxes=8, seconds=20, hostile_share=0.25)
    assert figures["worker_errors"] == []
    assert figures["normal_chunks"] >= 20, figures
    assert figures["normal_failures"] == 0, figures["normal_failure_examples"]
    assert figures["normal_over_timeout"] == 0
    assert sum(figures["hostile_chunks"].values()) >= 4 and set(figures["hostile_chunks"]) <= set(HOSTILE_CHUNKS)
    assert figures["containers_left"] == 0
