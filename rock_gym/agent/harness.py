"""The harness between env and policy: it builds every request, owns the context, and records exactly what was
given to the policy and what it sampled.

One `EpisodeHarness` per episode. The collector asks it for a `Request`, hands the policy's `Completion` (token
policies) or text (text-only engines) back through `take`, steps the env with the returned action, and gives the
env's answer to `observe`. The harness:

- keeps the episode as one append-only token sequence (`rock_gym.agent.tokens`): the rendered prompt, each
  completion's ids as sampled, each observation as the chat template's delta. Where the template re-renders history
  or a context policy rewrites it, a new `Segment` starts, with its reason in the record;
- keeps every request within ``max_context_tokens`` (request plus ``max_new_tokens``), counted with the policy's own
  tokenizer; when a request would not fit, the context policy (`rock_gym.agent.context`) rewrites history, and when
  even that cannot fit, the episode ends truncated with ending ``"context"``, a scored failure;
- appends loop warnings (`rock_gym.agent.loops`) and reminders (`rock_gym.agent.reminders`) to observations;
- fills the trajectory's `EpisodeStats`.

>>> from rock_gym.envs.record import ResetInfo
>>> h = EpisodeHarness(ResetInfo("t", messages=({"role": "user", "content": "hi"},)), HarnessConfig())
>>> h.request().messages
[{'role': 'user', 'content': 'hi'}]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rock_gym.agent.context import ContextPolicy, Message, parse_policy
from rock_gym.agent.loops import LoopDetector
from rock_gym.agent.reminders import Reminders
from rock_gym.agent.tokens import ChatTemplate, TemplateMismatch
from rock_gym.envs.record import (
    Chunk,
    Ending,
    EpisodeStats,
    PrefixStep,
    ResetInfo,
    Segment,
    StepInfo,
    Trajectory,
    decide_outcome,
)

#: Characters per token where no tokenizer counts (text-only engines): a budget is then approximate.
CHARS_PER_TOKEN = 4


@dataclass
class HarnessConfig:
    """How the harness manages an episode's context.

    Attributes:
        max_context_tokens: the token budget of a request plus its ``max_new_tokens``; None: unbounded.
        context: the context policy spec (`rock_gym.agent.context.parse_policy`): ``"keep"``, ``"elide"``,
            ``"drop"``, ``"summary"``, ``"elide+drop"``, with parameters as ``"elide(keep_last=3)"``.
        max_new_tokens: tokens a turn may sample.
        observation_role: the role observations go back with (``"tool"``; ``"user"`` for strict OpenAI servers).
        remind_every: append the goal and the todo list every this many turns (0: never).
        nudge_at: say so when this many turns or fewer remain (0: never).
        loop_repeats: warn when the same turn, or the same failing call, comes this many times (2 or more; 0: never).
        end_on_loop: end the episode (ending ``"loop"``, a failure) at the first loop instead of warning.
    """

    max_context_tokens: int | None = None
    context: str = "keep"
    max_new_tokens: int = 512
    observation_role: str = "tool"
    remind_every: int = 0
    nudge_at: int = 0
    loop_repeats: int = 0
    end_on_loop: bool = False


@dataclass(frozen=True)
class Completion:
    """What a token policy sampled for one request: ids (the end token included when sampled), µ's logprobs."""

    ids: list[int]
    logprobs: list[float] = field(default_factory=list)
    finish_reason: str = "stop"


@dataclass
class Request:
    """One turn's request: ``ids`` for token policies (None without a tokenizer), ``messages`` for text ones."""

    ids: list[int] | None
    messages: list[dict[str, Any]]
    max_new_tokens: int
    turn: int


