"""OpenAIPolicy through the official client against a real loopback server that serves the tiny HF model."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
openai = pytest.importorskip("openai")

from learners.policies import HFPolicy, OpenAIPolicy, make_policy  # noqa: E402
from learners.policies.openai import to_turn  # noqa: E402
from learners.serve import serve  # noqa: E402
from rock_gym.tools import get_format, tool_schemas  # noqa: E402

TOOLS = tool_schemas(["bash", "submit"])
LS = '{"command": "ls"}'


@pytest.fixture(scope="module")
def url(hf_policy: HFPolicy) -> Iterator[str]:
    server, url = serve(hf_policy, model_name="tiny")
    yield url
    server.shutdown()
    server.server_close()


def test_the_client_finds_the_served_model(url: str) -> None:
    policy = make_policy(f"openai:{url}")
    assert isinstance(policy, OpenAIPolicy) and policy.model == "tiny"


def test_turns_match_the_served_policy_row_by_row(url: str, hf_policy: HFPolicy, conversations) -> None:  # type: ignore[no-untyped-def]
    """Row i is asked with seed + i, so each turn equals the HF policy's own turn for that conversation and seed."""
    turns = OpenAIPolicy(url, model="tiny", concurrency=3).generate(
        conversations, TOOLS, max_new_tokens=6, temperature=1.0, seed=10
    )
    for index, (conversation, turn) in enumerate(zip(conversations, turns, strict=True)):
        (expected,) = hf_policy.generate([conversation], TOOLS, max_new_tokens=6, temperature=1.0, seed=10 + index)
        assert turn.text == expected.text
        assert turn.logprobs == pytest.approx(expected.logprobs, abs=1e-6)
        assert turn.finish_reason == expected.finish_reason
        assert turn.prompt_ids == turn.completion_ids == []  # the server tokenizes: eval only


def test_the_raw_client_sees_an_openai_shaped_reply(url: str) -> None:
    client = openai.OpenAI(base_url=url, api_key="EMPTY")
    reply = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=3, seed=0, logprobs=True
    )
    assert reply.object == "chat.completion" and reply.choices[0].message.role == "assistant"
    assert len(reply.choices[0].logprobs.content) == reply.usage.completion_tokens == 3
    assert reply.choices[0].finish_reason == "length"
    assert [model.id for model in client.models.list().data] == ["tiny"]


def test_structured_tool_calls_are_written_in_the_envs_format() -> None:
    response = openai.types.chat.ChatCompletion.model_validate(
        {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "tool_calls",
                    "message": {
                        "role": "assistant",
                        "content": "Looking first.",
                        "tool_calls": [
                            {"id": "c1", "type": "function", "function": {"name": "bash", "arguments": LS}},
                            {"id": "c2", "type": "function", "function": {"name": "submit", "arguments": ""}},
                        ],
                    },
                    "logprobs": None,
                }
            ],
        }
    )
    for tool_format in ("hermes", "qwen3_coder"):
        turn = to_turn(response, get_format(tool_format).render)
        assert turn.text.startswith("Looking first.\n")
        calls = get_format(tool_format).parse(turn.text, None)
        assert [(c.name, c.arguments) for c in calls] == [("bash", {"command": "ls"}), ("submit", {})]
        assert turn.finish_reason == "tool_calls" and turn.logprobs == []


def post(url: str, body: bytes, path: str = "/chat/completions") -> tuple[int, dict]:
    request = urllib.request.Request(url + path, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.parametrize(
    ("body", "path", "status", "message"),
    [
        (b"{not json", "/chat/completions", 400, "not JSON"),
        (b'{"messages": []}', "/chat/completions", 400, "non-empty list"),
        (b'{"messages": [{"role": "user", "content": "x"}], "stream": true}', "/chat/completions", 400, "streaming"),
        (b"{}", "/completions", 404, "no route"),
    ],
)
def test_bad_requests_get_openai_style_errors(url: str, body: bytes, path: str, status: int, message: str) -> None:
    code, reply = post(url, body, path)
    assert code == status and message in reply["error"]["message"]


def test_serve_refuses_non_loopback_hosts(hf_policy: HFPolicy) -> None:
    with pytest.raises(ValueError, match="loopback"):
        serve(hf_policy, host="0.0.0.0")
