"""Rollouts: drive a vector env with a policy and keep every model turn as one IPA chunk.

One vector step is one batched `policy.generate` call over every env that is mid-episode. A trajectory keeps its
chunks (turns) apart, each with the prompt and completion token ids and the sampler's logprobs (µ), so a learner can
recompute π_old / π_θ per chunk; and env errors (a lost sandbox, a failing verifier, an env raising) are *marked*,
not scored, so IPA's dynamic filtering can drop them.

The conversation a policy sees grows as:

    reset messages (system, user)  →  assistant: the turn's text  →  tool: the observation  →  assistant  →  ...

The observation goes back as a ``"tool"`` message, the role Hermes/Qwen-style chat templates (and the tiny test
model's) wrap in ``<tool_response>`` inside a user turn. Strict OpenAI endpoints refuse a tool message that answers
no structured tool call; for them pass ``observation_role="user"``.

Examples:
    >>> from learners.policies import ExpertPolicy                            # doctest: +SKIP
    >>> trajectories = collect("rock/Terminal-v0", ExpertPolicy(), episodes=4, num_envs=2)  # doctest: +SKIP
    >>> [(t.task_id, t.reward, len(t.chunks)) for t in trajectories]          # doctest: +SKIP
    [('find-files-3', 1.0, 3), ...]
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

import rock_gym.envs  # noqa: F401 - registers the rock/* ids
from learners.policies.base import Conversation, Policy, Turn, prompt_ids

#: `Trajectory.ending` when the collector (not the env) cut the episode because the prompt outgrew its budget.
CONTEXT_LIMIT = "context_limit"
#: `Trajectory.ending` when the vector env raised mid-step; the episode is marked an env error.
ENV_EXCEPTION = "env_exception"


@dataclass
class ChunkRecord:
    """One model turn: IPA's chunk, from one observation to the next.

    Attributes:
        index: the turn's position in its episode, from 0.
        text: what the model said: the env's action.
        prompt_ids: the prompt's token ids as the policy rendered it (empty for engines that cannot see tokens).
        completion_ids: the sampled token ids, the end-of-turn token included when the turn stopped on it.
        logprobs: per completion token, log µ(token) at sampling time.
        finish_reason: ``"stop"``, ``"length"``, or the engine's own.
        observation: what the env answered (the next tool message).
        tool_calls: the calls the env parsed, ``{"name", "arguments"}``.
        tool_results: per call ``{"tool", "exit_code", "error", "timed_out", "chars"}`` (the output itself is in
            ``observation``).
        reward: the env's reward for this step (the final reward on the last chunk; safety penalties on any).
        format_error: the env's message when the turn's tool calls could not be parsed or validated.
        safety: the safety monitor's events for this turn's calls.
        step_seconds: how long the env took to run the turn.
    """

    index: int
    text: str
    prompt_ids: list[int] = field(default_factory=list)
    completion_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    finish_reason: str = "stop"
    observation: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    tool_results: list[dict[str, Any]] = field(default_factory=list)
    reward: float = 0.0
    format_error: str | None = None
    safety: list[dict[str, Any]] = field(default_factory=list)
    step_seconds: float = 0.0


#: A model turn; the same record as a chunk.
TurnRecord = ChunkRecord


@dataclass
class Trajectory:
    """One episode: its chunks with their boundaries, its outcome, and whether the env spoiled it.

    Attributes:
        task_id: the task played.
        seed: the reset seed, when the collector seeded that reset.
        messages: the conversation the episode started from (system and user messages).
        tools: the tool schemas the policy was shown.
        chunks: one record per model turn, in order.
        reward: the episode's return (sum of step rewards: the final reward less any safety penalties).
        terminated, truncated: as the env (or the collector's context guard) ended the episode.
        ending: why it ended: the env's ``info["ending"]`` (``"submitted"``, ``"turn_limit"``, ...),
            `CONTEXT_LIMIT` or `ENV_EXCEPTION`.
        verification: the verifier's report ``{"resolved", "tests", "error"}``, when it ran.
        env_error: the env, not the policy, spoiled the episode (sandbox lost, verifier error, env raised):
            a learner must drop it rather than score it as a failure.
        error: the error's text when ``env_error``.
        seconds: wall-clock time from the reset to the end.
    """

    task_id: str
    seed: int | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    tools: list[dict[str, Any]] = field(default_factory=list)
    chunks: list[ChunkRecord] = field(default_factory=list)
    reward: float = 0.0
    terminated: bool = False
    truncated: bool = False
    ending: str | None = None
    verification: dict[str, Any] | None = None
    env_error: bool = False
    error: str | None = None
    seconds: float = 0.0

    @property
    def turns(self) -> list[ChunkRecord]:
        """The chunks, by their other name."""
        return self.chunks

    @property
    def resolved(self) -> bool:
        """The verifier ran and said the task is solved."""
        return bool(self.verification and self.verification.get("resolved"))

    @property
    def scored(self) -> bool:
        """A learner may score this episode: it ended (by the env or the context guard) without an env error."""
        return not self.env_error

    def conversation(self, observation_role: str = "tool") -> Conversation:
        """The whole conversation: the start messages, then each turn's text and the observation that followed."""
        messages = [dict(m) for m in self.messages]
        for chunk in self.chunks:
            messages.append({"role": "assistant", "content": chunk.text})
            if chunk.observation:
                messages.append({"role": observation_role, "content": chunk.observation})
        return messages

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; `Trajectory.from_dict` reads it back."""
        return {**asdict(self), "resolved": self.resolved}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Trajectory:
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "chunks"}
        return cls(**fields, chunks=[ChunkRecord(**chunk) for chunk in data.get("chunks", [])])


@dataclass
class RolloutStats:
    """Where a collection's time went; pass one to `collect` to have it filled."""

    steps: int = 0
    generate_seconds: float = 0.0
    env_seconds: float = 0.0
    turns_generated: int = 0
    resets: int = 0
    env_exceptions: int = 0


def collect(
    env_or_id: str | gym.vector.VectorEnv,
    policy: Policy,
    episodes: int,
    *,
    num_envs: int = 1,
    seed: int | None = 0,
    max_new_tokens: int = 512,
    temperature: float = 1.0,
    task_ids: Sequence[str] | None = None,
    max_prompt_tokens: int | None = None,
    observation_role: str = "tool",
    env_kwargs: Mapping[str, Any] | None = None,
    stats: RolloutStats | None = None,
    on_trajectory: Callable[[Trajectory], None] | None = None,
    max_env_exceptions: int = 3,
) -> list[Trajectory]:
    """Play `episodes` episodes with `policy` and return them in the order they were started.

    Args:
        env_or_id: a vector env made with NEXT_STEP autoreset (the default; the caller keeps and closes it), or an
            env id: the collector makes ``gym.make_vec(id, num_envs, **env_kwargs)`` and closes it at the end.
        policy: any `Policy`; ``task_ids=`` is passed to those whose ``generate`` accepts it (`ExpertPolicy`).
        episodes: how many episodes to finish; no more are started, so the result is not biased to short ones.
        num_envs: envs stepped side by side (when making the env; at most ``episodes`` are made).
        seed: the first resets get ``seed + i``; sampling gets ``seed + step``. None: unseeded.
        max_new_tokens, temperature: the policy's sampling.
        task_ids: play exactly these tasks, one episode each, in this order (repeat an id for a group);
            ``episodes`` is then ``len(task_ids)``. None: the envs draw tasks themselves.
        max_prompt_tokens: the context budget: a conversation whose prompt would exceed it is ended as truncated
            with ending `CONTEXT_LIMIT` (scored, unverified, reward 0) instead of overflowing the model.
            Counted with the policy's tokenizer when it has one, else as characters / 4.
        observation_role: the role observations are sent back with (``"tool"`` or ``"user"``).
        env_kwargs: extra arguments to ``gym.make_vec`` (``tasks``, ``backend``, ``max_turns``, ``tool_format``).
        stats: filled with timings and counts.
        on_trajectory: called with each trajectory as it ends (a progress bar).
        max_env_exceptions: vector steps that may raise (each marks the episodes in flight as env errors and
            resets every env) before the exception propagates.

    Returns:
        The trajectories, in the order their episodes started.
    """
    if task_ids is not None:
        episodes = len(task_ids)
    if episodes < 1:
        return []
    owned = isinstance(env_or_id, str)
    if isinstance(env_or_id, str):
        envs = gym.make_vec(env_or_id, num_envs=min(num_envs, episodes), **dict(env_kwargs or {}))
    else:
        envs = env_or_id
    try:
        collector = Collector(envs, policy, max_new_tokens, temperature, max_prompt_tokens, observation_role)
        collector.stats = stats or RolloutStats()
        collector.on_trajectory = on_trajectory
        collector.max_env_exceptions = max_env_exceptions
        return collector.run(episodes, seed, list(task_ids) if task_ids is not None else None)
    finally:
        if owned:
            envs.close()


class Collector:
    """The state of one `collect` call: which env plays which episode, and the conversations so far."""

    def __init__(
        self,
        envs: gym.vector.VectorEnv,
        policy: Policy,
        max_new_tokens: int,
        temperature: float,
        max_prompt_tokens: int | None,
        observation_role: str,
    ) -> None:
        mode = envs.metadata.get("autoreset_mode")
        if mode is not None and str(getattr(mode, "value", mode)) != "NextStep":
            raise ValueError(f"collect needs a vector env with NEXT_STEP autoreset, got {mode}: use the default mode")
        self.envs = envs
        self.policy = policy
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.max_prompt_tokens = max_prompt_tokens
        self.observation_role = observation_role
        self.passes_task_ids = accepts_keyword(policy.generate, "task_ids")
        self.stats = RolloutStats()
        self.on_trajectory: Callable[[Trajectory], None] | None = None
        self.max_env_exceptions = 3
        n = envs.num_envs
        #: per env: the trajectory it is playing (None: idle, or waiting for its autoreset)
        self.playing: list[Trajectory | None] = [None] * n
        self.conversations: list[Conversation] = [[] for _ in range(n)]
        self.started_at = [0.0] * n
        #: per env: its last episode ended, so its next step is NEXT_STEP's reset
        self.autoresetting = np.zeros(n, dtype=bool)

    def run(self, episodes: int, seed: int | None, queue: list[str] | None) -> list[Trajectory]:
        self.episodes, self.queue, self.seed = episodes, queue, seed
        self.started: list[Trajectory] = []
        self.finished = 0
        self._reset(list(range(self.envs.num_envs)), seed, everyone=True)
        step = 0
        while self.finished < episodes:
            self._guard_context()
            actions = self._act(None if seed is None else seed + step)
            self._step(actions)
            step += 1
        return self.started

    # -- episodes starting and ending -------------------------------------------------------------------------

    def _wants_episode(self) -> bool:
        return len(self.started) < self.episodes

    def _reset(self, indices: list[int], seed: int | None, everyone: bool = False) -> None:
        """Reset these envs now (masked resets, one call per task id so that resets run side by side).

        Envs past the episodes wanted are left alone (NEXT_STEP will reset them; they idle), unless `everyone`:
        then they are reset too, to idle with a sandbox (the first reset, and after an env exception).
        """
        groups: dict[str | None, list[int]] = {}
        recorded: set[int] = set()
        for i in indices:
            n = len(self.started) + len(recorded)
            if n < self.episodes:
                recorded.add(i)
                groups.setdefault(self.queue[n] if self.queue is not None else None, []).append(i)
            elif everyone:
                groups.setdefault(None, []).append(i)
        for task, members in groups.items():
            mask = np.zeros(self.envs.num_envs, dtype=bool)
            mask[members] = True
            seeds = [seed + i if seed is not None and mask[i] else None for i in range(self.envs.num_envs)]
            options: dict[str, Any] = {"reset_mask": mask}
            if task is not None:
                options["task_id"] = task
            started = time.perf_counter()
            _, infos = self.envs.reset(seed=seeds, options=options)  # type: ignore[arg-type]
            self.stats.env_seconds += time.perf_counter() - started
            for i in members:
                self.autoresetting[i] = False
                self._begin(i, env_info(infos, i), seeds[i], record=i in recorded)

    def _begin(self, i: int, info: dict[str, Any], seed: int | None, record: bool = True) -> None:
        """Env `i` was reset: start recording its episode, if one more is wanted."""
        self.stats.resets += 1
        if not (record and self._wants_episode()):
            self.playing[i] = None  # an autoreset we did not need: the env idles until the end
            return
        messages = [dict(m) for m in info.get("messages", [])]
        trajectory = Trajectory(task_id=str(info.get("task_id")), seed=seed, messages=messages)
        trajectory.tools = [dict(t) for t in info.get("tools", [])]
        self.started.append(trajectory)
        self.playing[i] = trajectory
        self.conversations[i] = [dict(m) for m in messages]
        self.started_at[i] = time.perf_counter()

    def _end(self, i: int, trajectory: Trajectory) -> None:
        trajectory.seconds = time.perf_counter() - self.started_at[i]
        self.playing[i] = None
        self.finished += 1
        if self.on_trajectory is not None:
            self.on_trajectory(trajectory)

    # -- one vector step --------------------------------------------------------------------------------------

    def _act(self, seed: int | None) -> list[str]:
        """One batched generate over the envs mid-episode; everyone else sends an empty (ignored) action."""
        active = [i for i, t in enumerate(self.playing) if t is not None]
        actions = [""] * self.envs.num_envs
        self.turns: dict[int, Turn] = {}
        if not active:
            return actions
        kwargs: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "temperature": self.temperature, "seed": seed}
        if self.passes_task_ids:
            kwargs["task_ids"] = [self.playing[i].task_id for i in active]  # type: ignore[union-attr]
        tools = self.playing[active[0]].tools or None  # type: ignore[union-attr]
        started = time.perf_counter()
        turns = self.policy.generate([self.conversations[i] for i in active], tools, **kwargs)
        self.stats.generate_seconds += time.perf_counter() - started
        self.stats.turns_generated += len(turns)
        for i, turn in zip(active, turns, strict=True):
            self.turns[i] = turn
            actions[i] = turn.text
        return actions

    def _step(self, actions: list[str]) -> None:
        started = time.perf_counter()
        try:
            observations, rewards, terminated, truncated, infos = self.envs.step(actions)
        except Exception as exc:  # noqa: BLE001 - the vector env closed every sandbox; mark, then start over
            self.stats.env_seconds += time.perf_counter() - started
            return self._env_exception(exc)
        self.stats.env_seconds += time.perf_counter() - started
        self.stats.steps += 1
        for i in range(self.envs.num_envs):
            info = env_info(infos, i)
            if self.autoresetting[i]:  # NEXT_STEP: this step was env i's reset
                self.autoresetting[i] = False
                self._begin(i, info, None)
                continue
            trajectory = self.playing[i]
            if trajectory is None:
                self.autoresetting[i] = bool(terminated[i] or truncated[i])
                continue
            chunk = make_chunk(len(trajectory.chunks), self.turns[i], observations[i], float(rewards[i]), info)
            trajectory.chunks.append(chunk)
            trajectory.reward += chunk.reward
            self.conversations[i] += [
                {"role": "assistant", "content": chunk.text},
                {"role": self.observation_role, "content": chunk.observation},
            ]
            if terminated[i] or truncated[i]:
                finish(trajectory, bool(terminated[i]), bool(truncated[i]), info)
                self._end(i, trajectory)
                self.autoresetting[i] = True
        if self.queue is not None:  # queued tasks: reset explicitly, with the next task id, instead
            ended = [i for i in range(self.envs.num_envs) if self.autoresetting[i]]
            if ended and self._wants_episode():
                self._reset(ended, None)

    def _env_exception(self, exc: Exception) -> None:
        """The vector env raised (and closed every sandbox): the episodes in flight are env errors."""
        self.stats.env_exceptions += 1
        if self.stats.env_exceptions > self.max_env_exceptions:
            raise exc
        for i, trajectory in enumerate(self.playing):
            if trajectory is not None:
                trajectory.truncated, trajectory.ending = True, ENV_EXCEPTION
                trajectory.env_error, trajectory.error = True, f"{type(exc).__name__}: {exc}"
                self._end(i, trajectory)
        if self.finished < self.episodes:
            self._reset(list(range(self.envs.num_envs)), None, everyone=True)

    def _guard_context(self) -> None:
        """End the episodes whose next prompt would exceed the budget, and give their envs a new episode."""
        if self.max_prompt_tokens is None:
            return
        over = []
        for i, trajectory in enumerate(self.playing):
            if trajectory is not None and self._prompt_length(i) > self.max_prompt_tokens:
                trajectory.truncated, trajectory.ending = True, CONTEXT_LIMIT
                self._end(i, trajectory)
                over.append(i)
        if over and self._wants_episode():
            self._reset(over, None)

    def _prompt_length(self, i: int) -> int:
        tokenizer = getattr(self.policy, "tokenizer", None)
        tools = self.playing[i].tools or None  # type: ignore[union-attr]
        if tokenizer is not None and getattr(tokenizer, "chat_template", None):
            return len(prompt_ids(tokenizer, self.conversations[i], tools))
        return sum(len(str(m.get("content") or "")) for m in self.conversations[i]) // 4


