"""Policies: a batch of chat conversations in, one assistant `Turn` (text, token ids, sampler logprobs) each out.

``make_policy("hf:PATH" | "vllm:PATH" | "openai:URL" | "expert")`` picks an engine. The engines with heavy
dependencies (`HFPolicy`, `VLLMPolicy`, `OpenAIPolicy`) and the `ExpertPolicy` (which needs the tasks, so the sandbox
stack) are imported only when first used: the package imports with torch and transformers alone, as on a GPU machine.
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
