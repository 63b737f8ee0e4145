"""rock_gym installs and passes its env checks beside `ray[rllib]`, which pins gymnasium."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ray.rllib")

from packaging.requirements import Requirement  # noqa: E402

pytestmark = pytest.mark.slow

TEST_CORE = Path(__file__).resolve().parent.parent / "envs" / "test_core.py"


def test_installed_gymnasium_satisfies_ray_rllib_and_rock_gym():
    installed = importlib.metadata.version("gymnasium")
    pins = [Requirement(r) for r in importlib.metadata.requires("ray") or ()]
    rllib = [r for r in pins if r.name == "gymnasium" and r.marker and r.marker.evaluate({"extra": "rllib"})]
    ours = [Requirement(r) for r in importlib.metadata.requires("rock-gym") or ()]
    ours = [r for r in ours if r.name == "gymnasium" and not r.marker]
    assert rllib and ours, (rllib, ours)
    for requirement in rllib + ours:
        assert requirement.specifier.contains(installed), f"gymnasium {installed} does not satisfy {requirement}"


def test_importing_rock_gym_and_learners_imports_no_ray():
    code = "import sys, rock_gym, learners, learners.policies; print('ray' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


@pytest.mark.container
def test_check_env_passes_with_rllib_imported(docker_engine):
    """tests/envs/test_core.py's `check_env` test for rock/Terminal-v0, in a process that has imported RLlib."""
    import ray.rllib  # noqa: F401

    import learners
    import learners.rllib_bridge  # noqa: F401
    import rock_gym

    assert "rock/Terminal-v0" in rock_gym.ENV_IDS and learners.make
    spec = importlib.util.spec_from_file_location("rock_gym_env_core_tests", TEST_CORE)
    assert spec and spec.loader
    core = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(core)
    core.test_check_env_passes_for_every_registered_id("rock/Terminal-v0")