def make_chunk(index: int, turn: Turn, observation: str, reward: float, info: Mapping[str, Any]) -> ChunkRecord:
    """The record of one model turn and the env's answer to it."""
    results = [
        {
            "tool": r.get("tool"),
            "exit_code": r.get("exit_code"),
            "error": r.get("error"),
            "timed_out": r.get("timed_out"),
            "chars": len(r.get("output") or ""),
        }
        for r in info.get("tool_results") or []
    ]
    return ChunkRecord(
        index=index,
        text=turn.text,
        prompt_ids=list(turn.prompt_ids),
        completion_ids=list(turn.completion_ids),
        logprobs=list(turn.logprobs),
        finish_reason=turn.finish_reason,
        observation=observation,
        tool_calls=list(info.get("tool_calls") or []),
        tool_results=results,
        reward=reward,
        format_error=info.get("format_error"),
        safety=list(info.get("safety") or []),
        step_seconds=float(info.get("step_seconds") or 0.0),
    )


def finish(trajectory: Trajectory, terminated: bool, truncated: bool, info: Mapping[str, Any]) -> None:
    """Copy the ending step's outcome onto the trajectory; env and verifier errors mark it unscored."""
    trajectory.terminated, trajectory.truncated = terminated, truncated
    trajectory.ending = info.get("ending")
    trajectory.verification = info.get("verification")
    error = info.get("error") or info.get("verifier_error")
    if error:
        trajectory.env_error, trajectory.error = True, str(error)


def env_info(infos: Mapping[str, Any], i: int) -> dict[str, Any]:
    """Env `i`'s own info out of a vector env's batched infos (gymnasium's `_key` masks, nested dicts)."""
    out: dict[str, Any] = {}
    for key, value in infos.items():
        if key.startswith("_"):
            continue
        mask = infos.get(f"_{key}")
        if mask is not None and not mask[i]:
            continue
        out[key] = env_info(value, i) if isinstance(value, Mapping) else python_value(value[i])
    return out


def python_value(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def accepts_keyword(function: Callable[..., Any], name: str) -> bool:
    """Whether `function` takes keyword `name` by name (a `**kwargs` catch-all does not count: it may ignore it)."""
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return name in parameters
