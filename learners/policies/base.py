"""What every policy returns and accepts: `Turn`, the `Policy` protocol, and `make_policy` to pick one by spec.

Nothing here imports torch, transformers, vllm or openai; each engine is imported when `make_policy` chooses it.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

#: A chat conversation: OpenAI-style messages, ``{"role": ..., "content": ...}``.
Conversation = list[dict[str, Any]]
#: OpenAI function schemas, as the envs give them in ``ResetInfo.tools``.
Tools = Sequence[Mapping[str, Any]]


@dataclass
class Turn:
    """One assistant turn a policy generated for one conversation.

    Attributes:
        text: the turn as the env takes it as an action (tool calls written in the env's tool format).
        prompt_ids: the prompt's token ids, as the chat template rendered the conversation.
        completion_ids: the sampled token ids, up to and including the end-of-turn token when the turn stopped on it.
        logprobs: per completion token, log µ(token): the log-probability under the distribution the token was
            actually drawn from (temperature applied; top-k/top-p renormalised). IPA's µ.
        finish_reason: ``"stop"`` (end-of-turn token), ``"length"`` (hit ``max_new_tokens``), or an engine's own.

    Engines that cannot see tokens (OpenAI-compatible servers, the expert) leave the id lists empty; a server may
    still return ``logprobs``. Such turns are for evaluation and imitation, not for importance-weighted updates.
    """

    text: str
    prompt_ids: list[int] = field(default_factory=list)
    completion_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    finish_reason: str = "stop"


@runtime_checkable
class Policy(Protocol):
    """Maps a batch of chat conversations to one assistant turn each.

    Trainable engines also have ``update_weights(model_or_state_dict)``, which the learner calls after each
    optimiser step so that the next rollouts sample from the new weights.
    """

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
        """One turn per conversation, in order; the same ``seed`` and inputs give the same turns."""
        ...


def prompt_ids(tokenizer: Any, conversation: Conversation, tools: Tools | None) -> list[int]:
    """Token ids of ``conversation`` rendered by the tokenizer's chat template, ready for the assistant to speak.

    The template is rendered to text and then tokenized without extra special tokens: the template writes any
    BOS it wants, and the same ids come back whichever engine (HF, vLLM) renders the prompt.
    """
    text = tokenizer.apply_chat_template(
        list(conversation), tools=list(tools) if tools else None, add_generation_prompt=True, tokenize=False
    )
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


# -- choosing a policy by spec ----------------------------------------------------------------------------------

#: The built-in engines (registered as policies by the built-in plugin); each module names the extra it needs when
#: its imports fail. A third-party engine comes from the `rock_gym_add_policies` hook.
ENGINES: dict[str, tuple[str, str]] = {
    "hf": ("learners.policies.hf", "HFPolicy"),
    "vllm": ("learners.policies.vllm", "VLLMPolicy"),
    "openai": ("learners.policies.openai", "OpenAIPolicy"),
    "expert": ("learners.policies.expert", "ExpertPolicy"),
}
SPECS = "hf:PATH, vllm:PATH, openai:URL, expert"


class MissingDependency(ImportError):
    """An engine's optional dependency is not installed; the message names the extra to install."""


def make_policy(spec: str, **kwargs: Any) -> Policy:
    """Build a policy from a spec: ``"hf:PATH"``, ``"vllm:PATH"``, ``"openai:URL"`` (pass ``model=``) or ``"expert"``.

    Args:
        spec: the engine, then after the first colon its target (a local model directory, or a server's base URL).
        **kwargs: passed to the engine's constructor (``device=``, ``model=``, ``tasks=``, ...).

    Raises:
        ValueError: an unknown engine, or a missing target.
        MissingDependency: the engine's package is not installed.

    Examples:
        >>> make_policy("expert").__class__.__name__
        'ExpertPolicy'
        >>> make_policy("tpu:/m")
        Traceback (most recent call last):
        ...
        ValueError: unknown policy engine 'tpu' in 'tpu:/m'; use one of: hf:PATH, vllm:PATH, openai:URL, expert
    """
    from rock_gym.plugins import get_plugin_manager

    engine, _, target = spec.partition(":")
    registry = get_plugin_manager().policies  # the built-in engines, and any a plugin registers
    if engine not in registry:
        others = sorted(set(registry.names()) - set(ENGINES))
        extra = f", or a plugin's: {', '.join(others)}" if others else ""
        raise ValueError(f"unknown policy engine {engine!r} in {spec!r}; use one of: {SPECS}{extra}")
    if engine in ENGINES and engine != "expert" and not target:
        raise ValueError(f"policy spec {spec!r} needs a target after the colon, e.g. '{engine}:/path/to/model'")
    cls = registry.load(engine)
    return cls(target, **kwargs) if target else cls(**kwargs)


def require(module: str, extra: str) -> Any:
    """Import ``module`` or fail with the pip command that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(
            f"this policy needs {module!r}, which is not installed ({exc}): pip install 'rock-gym[{extra}]'"
        ) from exc
