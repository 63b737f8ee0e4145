"""The example third-party package `rock-gym-reinforce`: installed with pip, found, listed, and trained."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import learners
from rock_gym.plugins import PluginManager, new_plugin_manager
from rock_gym.tasks import terminal_tasks


@pytest.fixture(scope="module")
def installed() -> importlib.metadata.EntryPoint:
    """The package's entry point; a missing install fails with the fix."""
    found = [ep for ep in importlib.metadata.entry_points(group="rock_gym") if ep.name == "rock_gym_reinforce"]
    if not found:
        pytest.fail("rock-gym-reinforce is not installed: run `pip install -e plugins/rock-gym-reinforce`")
    return found[0]


@pytest.fixture
def pm(installed: importlib.metadata.EntryPoint) -> PluginManager:
    return new_plugin_manager()


def test_found_through_its_entry_point(installed: importlib.metadata.EntryPoint, pm: PluginManager) -> None:
    assert installed.value == "rock_gym_reinforce"
    assert installed.dist is not None and installed.dist.name == "rock-gym-reinforce"
    entry = pm.learners.get("plain-reinforce")
    assert entry.plugin == "rock_gym_reinforce"
    assert entry.factory == "rock_gym_reinforce.learner:PlainReinforce"  # imported only when made
    assert pm.distributions["rock_gym_reinforce"] == f"rock-gym-reinforce {installed.dist.version}"
    assert not [failure for failure in pm.failures if failure.entry_point.name == "rock_gym_reinforce"]


def test_listed_by_the_cli(installed: importlib.metadata.EntryPoint) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "rock_gym.cli", "plugins"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        check=True,
    )
    row = next(line for line in done.stdout.splitlines() if "plain-reinforce" in line)
    assert "learner" in row and "rock_gym_reinforce" in row and "rock-gym-reinforce" in row


def test_made_by_name_without_starting_anything(pm: PluginManager) -> None:
    learner = learners.make("plain-reinforce", plugin_manager=pm, tasks=[], candidates=("submit", "solve"))
    assert learner.probabilities().tolist() == [0.5, 0.5]
    assert learner.env is None  # the env (and its sandboxes) start with the first update
    with pytest.raises(TypeError, match="has no field 'episodes'"):
        learners.make("plain-reinforce", plugin_manager=pm, episodes=2)


@pytest.mark.container
def test_trains_a_few_updates_in_real_containers(pm: PluginManager, backend: str, tmp_path: Path) -> None:
    tasks = terminal_tasks(["count-matches"], seeds=range(2))
    kwargs = {"tasks": tasks, "backend": backend, "episodes_per_update": 2, "max_turns": 2}
    with learners.make("plain-reinforce", plugin_manager=pm, **kwargs) as learner:
        metrics = learner.train(updates=3)
        learner.save(tmp_path / "state.json")
    assert [m["update"] for m in metrics] == [1.0, 2.0, 3.0]
    for m in metrics:
        assert 0.0 <= m["mean_reward"] <= 1.0
        assert m["p/submit"] + m["p/look"] + m["p/solve"] == pytest.approx(1.0)
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["updates"] == 3 and state["config"]["env"]["backend"] == backend and len(state["logits"]) == 3


@pytest.mark.container
def test_each_update_moves_towards_the_reference_steps_exactly_when_they_were_played(pm: PluginManager) -> None:
    """The learning below on a quarter of the work (8 episodes of one family, two candidates), in the default run.

    Only the reference steps solve the task, so an update whose episodes mixed the two candidates (mean reward strictly
    between 0 and 1) raises p/solve, and one that played a single candidate leaves the logits as they were.
    """
    tasks = terminal_tasks(["count-matches"], seeds=[0])
    kwargs = {"tasks": tasks, "candidates": ("submit", "solve"), "episodes_per_update": 4, "seed": 1}
    with learners.make("plain-reinforce", plugin_manager=pm, **kwargs) as learner:
        metrics = learner.train(updates=2)
    before = 0.5
    for m in metrics:
        mixed = 0.0 < m["mean_reward"] < 1.0
        assert (m["p/solve"] > before) if mixed else (m["p/solve"] == pytest.approx(before)), metrics
        before = m["p/solve"]
    assert metrics[-1]["p/solve"] > 0.5, metrics


@pytest.mark.container
@pytest.mark.slow
@pytest.mark.long
def test_learns_to_run_the_reference_steps(pm: PluginManager) -> None:
    """Only the reference steps solve a task, in every family; REINFORCE should come to prefer them."""
    tasks = terminal_tasks(seeds=[0])
    with learners.make("plain-reinforce", plugin_manager=pm, tasks=tasks, episodes_per_update=4, seed=1) as learner:
        metrics = learner.train(updates=8)
    assert metrics[-1]["p/solve"] > 0.6 > 1 / 3
    assert metrics[-1]["p/solve"] > metrics[0]["p/solve"]
