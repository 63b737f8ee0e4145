"""VLLMPolicy's pure-Python parts, against stand-ins shaped like vLLM's documented output and engine objects.

vLLM cannot run here (no GPU, not installed); `RequestOutput`, `CompletionOutput` and `Logprob` below copy the
fields vLLM documents (vllm/outputs.py, vllm/logprobs.py), and `StandInLLM` the ``LLM`` methods the policy calls.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any

import pytest

from learners.policies import MissingDependency, make_policy
from learners.policies.vllm import (
    TOP_LOGPROBS,
    VLLMPolicy,
    load_weights,
    sampling_kwargs,
    to_completion,
    to_turn,
    token_prompts,
)
from rock_gym.agent.harness import Completion


@dataclass
class Logprob:
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None
    logprobs: list[dict[int, Logprob]] | None
    finish_reason: str | None = None
    stop_reason: int | str | None = None


@dataclass
class RequestOutput:
    request_id: str
    prompt: str | None
    prompt_token_ids: list[int] | None
    prompt_logprobs: Any
    outputs: list[CompletionOutput]
    finished: bool = True


Prompt = tuple[int, ...] | None


def output(
    ids: list[int], chosen: list[float], finish: str | None = "stop", prompt: Prompt = (1, 2, 3)
) -> RequestOutput:
    # With logprobs=1 each position holds the sampled token and, when it is not the top one, the top-1 token too.
    pairs = zip(ids, chosen, strict=True)
    positions = [{token: Logprob(lp, rank=2), 999: Logprob(-0.01, rank=1)} for token, lp in pairs]
    completion = CompletionOutput(0, "text", ids, sum(chosen), positions, finish)
    return RequestOutput("r0", None, None if prompt is None else list(prompt), None, [completion])


def test_a_request_output_becomes_a_turn_with_the_sampled_tokens_logprobs() -> None:
    turn = to_turn(output([5, 6, 2], [-1.5, -0.25, -3.0]))
    assert turn.text == "text"
    assert turn.prompt_ids == [1, 2, 3]
    assert turn.completion_ids == [5, 6, 2]
    assert turn.logprobs == [-1.5, -0.25, -3.0]
    assert turn.finish_reason == "stop"


def test_a_request_output_becomes_a_completion_for_the_harness() -> None:
    completion = to_completion(output([5, 6, 2], [-1.5, -0.25, -3.0]))
    assert completion == Completion([5, 6, 2], [-1.5, -0.25, -3.0], "stop")
    assert to_completion(output([5], [-1.0], finish=None)).finish_reason == "length"


def test_prompt_ids_fall_back_to_the_ones_sent_and_finish_defaults_to_length() -> None:
    turn = to_turn(output([5], [-1.0], finish=None, prompt=None), prompt=[7, 8])
    assert turn.prompt_ids == [7, 8] and turn.finish_reason == "length"


def test_missing_logprobs_say_how_to_request_them() -> None:
    bare = output([5], [-1.0])
    bare.outputs[0].logprobs = None
    with pytest.raises(ValueError, match="SamplingParams\\(logprobs="):
        to_turn(bare)


def test_sampling_params_seed_each_row_and_turn_filters_off() -> None:
    rows = [sampling_kwargs(32, 0.7, 100, index) for index in range(3)]
    assert [row["seed"] for row in rows] == [100, 101, 102]
    assert rows[0] == {
        "max_tokens": 32,
        "temperature": 0.7,
        "top_p": 1.0,
        "top_k": -1,
        "seed": 100,
        "logprobs": TOP_LOGPROBS,
    }
    assert sampling_kwargs(8, 1.0, None, 4)["seed"] is None
    assert sampling_kwargs(8, -1.0, None, 0)["temperature"] == 0.0


def test_token_prompts_are_vllm_tokens_prompts() -> None:
    assert token_prompts([[1, 2], (3,)]) == [{"prompt_token_ids": [1, 2]}, {"prompt_token_ids": [3]}]


@dataclass
class StandInModel:
    """vLLM model classes load a checkpoint with ``load_weights(weights: Iterable[tuple[str, Tensor]])``."""

    loaded: list[tuple[str, Any]] = field(default_factory=list)

    def load_weights(self, weights):  # type: ignore[no-untyped-def]
        self.loaded.extend(weights)
        return {name for name, _ in weights}


@dataclass
class StandInLLM:
    """The ``vllm.LLM`` methods VLLMPolicy calls outside ``generate``."""

    model: StandInModel = field(default_factory=StandInModel)
    prefix_resets: int = 0

    def get_tokenizer(self) -> str:
        return "tokenizer"

    def apply_model(self, func):  # type: ignore[no-untyped-def]
        return [func(self.model)]  # one worker

    def reset_prefix_cache(self) -> bool:
        self.prefix_resets += 1
        return True


def test_update_weights_loads_a_state_dict_in_every_worker_and_drops_stale_kv() -> None:
    torch = pytest.importorskip("torch")
    llm = StandInLLM()
    policy = VLLMPolicy(llm=llm)
    trainer = torch.nn.Linear(2, 3)
    policy.update_weights(trainer)
    assert [name for name, _ in llm.model.loaded] == ["weight", "bias"]
    assert torch.equal(llm.model.loaded[0][1], trainer.weight)
    assert not llm.model.loaded[0][1].requires_grad
    assert llm.prefix_resets == 1
    policy.update_weights({"weight": torch.zeros(3, 2)})
    assert llm.model.loaded[-1][0] == "weight" and llm.prefix_resets == 2


def test_load_weights_returns_what_the_model_loaded() -> None:
    model = StandInModel()
    assert load_weights(model, [("a", 1), ("b", 2)]) == {"a", "b"}


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_without_vllm_choosing_it_names_the_extra() -> None:
    with pytest.raises(MissingDependency, match=r"pip install 'rock-gym\[vllm\]'"):
        make_policy("vllm:/models/qwen")


def test_without_a_path_or_engine_it_says_what_to_pass() -> None:
    with pytest.raises(ValueError, match="model path"):
        VLLMPolicy()
