"""`HFPolicy`: a transformers causal LM as a policy, on CPU or GPU, with the sampler's own logprobs.

What the returned logprobs mean (IPA's µ). At each step, `generate` draws the next token from
``softmax(processed_scores)``, where the processed scores are the logits after the logits processors: divided by the
temperature, then top-k and top-p filtered (filtered tokens get −inf). `Turn.logprobs[t]` is
``log_softmax(processed_scores_t)[token_t]``: the log-probability of the chosen token under the distribution it was
actually sampled from. Consequences:

* With top-k and top-p off (the default here), µ = ``log_softmax(logits / temperature)``, which
  :meth:`HFPolicy.logprobs` recomputes with ``temperature=`` the same value (to float tolerance: batched, padded
  generation with a KV cache and one unpadded forward pass round differently).
* At temperature 1.0 that is the model's plain distribution, which is what a learner's π_old and π_θ are.
  At any other temperature µ is the tempered distribution, so comparing it with π_old (IPA's mismatch mask) is
  meaningful only if the learner also computes π_old at that temperature.
* With top-k/top-p on, µ is renormalised over the kept tokens, so log µ ≥ the untruncated logprob.
* Greedy decoding (``temperature <= 0``) applies no processor: the logprobs are the model's temperature-1 logprobs
  of the argmax tokens (µ itself would be a point mass, log µ = 0).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from learners.policies.base import Conversation, Tools, Turn, prompt_ids, require
from rock_gym.agent.harness import Completion

torch = require("torch", "hf")
transformers = require("transformers", "hf")


class HFPolicy:
    """A local transformers model (a directory with ``config.json``, weights and tokenizer files) as a policy.

    Args:
        path: the model directory, loaded with ``AutoModelForCausalLM.from_pretrained`` and
            ``AutoTokenizer.from_pretrained``.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
        dtype: the weights' dtype (``torch.bfloat16``, ``"bfloat16"``); None keeps the checkpoint's.
        top_p, top_k: sampling filters; off by default so that µ is ``softmax(logits / temperature)``.
        tool_format: the tool-call format the model writes, when it is known (a run refuses an env of another
            format before it starts); None: any.

    The model's own generation defaults (temperature, repetition penalty, ...) are ignored: sampling is set by the
    arguments here and in :meth:`generate` only, so that µ has the meaning documented in this module.

    Attributes:
        model: the ``PreTrainedModel``; a learner trains it in place.
        tokenizer: its tokenizer, left-padding.
    """

    def __init__(
        self,
        path: str | Path,
        device: str = "cpu",
        dtype: Any = None,
        top_p: float = 1.0,
        top_k: int = 0,
        tool_format: str | None = None,
    ) -> None:
        path = Path(path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"no model at {path}: expected a directory with config.json (save_pretrained)")
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(path)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device)
        self.device = device
        self.top_p, self.top_k = top_p, top_k
        self.eos_ids = _eos_ids(self.model.generation_config.eos_token_id, self.tokenizer.eos_token_id)
        self.tool_format = tool_format

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
        """Sample one assistant turn per conversation (rendered with the chat template), as one left-padded batch.

        The text API over `sample`; the rollout harness calls `sample` with its own token-exact requests.
        Extra keyword arguments (a rollout's ``task_ids=``) are accepted and ignored.
        """
        prompts = [prompt_ids(self.tokenizer, conversation, tools) for conversation in conversations]
        samples = self.sample(prompts, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
        return [self._turn(prompt, s) for prompt, s in zip(prompts, samples, strict=True)]

    def sample(
        self,
        prompts: Sequence[Sequence[int]],
        *,
        max_new_tokens: int = 512,
        temperature: float = 1.0,
        seed: int | None = None,
    ) -> list[Completion]:
        """Token ids in, token ids out: one completion per prompt, as one left-padded batch.

        Each completion is cut after its first end token (kept: it was sampled); ``finish_reason`` is ``"stop"``
        then, else ``"length"``. The same ``seed`` and batch give the same completions; a row's sample depends on
        the batch it is drawn in (greedy decoding, ``temperature <= 0``, does not).
        """
        if not prompts:
            return []
        batch = self._left_pad([list(p) for p in prompts])
        config = self._generation_config(max_new_tokens, temperature)
        with _eval_mode(self.model), torch.no_grad(), _seeded(seed, self.device):
            out = self.model.generate(**batch, generation_config=config)
        new = out.sequences[:, batch["input_ids"].shape[1] :]
        scores = torch.stack(out.scores, dim=1).float()  # (batch, steps, vocab): what was sampled from
        chosen = scores.log_softmax(-1).gather(-1, new.unsqueeze(-1)).squeeze(-1)
        return [self._completion(new[i].tolist(), chosen[i].tolist()) for i in range(len(prompts))]

    def logprobs(self, prompt: Sequence[int], completion: Sequence[int], temperature: float = 1.0) -> list[float]:
        """log π(token) of each completion token given the prompt and the tokens before it, by one forward pass.

        With ``temperature`` equal to the sampling temperature (and top-k/top-p off), this recomputes
        `Turn.logprobs`; at 1.0 it is the model's own distribution (the learner's π_old / π_θ).
        """
        with _eval_mode(self.model), torch.no_grad():
            (values,) = completion_logprobs(self.model, [(prompt, completion)], temperature=temperature)
        return values.tolist()

    def update_weights(self, weights: Any) -> None:
        """Load a state dict, or another model's weights; a no-op when given ``self.model`` (trained in place)."""
        if weights is self.model:
            return
        state = weights.state_dict() if hasattr(weights, "state_dict") else weights
        self.model.load_state_dict(state)

    # -- internals --------------------------------------------------------------------------------------------

    def _left_pad(self, prompts: list[list[int]]) -> dict[str, Any]:
        width = max(len(p) for p in prompts)
        pad = self.tokenizer.pad_token_id
        ids = [[pad] * (width - len(p)) + p for p in prompts]
        mask = [[0] * (width - len(p)) + [1] * len(p) for p in prompts]
        return {
            "input_ids": torch.tensor(ids, device=self.device),
            "attention_mask": torch.tensor(mask, device=self.device),
        }

    def _generation_config(self, max_new_tokens: int, temperature: float) -> Any:
        sampling = {"do_sample": True, "temperature": temperature, "top_p": self.top_p, "top_k": self.top_k}
        return transformers.GenerationConfig(
            max_new_tokens=max_new_tokens,
            **(sampling if temperature > 0 else {"do_sample": False}),
            eos_token_id=sorted(self.eos_ids),
            pad_token_id=self.tokenizer.pad_token_id,
            output_scores=True,
            return_dict_in_generate=True,
        )

    def _completion(self, new: list[int], logprobs: list[float]) -> Completion:
        """Cut a generated row after its first end token (the rest is padding)."""
        end = next((i + 1 for i, token in enumerate(new) if token in self.eos_ids), None)
        ids = new[:end]
        return Completion(ids, logprobs[: len(ids)], "stop" if end is not None else "length")

    def _turn(self, prompt: list[int], completion: Completion) -> Turn:
        stopped = completion.finish_reason == "stop"
        text = self.tokenizer.decode(completion.ids[:-1] if stopped else completion.ids, skip_special_tokens=True)
        return Turn(text, list(prompt), completion.ids, completion.logprobs, completion.finish_reason)


