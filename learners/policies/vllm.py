"""`VLLMPolicy`: vLLM's offline engine (``vllm.LLM``) as a policy on GPU, with the sampler's logprobs.

Written against vLLM's documented offline API (v0.10.2 and later, the V1 engine):

* ``LLM(model=..., logprobs_mode=...)``: ``logprobs_mode="processed_logprobs"`` makes the returned logprobs those
  of the distribution actually sampled from (after temperature, top-k, top-p), which is IPA's µ and what `HFPolicy`
  returns. vLLM's default, ``"raw_logprobs"``, is the model's untempered distribution.
* ``LLM.generate([{"prompt_token_ids": ...}], [SamplingParams(...)])`` with token prompts rendered by the same chat
  template as `HFPolicy` (`learners.policies.base.prompt_ids`), so both engines see identical prompt ids.
* ``RequestOutput.prompt_token_ids`` and ``.outputs[0]``, a ``CompletionOutput`` with ``text``, ``token_ids``,
  ``finish_reason`` and ``logprobs``: per position a mapping ``token_id -> Logprob(logprob, rank, decoded_token)``
  that holds the sampled token (``SamplingParams(logprobs=k)`` adds the top k).
* ``LLM.apply_model(fn)`` runs ``fn(model)`` in every worker; ``model.load_weights(iterable of (name, tensor))`` is
  how vLLM's model classes load a checkpoint, so it takes a trainer's (HF-named) state dict. Then
  ``LLM.reset_prefix_cache()`` drops KV blocks computed with the old weights. With the V1 engine's worker in a
  separate process, ``apply_model`` pickles the function and its tensors (``VLLM_ALLOW_INSECURE_SERIALIZATION=1``
  allows it); for a trainer on the same GPU, ``VLLM_ENABLE_V1_MULTIPROCESSING=0`` keeps the engine in this process
  and the update is a plain in-place copy (TRL's "colocate" mode does the same).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from learners.policies.base import Conversation, Tools, Turn, prompt_ids, require
from rock_gym.agent.harness import Completion

#: Top-k logprobs asked per token besides the sampled one; the sampled token's is always returned.
TOP_LOGPROBS = 1


def sampling_kwargs(max_new_tokens: int, temperature: float, seed: int | None, index: int) -> dict[str, Any]:
    """``SamplingParams`` arguments for row ``index`` of a batch; each row gets its own seed (``seed + index``).

    top-k and top-p are off, so µ = softmax(logits / temperature), as in `HFPolicy`.

    Examples:
        >>> sampling_kwargs(64, 0.7, 10, 2)["seed"]
        12
    """
    return {
        "max_tokens": max_new_tokens,
        "temperature": max(temperature, 0.0),
        "top_p": 1.0,
        "top_k": -1,
        "seed": None if seed is None else seed + index,
        "logprobs": TOP_LOGPROBS,
    }


def token_prompts(prompts: Iterable[Sequence[int]]) -> list[dict[str, list[int]]]:
    """vLLM ``TokensPrompt`` dicts for ``LLM.generate``.

    Examples:
        >>> token_prompts([[1, 2]])
        [{'prompt_token_ids': [1, 2]}]
    """
    return [{"prompt_token_ids": list(ids)} for ids in prompts]


def to_turn(output: Any, prompt: Sequence[int] | None = None) -> Turn:
    """A `Turn` from a vLLM ``RequestOutput`` (its first completion).

    Raises:
        ValueError: the request was made without ``SamplingParams(logprobs=...)``, so µ is missing.
    """
    completion = output.outputs[0]
    ids = list(completion.token_ids)
    if completion.logprobs is None:
        raise ValueError("vLLM returned no logprobs: sample with SamplingParams(logprobs=0 or more)")
    logprobs = [float(position[token].logprob) for position, token in zip(completion.logprobs, ids, strict=True)]
    prompt_token_ids = output.prompt_token_ids if output.prompt_token_ids is not None else prompt
    return Turn(
        text=completion.text,
        prompt_ids=list(prompt_token_ids or []),
        completion_ids=ids,
        logprobs=logprobs,
        finish_reason=completion.finish_reason or "length",
    )


def to_completion(output: Any) -> Completion:
    """A `Completion` (ids as sampled, µ, finish reason) from a vLLM ``RequestOutput``; the harness's token path.

    vLLM reports ``"stop"`` when an end token stopped the row, and keeps that token in ``token_ids`` (unless
    ``skip_special_tokens`` hides it from the text, which the ids never are).
    """
    turn = to_turn(output)
    return Completion(turn.completion_ids, turn.logprobs, turn.finish_reason)


def load_weights(model: Any, weights: list[tuple[str, Any]]) -> Any:
    """Run in each vLLM worker by ``LLM.apply_model``: copy the trainer's named tensors into the model."""
    return model.load_weights(weights=weights)


