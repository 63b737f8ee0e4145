"""Batched sampling from a transformers causal LM with a static KV cache and a compiled decode step.

`generate` spends most of a small model's decode step in Python: a cache that grows by concatenation, logits
processors, stopping checks that wait on the GPU, and with ``output_scores`` a full-vocabulary copy per step.
`StaticSampler` keeps the KV cache in fixed tensors (transformers' ``StaticCache``), runs each decode step as one
compiled graph (``torch.compile(mode="reduce-overhead")``: CUDA graphs on a GPU), and computes the sampled token's
log-probability on the fly, so it returns what `HFPolicy.sample` returns (ids, and µ: the log-probability under the
distribution each token was drawn from, ``log_softmax(logits / temperature)``; greedy: the temperature-1 log-prob).

Prompts are left-padded; each row's position ids start at its first real token, and an explicit attention mask keeps
the padding out, so a row's tokens do not depend on the other rows' lengths (greedy decoding gives what ``generate``
gives). Imports torch and transformers only (no sandbox stack), so benchmarks on a bare GPU machine can use it.

Examples:
    >>> sampler = StaticSampler(model)                                                # doctest: +SKIP
    >>> ids, logprobs = sampler.sample([[1, 2, 3], [4]], max_new_tokens=8, seed=0)    # doctest: +SKIP
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
import transformers


class StaticSampler:
    """Samples token ids and their log-probabilities, batch by batch, reusing one static cache and compiled step.

    Args:
        model: a transformers causal LM with full attention in every layer (``base_model`` and an output head).
        compile: compile the decode step (None: on CUDA only; compiling on CPU works but takes long).
        mode: ``torch.compile``'s mode; "reduce-overhead" captures the step in a CUDA graph.
    """

    def __init__(self, model: Any, compile: bool | None = None, mode: str = "reduce-overhead") -> None:
        kinds = set(getattr(model.config, "layer_types", None) or ["full_attention"])
        if kinds != {"full_attention"}:
            raise NotImplementedError(f"StaticSampler handles full attention only, not {sorted(kinds)}: use generate")
        attention = getattr(model.config, "_attn_implementation", "sdpa")
        if attention not in ("sdpa", "eager"):
            raise ValueError(f"StaticSampler masks padding with a 4D mask: load the model with sdpa, not {attention}")
        self.model = model
        self.trunk = model.base_model
        self.head = model.get_output_embeddings()
        parameters = inspect.signature(self.trunk.forward).parameters
        self.cache_arg = "cache" if "cache" in parameters else "past_key_values"
        self.pass_cache_position = "cache_position" in parameters  # transformers < 5 writes the cache by position
        self.device = next(model.parameters()).device
        self.compile = self.device.type == "cuda" if compile is None else compile
        self.step = torch.compile(self._step, mode=mode, dynamic=False) if self.compile else self._step
        self.cache: Any = None
        self.shape: tuple[int, int] | None = None

    @torch.no_grad()
    def sample(
        self,
        prompts: Sequence[Sequence[int]],
        max_new_tokens: int,
        temperature: float = 1.0,
        pad_id: int = 0,
        eos_ids: Sequence[int] = (),
        seed: int | None = None,
    ) -> tuple[Any, Any]:
        """Sample up to ``max_new_tokens`` tokens after each prompt, as one batch.

        Returns:
            ``(ids, logprobs)``, two (batch, steps) tensors: the sampled tokens and log µ of each. A row that sampled
            an end token (``eos_ids``, kept) is padded with ``pad_id`` and log-prob 0 after it; sampling stops early
            once every row has ended. ``temperature <= 0`` decodes greedily.
        """
        ids, keep = self._left_pad(prompts, pad_id)
        batch, width = ids.shape
        total = width + max_new_tokens
        cache = self._fresh_cache(batch, total)
        keep_all = torch.ones(batch, total, dtype=torch.bool, device=self.device)
        keep_all[:, :width] = keep
        start = (~keep).sum(1, keepdim=True)  # each row's first real token
        position = (torch.arange(width, device=self.device) - start).clamp(min=0)
        columns = torch.arange(total, device=self.device)
        generator = torch.Generator(self.device).manual_seed(seed) if seed is not None else None
        eos = torch.tensor(sorted(set(eos_ids)), dtype=torch.long, device=self.device)
        done = torch.zeros(batch, dtype=torch.bool, device=self.device)
        tokens, logprobs = [], []
        training = self.model.training
        self.model.eval()
        try:
            logits = self._prefill(ids, position, keep_all, columns, cache)
            for t in range(max_new_tokens):
                token, logp = _draw(logits, temperature, generator)
                tokens.append(torch.where(done, pad_id, token))
                logprobs.append(torch.where(done, 0.0, logp))
                done = done | torch.isin(token, eos)
                if t + 1 == max_new_tokens or (eos.numel() and t % 16 == 15 and bool(done.all())):
                    break
                here = width + t  # the column the new token is written to
                mask = (keep_all & (columns <= here))[:, None, None, :]
                if self.compile:
                    torch.compiler.cudagraph_mark_step_begin()
                logits = self.step(token[:, None], position[:, -1:] + t + 1, mask, columns[here : here + 1], cache)
        finally:
            self.model.train(training)
        return torch.stack(tokens, 1), torch.stack(logprobs, 1)

    def _prefill(self, ids: Any, position: Any, keep_all: Any, columns: Any, cache: Any) -> Any:
        """Run the prompts (uncompiled: one call of its own shape) and return the next-token logits."""
        width = ids.shape[1]
        query = columns[:width, None]
        # A padding query attends to itself alone: a fully masked row would give NaN states, whose cached values
        # would then poison the real rows (NaN times a zero attention weight is NaN).
        mask = ((columns[None, :] <= query) & keep_all[:, None, :]) | (columns[None, :] == query)
        return self._step(ids, position, mask[:, None], columns[:width], cache)

    def _step(self, ids: Any, position: Any, mask: Any, cache_position: Any, cache: Any) -> Any:
        extra = {"cache_position": cache_position} if self.pass_cache_position else {}
        out = self.trunk(
            input_ids=ids,
            position_ids=position,
            attention_mask=mask,
            use_cache=True,
            **{self.cache_arg: cache},
            **extra,
        )
        return self.head(out.last_hidden_state[:, -1])

    def _fresh_cache(self, batch: int, total: int) -> Any:
        """The static cache, emptied; reused while the batch shape stays (a new one would recompile the step)."""
        if self.cache is not None and self.shape == (batch, total):
            self.cache.reset()
            return self.cache
        self.cache = transformers.StaticCache(config=self.model.config, max_cache_len=total)
        self.shape = (batch, total)
        return self.cache

    def _left_pad(self, prompts: Sequence[Sequence[int]], pad_id: int) -> tuple[Any, Any]:
        if not prompts or not all(prompts):
            raise ValueError("StaticSampler needs at least one prompt, and no empty prompt")
        width = max(len(p) for p in prompts)
        ids = [[pad_id] * (width - len(p)) + list(p) for p in prompts]
        keep = [[False] * (width - len(p)) + [True] * len(p) for p in prompts]
        return (
            torch.tensor(ids, dtype=torch.long, device=self.device),
            torch.tensor(keep, dtype=torch.bool, device=self.device),
        )


def _draw(logits: Any, temperature: float, generator: Any) -> tuple[Any, Any]:
    """The next token of each row and its log-probability under the distribution it was drawn from."""
    if temperature <= 0:
        logp = logits.float().log_softmax(-1)
        token = logp.argmax(-1)
    else:
        logp = (logits.float() / temperature).log_softmax(-1)
        # The exponential race: argmax(p / E) with E ~ Exp(1) draws from p (Gumbel-max), with no CPU round trip.
        noise = torch.empty_like(logp).exponential_(generator=generator)
        token = (logp - noise.log()).argmax(-1)
    return token, logp.gather(-1, token[:, None]).squeeze(-1)