def completion_logprobs(
    model: Any, pairs: Sequence[tuple[Sequence[int], Sequence[int]]], temperature: float = 1.0, pad_id: int = 0
) -> list[Any]:
    """Per pair, a tensor of log π(completion token | prompt, earlier tokens), from one right-padded forward pass.

    Differentiable (no ``no_grad`` here): a learner calls it on its model for π_θ, under ``no_grad`` for π_old.

    Args:
        model: a causal LM returning ``.logits``.
        pairs: ``(prompt_ids, completion_ids)``; each prompt must be non-empty.
        temperature: divides the logits first (1.0: the model's own distribution).
        pad_id: the id written into padding (masked out; any valid id works).
    """
    device = next(model.parameters()).device
    sequences = [list(prompt) + list(completion) for prompt, completion in pairs]
    width = max(len(s) for s in sequences)
    ids = torch.tensor([s + [pad_id] * (width - len(s)) for s in sequences], device=device)
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in sequences], device=device)
    logits = model(input_ids=ids, attention_mask=mask).logits.float() / temperature
    logprobs = logits[:, :-1].log_softmax(-1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    # Token t is predicted at position t-1.
    return [logprobs[i, len(p) - 1 : len(p) - 1 + len(c)] for i, (p, c) in enumerate(pairs)]


def _eos_ids(*values: Any) -> set[int]:
    ids: set[int] = set()
    for value in values:
        if isinstance(value, int):
            ids.add(value)
        elif value is not None:
            ids.update(value)
    return ids


@contextlib.contextmanager
def _eval_mode(model: Any) -> Iterator[None]:
    """Eval mode (no dropout) for the duration, then back to whatever the learner had set."""
    training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(training)


@contextlib.contextmanager
def _seeded(seed: int | None, device: str) -> Iterator[None]:
    """Seed torch's RNG for the duration, restoring the caller's RNG state afterwards."""
    if seed is None:
        yield
        return
    devices = [torch.device(device)] if str(device).startswith("cuda") else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
