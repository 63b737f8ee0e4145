"""`SFTLearner`: behaviour cloning on expert or recorded trajectories, with the loss on the model's turns only.

Each trajectory becomes one sequence: its whole conversation rendered by the tokenizer's chat template. Only the
tokens of assistant turns (their text and the end-of-turn token) carry labels; the system prompt, the task and the
observations are masked with -100, so the model learns to act, not to predict the env.

Examples:
    >>> learner = learners.make("sft", model="/tmp/tiny", expert_episodes=4)  # doctest: +SKIP
    >>> [round(m["loss"], 2) for m in learner.train(3)]                        # doctest: +SKIP
    [6.93, 6.41, 5.88]
    >>> learner.save("/tmp/tiny-sft")                                          # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
from gymnasium.envs.registration import load_env_creator

from learners.base import Learner, LearnerConfig, load_trainer_state, trainable_policy, trainer_state
from learners.policies.base import Conversation, Tools, require
from learners.rollout import collect
from rock_gym.envs.record import Trajectory

torch = require("torch", "hf")

IGNORE = -100
"""The label of a token that carries no loss (PyTorch's cross-entropy ignore index)."""


@dataclass
class SFTConfig(LearnerConfig):
    """Behaviour cloning (fields of `LearnerConfig`: env, seed)."""

    policy: str = ""
    """The policy to train: `hf:PATH` (or a bare PATH) of a model directory in `save_pretrained` layout."""
    trajectories: str | None = None
    """A JSONL file of trajectories to clone instead of playing the expert: any version of the trajectory record
    (`rock_gym.envs.record.load_trajectories`)."""
    expert_episodes: int = 8
    """Episodes the expert plays to make the data set, when ``trajectories`` is None."""
    only_resolved: bool = True
    """Clone only episodes the verifier resolved (env-error episodes are always dropped)."""
    learning_rate: float = 1e-4
    """AdamW's step size."""
    weight_decay: float = 0.0
    """AdamW's decoupled weight decay."""
    batch_size: int = 4
    """Sequences (trajectories) per update."""
    max_length: int = 4096
    """Tokens kept per sequence; longer ones are cut at the end."""
    max_grad_norm: float = 1.0
    """Gradients are clipped to this total norm (0: no clipping)."""
    device: str = "cpu"
    """Where the model trains: "cpu", "cuda", "cuda:1", ..."""
    output_dir: str | None = None
    """Where `save()` writes when called without a path."""


@dataclass
class Example:
    """One tokenized trajectory: its ids, and per id the label (the id itself on assistant tokens, else -100)."""

    input_ids: list[int]
    labels: list[int]

    @property
    def tokens(self) -> int:
        return sum(label != IGNORE for label in self.labels)


class SFTLearner(Learner):
    """Behaviour cloning: the cross-entropy of assistant tokens, AdamW, one minibatch of sequences per update."""

    config_class = SFTConfig
    config: SFTConfig

    def __init__(self, config: LearnerConfig) -> None:
        super().__init__(config)
        self.policy, self.optimizer = trainable_policy(self)
        self.model, self.tokenizer = self.policy.model, self.policy.tokenizer
        self.examples: list[Example] = []
        self.rng = random.Random(self.config.seed)
        self.order: list[int] = []
        self.updates_done = 0

    # -- data -------------------------------------------------------------------------------------------------

    def add_trajectories(self, trajectories: Iterable[Trajectory]) -> int:
        """Keep these trajectories as examples (filtered by `only_resolved`, env errors dropped); how many kept.

        A trajectory recorded with this model's tokenizer is read as its token segments (labels on the turns' ids,
        as recorded: nothing is re-rendered); one recorded without ids is rendered by the chat template.
        """
        kept = 0
        for trajectory in trajectories:
            if trajectory.env_error or not trajectory.chunks:
                continue
            if self.config.only_resolved and not trajectory.resolved:
                continue
            for example in self.examples_of(trajectory):
                if example.tokens:
                    self.examples.append(example)
                    kept += 1
        return kept

    def examples_of(self, trajectory: Trajectory) -> list[Example]:
        if trajectory.segments:
            return [segment_example(trajectory, s, self.config.max_length) for s in range(len(trajectory.segments))]
        return [tokenize(self.tokenizer, trajectory.conversation(), trajectory.tools, self.config.max_length)]

    def load_data(self) -> None:
        """Fill the data set from ``trajectories`` or by letting the expert play (once, on the first update)."""
        if self.config.trajectories:
            self.add_trajectories(read_trajectories(self.config.trajectories, self.config.env.env_id))
        else:
            from learners.policies.expert import ExpertPolicy

            env = self.config.env
            played = collect(
                env.replace(num_envs=max(env.num_envs, 2)),
                ExpertPolicy(env.tool_format),
                self.config.expert_episodes,
                seed=self.config.seed,
                tokenizer=self.tokenizer,
            )
            self.add_trajectories(played)
        if not self.examples:
            raise ValueError("no trajectory to clone: none resolved (set only_resolved=False) or the file is empty")

    # -- training ---------------------------------------------------------------------------------------------

    def train(self, updates: int) -> list[dict[str, float]]:
        if not self.examples:
            self.load_data()
        return [self._update() for _ in range(updates)]

    def _update(self) -> dict[str, float]:
        started = time.perf_counter()
        batch = [self.examples[i] for i in self._next_indices()]
        inputs = collate(batch, self.tokenizer.pad_token_id, self.config.device)
        self.model.train()
        loss = self.model(**inputs).loss
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = clip_gradients(self.model, self.config.max_grad_norm)
        self.optimizer.step()
        self.policy.update_weights(self.model)
        self.updates_done += 1
        return {
            "update": float(self.updates_done),
            "loss": float(loss.detach()),
            "tokens": float(sum(example.tokens for example in batch)),
            "sequences": float(len(batch)),
            "grad_norm": grad_norm,
            "seconds": time.perf_counter() - started,
        }

    def _next_indices(self) -> list[int]:
        """The next `batch_size` examples of a reshuffled pass over the data set (epochs wrap around)."""
        size = min(self.config.batch_size, len(self.examples))
        while len(self.order) < size:
            epoch = list(range(len(self.examples)))
            self.rng.shuffle(epoch)
            self.order += epoch
        indices, self.order = self.order[:size], self.order[size:]
        return indices

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs besides the weights."""
        return {**trainer_state(self), "examples": self.examples, "order": self.order}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_trainer_state(self, state)
        self.examples, self.order = list(state["examples"]), list(state["order"])

    def save(self, path: str | Path | None = None) -> None:
        """Write the model and tokenizer (``save_pretrained``; load with ``HFPolicy(path)``) and ``sft_config.json``."""
        target = Path(path or self.config.output_dir or "")
        if not str(path or self.config.output_dir or ""):
            raise ValueError("save() needs a path, or output_dir in the config")
        target.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(target)
        self.tokenizer.save_pretrained(target)
        fields = dataclasses.asdict(self.config)
        state = {"config": fields, "updates": self.updates_done}
        (target / "sft_config.json").write_text(json.dumps(state, indent=2, default=str))


# -- tokenizing conversations ---------------------------------------------------------------------------------


def tokenize(tokenizer: Any, conversation: Conversation, tools: Tools | None, max_length: int) -> Example:
    """The conversation as one sequence, labels on the assistant turns' tokens only.

    An assistant turn spans from the end of the prompt the model would have seen (the template rendered with the
    generation prompt) to the end of the turn's own rendering, trailing whitespace after its end-of-turn token
    excluded. Tokens are labelled by their character offsets.

    Raises:
        ValueError: the chat template does not render a conversation as a prefix of its continuation.
    """
    tools_list = list(tools) if tools else None

    def render(messages: Sequence[Mapping[str, Any]], prompt: bool) -> str:
        return tokenizer.apply_chat_template(
            list(messages), tools=tools_list, add_generation_prompt=prompt, tokenize=False
        )

    text = render(conversation, False)
    spans = []
    for k, message in enumerate(conversation):
        if message.get("role") != "assistant":
            continue
        before, through = render(conversation[:k], True), render(conversation[: k + 1], False)
        if not (text.startswith(through) and through.startswith(before)):
            raise ValueError("the chat template does not render each conversation as a prefix of its continuation")
        end = len(through)
        while end > len(before) and through[end - 1].isspace():
            end -= 1
        spans.append((len(before), end))
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(encoded["input_ids"])[:max_length]
    labels = [
        token if any(start <= first < end for start, end in spans) else IGNORE
        for token, (first, _) in zip(ids, encoded["offset_mapping"], strict=False)
    ]
    return Example(ids, labels)


def collate(batch: Sequence[Example], pad_id: int, device: str) -> dict[str, Any]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (-100 on padding)."""
    width = max(len(example.input_ids) for example in batch)
    ids = [e.input_ids + [pad_id] * (width - len(e.input_ids)) for e in batch]
    labels = [e.labels + [IGNORE] * (width - len(e.labels)) for e in batch]
    mask = [[1] * len(e.input_ids) + [0] * (width - len(e.input_ids)) for e in batch]
    return {
        "input_ids": torch.tensor(ids, device=device),
        "attention_mask": torch.tensor(mask, device=device),
        "labels": torch.tensor(labels, device=device),
    }


def clip_gradients(model: Any, max_norm: float) -> float:
    """Clip the gradients' total norm to ``max_norm`` (0: leave them); the norm before clipping."""
    parameters = [p for p in model.parameters() if p.grad is not None]
    if not parameters:
        return 0.0
    limit = max_norm if max_norm > 0 else float("inf")
    return float(torch.nn.utils.clip_grad_norm_(parameters, limit))


# -- reading recorded trajectories ----------------------------------------------------------------------------


def segment_example(trajectory: Trajectory, s: int, max_length: int) -> Example:
    """A token segment as one example: labels on the turns' own ids (sampled or replayed), -100 elsewhere."""
    packed = trajectory.segment_tokens(s)
    labels = [token if owner >= 0 else IGNORE for token, owner in zip(packed.ids, packed.owner, strict=True)]
    return Example(packed.ids[:max_length], labels[:max_length])


def read_trajectories(path: str | Path, env_id: str = "rock/Terminal-v0") -> list[Trajectory]:
    """Trajectories from a JSONL file of any record version.

    A version-1 line keeps the task's prompt but not the system prompt nor the tools: those are the env's
    (``env_id``'s) own, as every rock_gym env's reset gives them.
    """
    from rock_gym.envs.record import load_trajectories

    trajectories = load_trajectories(path)
    for trajectory in trajectories:
        if not trajectory.tools:
            fill_env_defaults(trajectory, env_id)
    return trajectories


def fill_env_defaults(trajectory: Trajectory, env_id: str) -> None:
    """The env's system prompt and tool schemas, for a record that did not keep them."""
    from rock_gym.envs.core import TOOL_NAMES
    from rock_gym.tools import tool_schemas

    env_class: Any = load_env_creator(gym.spec(env_id).entry_point)  # type: ignore[arg-type]
    if not any(m.get("role") == "system" for m in trajectory.messages):
        trajectory.messages.insert(0, {"role": "system", "content": env_class.system_prompt})
    trajectory.tools = tool_schemas(TOOL_NAMES)
