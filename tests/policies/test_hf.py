"""HFPolicy on a tiny saved model: chat template, seeded batched sampling, and logprobs that are the sampler's µ."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from learners.policies import HFPolicy, Policy, prompt_ids  # noqa: E402
from learners.policies.hf import completion_logprobs  # noqa: E402
from rock_gym.tools import get_format, tool_schemas  # noqa: E402

TOOLS = tool_schemas(["bash", "str_replace_editor", "submit"])


def render(policy: HFPolicy, conversation: list[dict[str, str]]) -> str:
    return policy.tokenizer.apply_chat_template(conversation, tools=TOOLS, add_generation_prompt=True, tokenize=False)


def test_the_tiny_model_loads_through_the_users_path(tiny_model_dir: Path, hf_policy: HFPolicy) -> None:
    assert {"config.json", "tokenizer_config.json", "chat_template.jinja"} <= {p.name for p in tiny_model_dir.iterdir()}
    assert isinstance(hf_policy, Policy)
    assert hf_policy.tokenizer.padding_side == "left"
    assert hf_policy.tokenizer.eos_token_id in hf_policy.eos_ids


def test_chat_template_lists_the_tools_and_wraps_tool_results(hf_policy: HFPolicy) -> None:
    call = get_format("hermes").render([get_format("hermes").parse('<tool_call>{"name": "submit"}</tool_call>')[0]])
    conversation = [
        {"role": "system", "content": "You are an agent."},
        {"role": "user", "content": "Fix it."},
        {"role": "assistant", "content": call},
        {"role": "tool", "content": "submitted"},
    ]
    text = render(hf_policy, conversation)
    listed = text.split("<tools>\n", 1)[1].split("\n</tools>", 1)[0].splitlines()
    assert [json.loads(line)["function"]["name"] for line in listed] == ["bash", "str_replace_editor", "submit"]
    assert "<|im_start|>assistant\n" + call + "<|im_end|>" in text
    assert "<tool_response>\nsubmitted\n</tool_response>" in text
    assert text.endswith("<|im_start|>assistant\n")
    assert "<tools>" not in hf_policy.tokenizer.apply_chat_template(conversation[1:2], tokenize=False)


def test_prompt_ids_are_the_rendered_template_and_keep_markup_tokens(hf_policy: HFPolicy) -> None:
    conversation = [{"role": "user", "content": "run <tool_call> please"}]
    ids = prompt_ids(hf_policy.tokenizer, conversation, TOOLS)
    text = render(hf_policy, conversation)
    assert hf_policy.tokenizer.decode(ids) == text
    assert hf_policy.tokenizer.convert_tokens_to_ids("<tool_call>") in ids


def test_same_seed_same_turns_and_the_callers_rng_is_untouched(hf_policy: HFPolicy, conversations) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    first = hf_policy.generate(conversations, TOOLS, max_new_tokens=8, temperature=1.0, seed=7)
    assert torch.rand(1) == expected_next
    again = hf_policy.generate(conversations, TOOLS, max_new_tokens=8, temperature=1.0, seed=7)
    other = hf_policy.generate(conversations, TOOLS, max_new_tokens=8, temperature=1.0, seed=8)
    assert [t.completion_ids for t in first] == [t.completion_ids for t in again]
    assert [t.text for t in first] == [t.text for t in again]
    assert [t.completion_ids for t in first] != [t.completion_ids for t in other]


def test_turns_carry_unpadded_prompt_ids_and_aligned_logprobs(hf_policy: HFPolicy, conversations) -> None:  # type: ignore[no-untyped-def]
    turns = hf_policy.generate(conversations, TOOLS, max_new_tokens=6, seed=0)
    for conversation, turn in zip(conversations, turns, strict=True):
        assert turn.prompt_ids == prompt_ids(hf_policy.tokenizer, conversation, TOOLS)
        assert len(turn.completion_ids) == len(turn.logprobs) <= 6
        assert all(lp <= 0.0 for lp in turn.logprobs)
        assert turn.finish_reason in {"stop", "length"}


@pytest.mark.parametrize("temperature", [1.0, 0.7, 1.5])
def test_logprobs_are_what_the_sampler_drew_from(hf_policy: HFPolicy, conversations, temperature: float) -> None:  # type: ignore[no-untyped-def]
    """µ = log_softmax(logits / T): a forward pass at the same temperature recomputes it (padding and the KV cache
    only round differently). At T != 1 it differs from the model's own distribution, the learner's π_old."""
    turns = hf_policy.generate(conversations, TOOLS, max_new_tokens=8, temperature=temperature, seed=1)
    for turn in turns:
        recomputed = hf_policy.logprobs(turn.prompt_ids, turn.completion_ids, temperature=temperature)
        assert recomputed == pytest.approx(turn.logprobs, abs=1e-4)
        plain = hf_policy.logprobs(turn.prompt_ids, turn.completion_ids)
        if temperature != 1.0:
            assert plain != pytest.approx(turn.logprobs, abs=1e-4)


def test_greedy_reports_the_models_own_logprobs(hf_policy: HFPolicy, conversations) -> None:  # type: ignore[no-untyped-def]
    first = hf_policy.generate(conversations, TOOLS, max_new_tokens=5, temperature=0.0)
    second = hf_policy.generate(conversations, TOOLS, max_new_tokens=5, temperature=0.0, seed=99)
    assert [t.completion_ids for t in first] == [t.completion_ids for t in second]
    for turn in first:
        assert hf_policy.logprobs(turn.prompt_ids, turn.completion_ids) == pytest.approx(turn.logprobs, abs=1e-4)


def test_batched_recomputation_matches_one_at_a_time(hf_policy: HFPolicy, conversations) -> None:  # type: ignore[no-untyped-def]
    turns = hf_policy.generate(conversations, TOOLS, max_new_tokens=4, seed=2)
    pairs = [(turn.prompt_ids, turn.completion_ids) for turn in turns]
    with torch.no_grad():
        batched = completion_logprobs(hf_policy.model, pairs)
    for values, turn in zip(batched, turns, strict=True):
        assert values.tolist() == pytest.approx(hf_policy.logprobs(turn.prompt_ids, turn.completion_ids), abs=1e-5)


def test_empty_batch_gives_no_turns(hf_policy: HFPolicy) -> None:
    assert hf_policy.generate([], TOOLS) == []


def test_a_trained_policy_stops_on_eos_after_a_tool_call(tiny_model_dir: Path) -> None:
    """A few steps of behaviour cloning through `completion_logprobs` teach the tiny model one tool call; the turn
    then ends on the end-of-turn token: finish "stop", eos kept in the ids (it is trained on) but not in the text."""
    policy = HFPolicy(tiny_model_dir)
    conversation = [{"role": "user", "content": "Submit now."}]
    target = '<tool_call>{"name": "submit"}</tool_call>'
    prompt = prompt_ids(policy.tokenizer, conversation, None)
    completion = policy.tokenizer(target, add_special_tokens=False)["input_ids"] + [policy.tokenizer.eos_token_id]
    optimizer = torch.optim.Adam(policy.model.parameters(), lr=1e-2)
    policy.model.train()
    for _ in range(150):
        (logprobs,) = completion_logprobs(policy.model, [(prompt, completion)])
        if logprobs.min().item() > -0.5:  # every target token is now the argmax
            break
        optimizer.zero_grad()
        (-logprobs.sum()).backward()
        optimizer.step()
    (turn,) = policy.generate([conversation], None, max_new_tokens=len(completion) + 5, temperature=0.0)
    assert policy.model.training  # generate restores the learner's mode
    assert turn.finish_reason == "stop"
    assert turn.completion_ids == completion
    assert turn.text == target
    assert [call.name for call in get_format("hermes").parse(turn.text)] == ["submit"]
    sampled = policy.generate([conversation], None, max_new_tokens=len(completion) + 5, temperature=1.0, seed=0)[0]
    assert sampled.logprobs == pytest.approx(policy.logprobs(sampled.prompt_ids, sampled.completion_ids), abs=1e-4)


def test_update_weights_loads_another_models_weights(tiny_model_dir: Path, hf_policy: HFPolicy) -> None:
    policy = HFPolicy(tiny_model_dir)
    with torch.no_grad():
        for parameter in policy.model.parameters():
            parameter.add_(0.5)
    assert not torch.equal(policy.model.lm_head.weight, hf_policy.model.lm_head.weight)
    policy.update_weights(hf_policy.model)
    assert torch.equal(policy.model.lm_head.weight, hf_policy.model.lm_head.weight)
    policy.update_weights(policy.model)  # trained in place: nothing to do
