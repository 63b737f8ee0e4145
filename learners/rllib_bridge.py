"""RLlib's new API stack driving a rock env: an EnvRunner samples episodes whose RLModule is a rock_gym policy.

Importing this module imports ray (``pip install 'rock-gym[rllib]'``); ``import learners`` does not import it.

What RLlib carries and what it does not (ray 2.60, gymnasium 1.2.2; ``docs/rllib.md``, ``tests/rllib``):

* Observations. gymnasium batches `Text` as a tuple of str, and ``SingleAgentEnvRunner`` unbatches every vector
  observation with ``ray.rllib.utils.spaces.space_utils.unbatch``, which counts the batch by the length of the first
  leaf: the first env's string. Each env then gets a 1-tuple holding one character, before any connector runs.
  `TextBatches` hands RLlib a 1-D object array instead (one str per env), which it unbatches per env.
* Text then passes RLlib's default connectors: ``BatchIndividualItems`` stacks str into a numpy str array and
  ``NumpyToTensor`` leaves str arrays as they are; ``UnBatchToIndividualItems`` splits a numpy array per episode (a
  Python list of str it would split into characters, so `PolicyModule` returns an object array).
* RLlib's own RLModules and action distributions have no `Text` support (``Catalog``): a text policy is a custom
  RLModule that returns actions itself, as `PolicyModule` does.

>>> from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner  # doctest: +SKIP
>>> runner = SingleAgentEnvRunner(config=env_runner_config("rock/Terminal-v0", backend="docker"))  # doctest: +SKIP
>>> episodes = runner.sample(num_episodes=2, explore=False)  # doctest: +SKIP
>>> [float(episode.get_return()) for episode in episodes]  # doctest: +SKIP
[1.0, 1.0]
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from learners.policies.base import MissingDependency, make_policy
from rock_gym.envs.record import ResetInfo

try:
    import ray.rllib  # noqa: F401
except ImportError as exc:
    raise MissingDependency(f"learners.rllib_bridge needs ray[rllib] ({exc}): pip install 'rock-gym[rllib]'") from exc

from ray.rllib.algorithms.algorithm_config import AlgorithmConfig  # noqa: E402
from ray.rllib.connectors.connector_v2 import ConnectorV2  # noqa: E402
from ray.rllib.core.columns import Columns  # noqa: E402
from ray.rllib.core.rl_module.rl_module import RLModuleSpec  # noqa: E402
from ray.rllib.core.rl_module.torch import TorchRLModule  # noqa: E402

__all__ = [
    "REQUEST",
    "AddPolicyRequest",
    "PolicyModule",
    "RockRunnerConfig",
    "TextBatches",
    "env_runner_config",
    "make_env",
    "policy_request",
    "text_array",
]

#: The batch column `AddPolicyRequest` fills and `PolicyModule` reads: one JSON text per episode.
REQUEST = "rock_request"


class TextBatches(gym.vector.VectorWrapper):
    """A rock vector env whose observations are a 1-D object array of str (one per env), not gymnasium's tuple.

    ``SingleAgentEnvRunner`` unbatches observations by the length of their first leaf, so a tuple of str would be
    split into characters; an array's length is the number of envs. Actions may come as any sequence of str.
    """

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:  # type: ignore[override]
        observations, infos = self.env.reset(**kwargs)
        return text_array(observations), infos

    def step(self, actions: Any) -> tuple[np.ndarray, Any, Any, Any, dict[str, Any]]:  # type: ignore[override]
        observations, rewards, terminations, truncations, infos = self.env.step(tuple(str(a) for a in actions))
        return text_array(observations), rewards, terminations, truncations, infos


def text_array(batch: Any) -> np.ndarray:
    """A batch of str as a 1-D object array (``np.array`` of a tuple of str would make a fixed-width str array)."""
    out = np.empty(len(batch), dtype=object)
    out[:] = [str(text) for text in batch]
    return out


def make_env(config: Mapping[str, Any]) -> gym.vector.VectorEnv:
    """RLlib's env creator: ``config.environment(make_env, env_config={"env_id": ..., **RockEnv kwargs})``.

    RLlib adds ``num_envs`` when ``gym_env_vectorize_mode="vector_entry_point"``; the envs are rock_gym's own vector
    env (`rock_gym.envs.vector.RockVectorEnv`), wrapped in `TextBatches`.
    """
    kwargs = dict(config)
    env_id = kwargs.pop("env_id", "rock/Terminal-v0")
    num_envs = kwargs.pop("num_envs", 1)
    envs = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs)
    return TextBatches(envs)


class AddPolicyRequest(ConnectorV2):
    """Env-to-module: per episode, what a rock_gym policy's ``generate`` needs, as JSON text in column `REQUEST`.

    The request holds the task id, the turn index and the conversation so far (the reset's messages, then each
    action as an assistant message and each observation as a tool message) with the tools' schemas. The episode
    chunk must start at its reset: sample whole episodes (``sample(num_episodes=...)``).
    """

    def __call__(
        self,
        *,
        rl_module: Any,
        batch: dict[str, Any],
        episodes: list[Any],
        explore: bool | None = None,
        shared_data: dict | None = None,
        **kwargs: Any,
    ) -> Any:
        for episode in self.single_agent_episode_iterator(episodes):
            self.add_batch_item(batch, REQUEST, json.dumps(policy_request(episode)), episode)
        return batch


def policy_request(episode: Any) -> dict[str, Any]:
    """The task id, turn index, conversation and tools of a `SingleAgentEpisode` that holds its reset."""
    if episode.t_started != 0:
        raise ValueError(
            f"episode chunk starts at step {episode.t_started}, not at its reset, so its conversation is lost: "
            "sample whole episodes with `env_runner.sample(num_episodes=...)`"
        )
    reset = ResetInfo.from_info(episode.get_infos(0))
    observations, actions = episode.get_observations(), episode.get_actions()
    messages = [*reset.messages]
    for action, observation in zip(actions, observations[1:], strict=True):
        messages += [{"role": "assistant", "content": str(action)}, {"role": "tool", "content": str(observation)}]
    return {"task_id": reset.task_id, "turn": len(actions), "messages": messages, "tools": list(reset.tools)}


class PolicyModule(TorchRLModule):
    """An inference-only RLModule whose forward passes are a rock_gym policy's ``generate`` (text in, text out).

    ``model_config``: ``policy``, a `learners.policies.make_policy` spec (default ``"expert"``); ``policy_kwargs``
    for its constructor; ``generate_kwargs`` for ``generate`` (``max_new_tokens``, ``temperature``, ...). Inference
    (``explore=False``) samples at temperature 0. It reads column `REQUEST` (`AddPolicyRequest`) and returns
    ``Columns.ACTIONS`` as an object array of str.
    """

    def setup(self) -> None:
        config = self.model_config if isinstance(self.model_config, dict) else {}
        self.policy = make_policy(config.get("policy", "expert"), **config.get("policy_kwargs", {}))
        self.generate_kwargs = dict(config.get("generate_kwargs", {}))

    def _forward_inference(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return self.act(batch, {**self.generate_kwargs, "temperature": 0.0})

    def _forward_exploration(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return self.act(batch, self.generate_kwargs)

    def act(self, batch: dict[str, Any], generate_kwargs: dict[str, Any]) -> dict[str, Any]:
        requests = [json.loads(str(text)) for text in batch[REQUEST]]
        turns = self.policy.generate(
            [request["messages"] for request in requests],
            requests[0]["tools"] if requests else None,
            task_ids=[request["task_id"] for request in requests],
            turn_indices=[request["turn"] for request in requests],
            **generate_kwargs,
        )
        return {Columns.ACTIONS: text_array([turn.text for turn in turns])}


class RockRunnerConfig(AlgorithmConfig):
    """An `AlgorithmConfig` for EnvRunners only, whose default RLModule is `PolicyModule`.

    The base `AlgorithmConfig` has no default RLModule: ``SingleAgentEnvRunner`` then builds none (it swallows the
    ``NotImplementedError``) and ``sample()`` fails on a bare assertion.
    """

    def get_default_rl_module_spec(self) -> RLModuleSpec:
        return RLModuleSpec(module_class=PolicyModule)


def env_runner_config(
    env_id: str = "rock/Terminal-v0",
    *,
    policy: str = "expert",
    policy_kwargs: dict[str, Any] | None = None,
    generate_kwargs: dict[str, Any] | None = None,
    num_envs: int = 1,
    **env_kwargs: Any,
) -> RockRunnerConfig:
    """A config for ``SingleAgentEnvRunner(config=...)``: a rock env, `AddPolicyRequest` and `PolicyModule`.

    Args:
        env_id: a registered rock/* id; env_kwargs go to each env (``backend``, ``max_turns``, ``tasks``, ...).
        policy, policy_kwargs, generate_kwargs: the policy the module wraps (see `PolicyModule`).
        num_envs: envs per EnvRunner (sandboxes at once).
    """
    model_config = {"policy": policy, "policy_kwargs": policy_kwargs or {}, "generate_kwargs": generate_kwargs or {}}
    return (
        RockRunnerConfig()
        .environment(make_env, env_config={"env_id": env_id, **env_kwargs})
        .env_runners(
            num_env_runners=0,
            num_envs_per_env_runner=num_envs,
            gym_env_vectorize_mode="vector_entry_point",
            env_to_module_connector=_policy_request_connectors,
        )
        .rl_module(rl_module_spec=RLModuleSpec(module_class=PolicyModule, model_config=model_config))
    )


def _policy_request_connectors(env: Any = None, spaces: Any = None, device: Any = None) -> list[ConnectorV2]:
    return [AddPolicyRequest()]
