"""An RLlib EnvRunner (new API stack) drives rock/Terminal-v0 with an RLModule wrapping the expert policy."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

pytest.importorskip("ray.rllib")

from ray.rllib.core.columns import Columns  # noqa: E402
from ray.rllib.core.rl_module.rl_module import RLModuleSpec  # noqa: E402
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner  # noqa: E402
from ray.rllib.env.single_agent_episode import SingleAgentEpisode  # noqa: E402

from learners.policies import ExpertPolicy  # noqa: E402
from learners.rllib_bridge import PolicyModule, env_runner_config, policy_request  # noqa: E402
from rock_gym.envs.core import printable, render_results  # noqa: E402
from rock_gym.envs.record import ResetInfo, StepInfo  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    # RLlib registers the env creator under this id again for each EnvRunner it builds.
    pytest.mark.filterwarnings("ignore:.*Overriding environment rllib-single-agent-env-v0"),
]


class RecordingPolicyModule(PolicyModule):
    """`PolicyModule`, keeping every observation its forward passes were given."""

    seen: ClassVar[list[str]] = []

    def act(self, batch: dict[str, Any], generate_kwargs: dict[str, Any]) -> dict[str, Any]:
        RecordingPolicyModule.seen += [str(text) for text in batch[Columns.OBS]]
        return super().act(batch, generate_kwargs)


@pytest.mark.container
def test_env_runner_samples_episodes_the_expert_solves(docker_engine):
    RecordingPolicyModule.seen.clear()
    config = env_runner_config("rock/Terminal-v0", backend="docker", max_turns=6, num_envs=2).debugging(seed=0)
    config.rl_module(rl_module_spec=RLModuleSpec(module_class=RecordingPolicyModule, model_config={}))
    runner = SingleAgentEnvRunner(config=config)
    try:
        episodes = runner.sample(num_episodes=2, explore=False)
    finally:
        runner.stop()

    assert len(episodes) >= 2
    expert = ExpertPolicy()
    for episode in episodes:
        # Returned episodes are numpy'd (`episodes_to_numpy`): the text comes back as numpy str arrays.
        observations, actions = [str(o) for o in episode.get_observations()], [str(a) for a in episode.get_actions()]
        infos = episode.get_infos()
        reset, steps = ResetInfo.from_info(infos[0]), [StepInfo.from_info(info) for info in infos[1:]]
        assert episode.is_terminated and episode.get_return() == 1.0
        assert steps[-1].ending == "submitted" and steps[-1].verification.resolved
        # The observations are the env's own text: the task prompt, then each turn's rendered tool results.
        assert observations[0] == reset.messages[1]["content"]
        assert observations[1:] == [printable(render_results(list(s.tool_results), s.format_error)) for s in steps]
        assert actions == [expert.turn_text(reset.task_id, turn) for turn in range(len(actions))]
        assert set(observations[:-1]) <= set(RecordingPolicyModule.seen)  # what the module was given, whole


def test_policy_request_is_the_conversation_so_far():
    reset = ResetInfo("find-files-0", messages=({"role": "system", "content": "S"}, {"role": "user", "content": "P"}))
    episode = SingleAgentEpisode(
        observations=["P", "[1] bash (exit 0)\na"],
        actions=["<call 1>"],
        rewards=[0.0],
        infos=[reset.to_info(), StepInfo("find-files-0", turn=1).to_info()],
        len_lookback_buffer=0,
    )
    request = policy_request(episode)
    assert request["task_id"] == "find-files-0" and request["turn"] == 1
    assert request["messages"] == [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "P"},
        {"role": "assistant", "content": "<call 1>"},
        {"role": "tool", "content": "[1] bash (exit 0)\na"},
    ]


def test_policy_request_refuses_an_episode_chunk_without_its_reset():
    """Sampling by timesteps cuts episodes; a cut chunk lost the conversation, so the request says how to sample."""
    episode = SingleAgentEpisode(
        observations=["x", "y"], actions=["a"], rewards=[0.0], infos=[{}, {}], t_started=3, len_lookback_buffer=0
    )
    with pytest.raises(ValueError, match="num_episodes"):
        policy_request(episode)
