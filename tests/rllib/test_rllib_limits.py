"""Where RLlib's default new-API-stack pieces cannot carry rock_gym's text (ray 2.60, gymnasium 1.2.2).

Each test reproduces one limitation at the RLlib function or connector that has it and asserts its effect, so it
fails the day RLlib starts carrying text there: then drop the matching workaround in `learners.rllib_bridge` and
the line in docs/rllib.md.
"""

from __future__ import annotations

import traceback
from typing import Any, ClassVar

import numpy as np
import pytest

pytest.importorskip("ray.rllib")

from gymnasium.spaces import Text  # noqa: E402
from ray.rllib.algorithms.ppo import PPOConfig  # noqa: E402
from ray.rllib.connectors.env_to_module import FlattenObservations  # noqa: E402
from ray.rllib.core.columns import Columns  # noqa: E402
from ray.rllib.core.models.catalog import Catalog  # noqa: E402
from ray.rllib.core.rl_module.rl_module import RLModuleSpec  # noqa: E402
from ray.rllib.core.rl_module.torch import TorchRLModule  # noqa: E402
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner  # noqa: E402
from ray.rllib.utils.spaces.space_utils import unbatch  # noqa: E402

from learners.rllib_bridge import PolicyModule, RockRunnerConfig, env_runner_config, text_array  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    # RLlib registers the env creator under this id again for each EnvRunner it builds.
    pytest.mark.filterwarnings("ignore:.*Overriding environment rllib-single-agent-env-v0"),
]

SUBMIT = '<tool_call>\n{"name": "submit", "arguments": {}}\n</tool_call>'


class Stop(Exception):
    """Raised by a probe module once it has seen what it came for."""


class ObservationProbe(TorchRLModule):
    """Keeps the observation batch of its first forward pass, then stops the sampling."""

    seen: ClassVar[list[Any]] = []

    def _forward(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        ObservationProbe.seen.append(batch[Columns.OBS])
        raise Stop


class ListActions(PolicyModule):
    """`PolicyModule`, returning its actions as a Python list of str instead of an array."""

    def act(self, batch: dict[str, Any], generate_kwargs: dict[str, Any]) -> dict[str, Any]:
        return {Columns.ACTIONS: [SUBMIT for _ in batch[Columns.OBS]]}


def raised_in(error: BaseException) -> list[str]:
    """The files of the frames the error passed through, innermost last."""
    return [frame.filename for frame in traceback.extract_tb(error.__traceback__)]


def test_unbatch_splits_a_tuple_of_text_into_characters():
    """The root cause: `space_utils.unbatch` counts a batch by `len()` of its first leaf, here a string.

    gymnasium batches `Text` observations as a tuple of str (one per env), and `SingleAgentEnvRunner` calls `unbatch`
    on every vector observation (`_reset_envs` and `_sample`), before any env-to-module connector runs.
    """
    assert unbatch(("ls -la",)) == [("l",), ("s",), (" ",), ("-",), ("l",), ("a",)]
    assert unbatch(text_array(["ls -la", "pwd"])) == ["ls -la", "pwd"]  # the bridge's `TextBatches`: one item per env


@pytest.mark.container
def test_env_runner_gives_the_module_one_character_of_each_observation(docker_engine):
    """With the env as registered (gymnasium's sync vectorization, RLlib's default connectors), the RLModule sees a
    1-tuple holding the first character of the task prompt: `SingleAgentEnvRunner._reset_envs` unbatched the tuple
    of observations per character (ray/rllib/env/single_agent_env_runner.py, `observations = unbatch(observations)`).
    No error is raised anywhere; `learners.rllib_bridge.TextBatches` is the workaround.
    """
    ObservationProbe.seen.clear()
    config = (
        RockRunnerConfig()
        .environment("rock/Terminal-v0", env_config={"backend": "docker", "max_turns": 2})
        .env_runners(num_env_runners=0)
        .rl_module(rl_module_spec=RLModuleSpec(module_class=ObservationProbe))
    )
    runner = SingleAgentEnvRunner(config=config)
    try:
        with pytest.raises(Stop):
            runner.sample(num_episodes=1)
        prompt = runner.env.unwrapped.envs[0].unwrapped.episode.task.prompt()
    finally:
        runner.stop()
    (observations,) = ObservationProbe.seen
    assert len(prompt) > 1
    assert isinstance(observations, tuple) and len(observations) == 1  # the 1-tuple, batched
    assert observations[0].tolist() == [prompt[0]]


@pytest.mark.container
def test_a_list_of_text_actions_fails_in_normalize_and_clip_actions(docker_engine):
    """Module-to-env: `UnBatchToIndividualItems` splits a Python list of str into characters (the same `unbatch`),
    and `NormalizeAndClipActions` (`unsquash_action`, via dm-tree) then finds a list where the `Text` space is a
    leaf. Actions leave the module as a numpy array instead (`PolicyModule` returns an object array).
    """
    config = env_runner_config("rock/Terminal-v0", backend="docker", max_turns=2)
    config.rl_module(rl_module_spec=RLModuleSpec(module_class=ListActions, model_config={}))
    runner = SingleAgentEnvRunner(config=config)
    try:
        with pytest.raises(ValueError, match="same nested structure") as caught:
            runner.sample(num_episodes=1)
    finally:
        runner.stop()
    assert any(name.endswith("module_to_env/normalize_and_clip_actions.py") for name in raised_in(caught.value))


def test_default_rl_modules_have_no_encoder_for_text():
    """RLlib's default RLModules build their networks from a `Catalog`, which has no encoder for a `Text`
    observation space: `Catalog._get_encoder_config` raises (ray/rllib/core/models/catalog.py) when the EnvRunner
    builds PPO's default module. Building the runner starts no container.
    """
    config = PPOConfig().environment("rock/Terminal-v0", env_config={"backend": "docker"})
    config.env_runners(num_env_runners=0)
    with pytest.raises(ValueError, match="No default encoder config for obs space=Text") as caught:
        SingleAgentEnvRunner(config=config)
    assert any(name.endswith("core/models/catalog.py") for name in raised_in(caught.value))


def test_default_action_distributions_have_none_for_text():
    """`GetActions` samples from `ACTION_DIST_INPUTS` with the module's distribution class; RLlib's catalog has none
    for a `Text` action space (`Catalog._get_dist_cls_from_action_space`), so a text module returns `ACTIONS`.
    """
    with pytest.raises(NotImplementedError, match="Unsupported action space"):
        Catalog._get_dist_cls_from_action_space(Text(16), framework="torch")


def test_flatten_observations_cannot_flatten_text():
    """The optional `FlattenObservations` env-to-module connector turns observations into float32 vectors
    (`ray.rllib.utils.numpy.flatten_inputs_to_1d_tensor`); a string is no float, so it fails at construction.
    """
    with pytest.raises(ValueError, match="could not convert string to float"):
        FlattenObservations(input_observation_space=Text(16), input_action_space=Text(16))


def test_numpy_text_passes_numpy_to_tensor_untouched():
    """What the bridge relies on: `NumpyToTensor` (`convert_to_torch_tensor`) leaves str and object arrays as they
    are, so text columns reach the RLModule as numpy arrays."""
    from ray.rllib.utils.torch_utils import convert_to_torch_tensor

    batch = convert_to_torch_tensor(
        {"obs": np.array(["a", "bc"]), "request": text_array(["{}"]), "turn": np.array([1])}
    )
    assert batch["obs"].tolist() == ["a", "bc"] and batch["request"].tolist() == ["{}"]
    assert type(batch["turn"]).__module__.startswith("torch")