class VLLMPolicy:
    """A local model served by vLLM's offline engine, as a policy the learner updates in place.

    Args:
        path: the model directory (a local path; no hub).
        llm: an already built ``vllm.LLM`` to use instead (then ``path`` and ``engine_kwargs`` are ignored).
        **engine_kwargs: passed to ``vllm.LLM`` (``gpu_memory_utilization=``, ``max_model_len=``, ``dtype=``, ...);
            ``logprobs_mode`` defaults to ``"processed_logprobs"``.

    Raises:
        MissingDependency: vllm is not installed.
    """

    def __init__(self, path: str | Path | None = None, *, llm: Any = None, **engine_kwargs: Any) -> None:
        if llm is None:
            if path is None:
                raise ValueError("VLLMPolicy needs a model path (or llm=an existing vllm.LLM)")
            vllm = require("vllm", "vllm")
            # apply_model ships a function to the engine's worker process; V1 refuses pickled callables otherwise.
            os.environ.setdefault("VLLM_ALLOW_INSECURE_SERIALIZATION", "1")
            engine_kwargs.setdefault("logprobs_mode", "processed_logprobs")
            llm = vllm.LLM(model=str(path), **engine_kwargs)
        self.llm = llm
        self.tokenizer = llm.get_tokenizer()
        self.eos_ids = {i for i in (getattr(self.tokenizer, "eos_token_id", None),) if i is not None}
        self.tool_format: str | None = None

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
        """One turn per conversation; row i is sampled with seed ``seed + i``, so it does not depend on the batch."""
        prompts = [prompt_ids(self.tokenizer, conversation, tools) for conversation in conversations]
        if not prompts:
            return []
        params = [self._sampling_params(max_new_tokens, temperature, seed, i) for i in range(len(prompts))]
        outputs = self.llm.generate(token_prompts(prompts), params, use_tqdm=False)
        return [to_turn(output, prompt) for output, prompt in zip(outputs, prompts, strict=True)]

    def sample(
        self,
        prompts: Sequence[Sequence[int]],
        *,
        max_new_tokens: int = 512,
        temperature: float = 1.0,
        seed: int | None = None,
    ) -> list[Completion]:
        """Token ids in, token ids out (the rollout harness's path): row i is sampled with seed ``seed + i``."""
        if not prompts:
            return []
        params = [self._sampling_params(max_new_tokens, temperature, seed, i) for i in range(len(prompts))]
        outputs = self.llm.generate(token_prompts(prompts), params, use_tqdm=False)
        return [to_completion(output) for output in outputs]

    def update_weights(self, weights: Any) -> None:
        """Load a trainer's weights (a model or a state dict with HF parameter names) into the engine."""
        state = weights.state_dict() if hasattr(weights, "state_dict") else weights
        named = [(name, tensor.detach()) for name, tensor in state.items()]
        self.llm.apply_model(functools.partial(load_weights, weights=named))
        self.llm.reset_prefix_cache()

    def _sampling_params(self, max_new_tokens: int, temperature: float, seed: int | None, index: int) -> Any:
        vllm = require("vllm", "vllm")
        return vllm.SamplingParams(**sampling_kwargs(max_new_tokens, temperature, seed, index))
