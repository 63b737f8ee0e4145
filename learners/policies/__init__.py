"""Policies: a batch of chat conversations in, one assistant `Turn` (text, token ids, sampler logprobs) each out.

``make_policy("hf:PATH" | "vllm:PATH" | "openai:URL" | "expert")`` picks an engine. The engines with heavy
dependencies (`HFPolicy`, `VLLMPolicy`, `OpenAIPolicy`) are imported only when first used.
"""

from __future__ import annotations

import importlib
from typing import Any

from learners.policies.base import (
    ENGINES,
    Conversation,
    MissingDependency,
    Policy,
    Tools,
    Turn,
    make_policy,
    prompt_ids,
)
from learners.policies.expert import ExpertPolicy

_LAZY = {class_name: module for module, class_name in ENGINES.values()}

__all__ = [
    "Conversation",
    "ExpertPolicy",
    "HFPolicy",
    "MissingDependency",
    "OpenAIPolicy",
    "Policy",
    "Tools",
    "Turn",
    "VLLMPolicy",
    "make_policy",
    "prompt_ids",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