class EpisodeHarness:
    """One episode's context and record.

    Args:
        reset: the env's reset info (start messages, tools, tool format, replayed prefix).
        config: the harness settings.
        tokenizer: the policy's tokenizer (with a chat template): token-exact records and budgets; None for
            text-only engines (no ids are recorded; budgets count characters / 4).
        seed: the reset seed, for the record.
        max_turns: the env's turn limit, for nudges.
        end_ids: token ids that end a turn besides the template's own (the policy's EOS ids).

    Attributes:
        trajectory: the record being built; finished once `done`.
    """

    def __init__(
        self,
        reset: ResetInfo,
        config: HarnessConfig,
        tokenizer: Any = None,
        seed: int | None = None,
        max_turns: int | None = None,
        end_ids: Sequence[int] = (),
    ) -> None:
        self.config = config
        self.max_turns = max_turns
        self.end_ids = frozenset(end_ids)
        self.policy: ContextPolicy = parse_policy(config.context)
        self.loops = LoopDetector(config.loop_repeats) if config.loop_repeats else None
        self.reminders = Reminders(config.remind_every, config.nudge_at)
        self.template = ChatTemplate(tokenizer, reset.tools) if tokenizer is not None else None
        self.messages = [Message(m["role"], str(m.get("content") or "")) for m in reset.messages]
        self.goal = next((m.content for m in self.messages if m.role == "user"), "")
        self.trajectory = Trajectory(
            reset.task_id,
            seed,
            reset.tool_format,
            messages=[dict(m) for m in reset.messages],
            tools=[dict(t) for t in reset.tools],
            stats=EpisodeStats(max_context_tokens=config.max_context_tokens or 0),
            start=len(reset.prefix),
        )
        self.done = False
        self._new_segment: str | None = "start"
        self._ids: list[int] = []  # the segment's token sequence: the next request, once the turn is observed
        self._running_text = ""  # its text: the template's full render, then what was sampled after it
        self._pending: Chunk | None = None  # the chunk taken and not yet observed
        for step in reset.prefix:
            self._replay(step)

    # -- the turn cycle ---------------------------------------------------------------------------------------------

    def request(self) -> Request | None:
        """The next request, fitted to the budget; None when the episode ended (here: nothing could fit)."""
        if self.done:
            return None
        budget = self.config.max_context_tokens
        over = budget is not None and self._request_length() + self.config.max_new_tokens > budget
        if over and not self._fit(budget - self.config.max_new_tokens):  # type: ignore[operator]
            self._end(Ending.CONTEXT, "the next request does not fit the context budget")
            return None
        ids = self._open_segment() if self.template is not None else None
        length = len(self._ids) if self.template is not None else self._text_length(self.messages)
        self.trajectory.stats.context_tokens.append(length)
        chat = [m.as_chat() for m in self.messages]
        return Request(ids, chat, self.config.max_new_tokens, len(self.trajectory.chunks))

    def take(self, completion: Completion | str) -> str:
        """Record what the policy gave for the last request; returns the env's action (the turn's text)."""
        if isinstance(completion, str):  # a text-only engine: with a tokenizer, its text is tokenized for the record
            chunk = self._chunk(completion, self._text_ids(completion))
        else:
            if self.template is None:
                raise ValueError("a token completion needs the harness to have the policy's tokenizer")
            action = self.template.content(completion.ids, self.end_ids)
            chunk = self._chunk(action, list(completion.ids), list(completion.logprobs), completion.finish_reason)
        self._pending = chunk
        return chunk.action

    def observe(self, observation: str, reward: float, terminated: bool, truncated: bool, info: dict[str, Any]) -> bool:
        """Record the env's answer to the taken turn; True when the episode is over."""
        chunk = self._pending
        if chunk is None:
            raise RuntimeError("observe() before take(): there is no turn to answer")
        self._pending = None
        step = StepInfo.from_info(info)
        chunk.observation, chunk.reward, chunk.step = observation, float(reward), step
        self.trajectory.chunks.append(chunk)
        self.trajectory.reward += chunk.reward
        if terminated or truncated:
            self._finish(step, terminated, truncated)
            return True
        notes = self._notes(step)
        if self.done:
            return True
        shown = "\n\n".join([observation, *notes]) if notes else observation
        if notes:
            chunk.sent_observation = shown
        self._append(chunk, shown, step)
        return False

    def abort(self, ending: Ending, error: str) -> None:
        """End the episode from outside (the env raised): the trajectory is finished with that ending."""
        if not self.done:
            self._end(ending, error)

    # -- the token sequence -----------------------------------------------------------------------------------------

    def _chunk(
        self,
        action: str,
        ids: list[int] | None = None,
        logprobs: list[float] | None = None,
        finish: str = "stop",
        replayed: bool = False,
    ) -> Chunk:
        segment = len(self.trajectory.segments) - 1 if self.trajectory.segments else 0
        chunk = Chunk(
            len(self.trajectory.chunks),
            action,
            replayed=replayed,
            segment=segment,
            completion_ids=ids or [],
            logprobs=logprobs or [],
            finish_reason=finish,
        )
        if self.template is not None and ids is not None:
            self._running_text += self.template.decode(ids)
            self._ids += ids
        return chunk

    def _text_ids(self, text: str) -> list[int] | None:
        """Ids for a turn given as text (an expert's, a text-only engine's): tokenized, the end token added."""
        if self.template is None:
            return None
        return self.template.encode(text) + ([self.template.end_id] if self.template.end_id is not None else [])

    def _append(self, chunk: Chunk, shown: str, step: StepInfo) -> None:
        """Add the turn and its observation to the context, and the observation's delta to the sequence."""
        before = [m.as_chat() for m in self.messages]
        turn = chunk.index
        observation = Message(self.config.observation_role, shown, turn=turn, step=step)
        self.messages += [Message("assistant", chunk.action, turn=turn), observation]
        if self.template is None or self._new_segment:
            return
        try:
            delta = self.template.delta(before, self._running_text, chunk.action, observation.as_chat())
        except TemplateMismatch:
            self._new_segment = "template"
            return
        chunk.observation_ids = delta.ids
        self._running_text = delta.text
        self._ids += delta.ids

    def _open_segment(self) -> list[int]:
        """The request's ids: a full render when a segment starts, else the running sequence."""
        assert self.template is not None
        if self._new_segment:
            ids, text = self.template.prompt([m.as_chat() for m in self.messages])
            index = len(self.trajectory.segments)
            self.trajectory.segments.append(Segment(index, len(self.trajectory.chunks), self._new_segment, ids))
            self.trajectory.stats.segments = len(self.trajectory.segments)
            self._running_text, self._ids, self._new_segment = text, list(ids), None
        return list(self._ids)

    def _replay(self, step: PrefixStep) -> None:
        """An expert prefix turn `reset` replayed: recorded as a replayed chunk with the expert's text tokenized."""
        if self.template is not None:
            self._open_segment()
        self._pending = self._chunk(step.action, self._text_ids(step.action), replayed=True)
        self.observe(step.observation, 0.0, False, False, step.info.to_info())

    # -- context ----------------------------------------------------------------------------------------------------

    def _request_length(self) -> int:
        if self.template is None:
            return self._text_length(self.messages)
        if self._new_segment:
            return len(self.template.prompt([m.as_chat() for m in self.messages])[0])
        return len(self._ids)

    def _count(self, messages: list[Message]) -> int:
        if self.template is None:
            return self._text_length(messages)
        return len(self.template.prompt([m.as_chat() for m in messages])[0])

    @staticmethod
    def _text_length(messages: list[Message]) -> int:
        return sum(len(m.content) for m in messages) // CHARS_PER_TOKEN

    def _fit(self, budget: int) -> bool:
        fitted = self.policy.fit(list(self.messages), budget, self._count)
        if fitted is None:
            return False
        if fitted.messages != self.messages:
            self.messages = list(fitted.messages)
            self.trajectory.stats.elided_tokens += fitted.cut_tokens
            self._new_segment = fitted.reason
        return True

    # -- notes and endings ------------------------------------------------------------------------------------------

    def _notes(self, step: StepInfo) -> list[str]:
        notes = []
        warning = self.loops.observe(step) if self.loops else None
        if warning:
            self.trajectory.stats.loops += 1
            if self.config.end_on_loop:
                self._end(Ending.LOOP, warning)
                return []
            notes.append(warning)
        reminder = self.reminders.after(step.turn or len(self.trajectory.chunks), self.max_turns, self.goal, step.todo)
        if reminder:
            self.trajectory.stats.reminders += 1
            notes.append(reminder)
        return notes

    def _finish(self, step: StepInfo, terminated: bool, truncated: bool) -> None:
        t = self.trajectory
        t.terminated, t.truncated, t.ending = terminated, truncated, step.ending
        t.verification, t.error = step.verification, step.error
        t.outcome = decide_outcome(step.ending, step.resolved, step.verifier_error)
        self.done = True

    def _end(self, ending: Ending, error: str) -> None:
        t = self.trajectory
        t.truncated, t.ending, t.error = True, ending, error
        t.outcome = decide_outcome(ending, False, None)
        self.done = True
