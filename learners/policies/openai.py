"""`OpenAIPolicy`: any OpenAI-compatible chat endpoint (vLLM serve, SGLang, hosted APIs) as a policy, for evaluation.

The server renders the prompt and tokenizes, so token ids are unknown here: `Turn.prompt_ids` and
`Turn.completion_ids` stay empty, and `Turn.logprobs` holds the server's per-token logprobs when it returns them
(what they mean is the server's business: vLLM's depend on its ``--logprobs-mode``). Such turns serve evaluation,
not importance-weighted training.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from learners.policies.base import Conversation, Tools, Turn, require
from rock_gym.tools import ToolCall, get_format


class OpenAIPolicy:
    """A chat-completions endpoint through the official ``openai`` client.

    Args:
        base_url: the server's API root, e.g. ``"http://127.0.0.1:8000/v1"``.
        model: the model name to ask for; None: the first the server lists.
        api_key: sent as the bearer token (local servers ignore it).
        tool_format: how structured ``tool_calls`` in a reply are written into the turn's text (the env's format).
        concurrency: requests in flight at once for one batch.
        timeout: seconds per request.
    """

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        api_key: str = "EMPTY",
        tool_format: str = "hermes",
        concurrency: int = 8,
        timeout: float = 600.0,
    ) -> None:
        openai = require("openai", "openai")
        self.client = openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout)
        self.render = get_format(tool_format).render
        self.concurrency = concurrency
        self.model = model or self._first_model(base_url)

    def generate(
        self,
        conversations: Sequence[Conversation],
        tools: Tools | None = None,
        *,
        max_new_tokens: int = 512,
        temperature: float = 1.0,
        seed: int | None = None,
        **kwargs: Any,
    ) -> list[Turn]:
        """One request per conversation (row i with seed ``seed + i``), up to ``concurrency`` at a time."""

        def one(index: int) -> Turn:
            row_seed = None if seed is None else seed + index
            return self._complete(conversations[index], tools, max_new_tokens, temperature, row_seed)

        with ThreadPoolExecutor(max_workers=max(1, self.concurrency)) as pool:
            return list(pool.map(one, range(len(conversations))))

    def _complete(
        self, messages: Conversation, tools: Tools | None, max_new_tokens: int, temperature: float, seed: int | None
    ) -> Turn:
        request: dict[str, Any] = {"model": self.model, "messages": list(messages), "max_tokens": max_new_tokens}
        request.update(temperature=temperature, logprobs=True)
        if seed is not None:
            request["seed"] = seed
        if tools:
            request["tools"] = list(tools)
        return to_turn(self.client.chat.completions.create(**request), self.render)

    def _first_model(self, base_url: str) -> str:
        models = self.client.models.list().data
        if not models:
            raise ValueError(f"the server at {base_url} lists no models: pass model=NAME")
        return models[0].id


def to_turn(response: Any, render: Callable[[Sequence[ToolCall]], str]) -> Turn:
    """A `Turn` from a ``ChatCompletion``: the content, then any structured tool calls written by ``render``."""
    choice = response.choices[0]
    text = choice.message.content or ""
    calls = [_tool_call(call) for call in choice.message.tool_calls or []]
    if calls:
        text = f"{text}\n{render(calls)}" if text else render(calls)
    content = choice.logprobs.content if choice.logprobs is not None else None
    logprobs = [float(token.logprob) for token in content or []]
    return Turn(text=text, logprobs=logprobs, finish_reason=choice.finish_reason or "stop")


def _tool_call(call: Any) -> ToolCall:
    """Our `ToolCall` from an OpenAI ``tool_calls`` entry (arguments arrive as a JSON string)."""
    raw = call.function.arguments or "{}"
    try:
        arguments = json.loads(raw) if isinstance(raw, str) else dict(raw)
    except json.JSONDecodeError:
        arguments = {"_raw": raw}  # kept visible, so the env reports the bad call to the model
    return ToolCall(call.function.name, arguments if isinstance(arguments, dict) else {"_raw": raw})
