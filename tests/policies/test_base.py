"""Choosing a policy by spec, and the protocol every engine meets."""

from __future__ import annotations

import pytest

from learners.policies import ExpertPolicy, MissingDependency, Policy, Turn, make_policy


def test_turn_defaults_hold_no_tokens() -> None:
    turn = Turn("text")
    assert (turn.prompt_ids, turn.completion_ids, turn.logprobs, turn.finish_reason) == ([], [], [], "stop")


def test_expert_spec_takes_an_optional_tool_format() -> None:
    assert isinstance(make_policy("expert"), ExpertPolicy)
    policy = make_policy("expert:qwen3_coder")
    assert isinstance(policy, ExpertPolicy) and policy.tool_format == "qwen3_coder"


def test_every_engine_meets_the_protocol() -> None:
    assert isinstance(make_policy("expert"), Policy)


@pytest.mark.parametrize("spec", ["tpu:/model", "/path/without/engine", ""])
def test_unknown_engine_names_the_choices(spec: str) -> None:
    with pytest.raises(ValueError, match="hf:PATH, vllm:PATH, openai:URL, expert"):
        make_policy(spec)


@pytest.mark.parametrize("spec", ["hf", "hf:", "vllm:", "openai:"])
def test_engine_without_target_says_what_to_add(spec: str) -> None:
    with pytest.raises(ValueError, match="needs a target after the colon"):
        make_policy(spec)


def test_hf_spec_with_a_missing_directory_names_what_it_expected(tmp_path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    with pytest.raises(FileNotFoundError, match="config.json"):
        make_policy(f"hf:{tmp_path / 'nothing'}")


def test_missing_dependency_is_an_import_error_naming_the_extra() -> None:
    from learners.policies.base import require

    with pytest.raises(MissingDependency, match=r"pip install 'rock-gym\[hf\]'") as caught:
        require("rock_gym_no_such_module", "hf")
    assert isinstance(caught.value, ImportError)


def test_lazy_engines_resolve_by_name() -> None:
    import learners.policies as policies

    with pytest.raises(AttributeError):
        _ = policies.NoSuchPolicy


def test_make_policy_builds_a_policy_a_plugin_registers():
    from rock_gym import hookimpl
    from rock_gym.plugins import get_plugin_manager

    class EchoPolicy:
        def __init__(self, target: str = "", **kwargs):
            self.target = target

    class EchoPlugin:
        @hookimpl
        def rock_gym_add_policies(self, registry):
            registry.add("echo", EchoPolicy, description="says what it hears")

    pm = get_plugin_manager()
    plugin = EchoPlugin()
    pm.register(plugin, name="echo-plugin")
    try:
        policy = make_policy("echo:hello")
        assert isinstance(policy, EchoPolicy) and policy.target == "hello"
        with pytest.raises(ValueError, match="or a plugin's: echo"):
            make_policy("nope:x")
    finally:
        pm.unregister(plugin)
    with pytest.raises(ValueError, match="unknown policy engine 'echo'"):
        make_policy("echo:hello")
