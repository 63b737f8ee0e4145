"""The one typed record of the env → learner hand-off: what a step says (`StepInfo`), what a reset says
(`ResetInfo`), and an episode (`Trajectory` of `Chunk` s, in token `Segment` s), with one JSONL format.

Gymnasium's ``info`` must be a dict, so the env writes ``StepInfo(...).to_info()`` and every reader turns it back
with ``StepInfo.from_info(info)``: no step info is read by string keys outside this module.

A trajectory is one line of JSON (``"version": 2``). `load_trajectories` also reads the two older shapes: lines
written by version 1 of `RecordTrajectory` (``"turns"`` of ``"action"`` s) and the rollout collector's old dumps
(``"chunks"`` with a ``"prompt_ids"`` copy each).

Tokens. A trajectory that a tokenizing policy played holds the exact ids the policy was given and sampled. The
episode is one append-only token sequence per `Segment`: the segment's ``prompt_ids`` (the rendered request that
opened it), then per chunk its ``completion_ids`` (as sampled, the end token included when sampled) and its
``observation_ids`` (the chat template's tokens between this turn's completion and the next one's: the end of the
assistant turn the model did not sample, the observation, the next generation prompt). A new segment starts where
history was rewritten (a context policy, a template that re-renders earlier turns); `Trajectory.request_ids(k)` is
the exact request of chunk k, and `Trajectory.segment_tokens(s)` the packed sequence a learner reads.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

#: The version of the JSONL trajectory format this module writes.
RECORD_VERSION = 2


class Ending(StrEnum):
    """Why an episode ended; the env, the harness or the collector sets it."""

    SUBMITTED = "submitted"
    """The agent called `submit` (terminated; verified)."""
    TURN_LIMIT = "turn_limit"
    """The env's turn limit (truncated; verified unless the env says otherwise)."""
    SANDBOX_LOST = "sandbox_lost"
    """The sandbox died while running the agent's own call (fork bomb, ``kill -9 -1``, memory exhaustion)."""
    ENGINE_LOST = "engine_lost"
    """The container engine stopped answering, or the sandbox failed outside the agent's calls."""
    SAFETY = "safety"
    """The safety monitor terminated the episode before a call ran."""
    CONTEXT = "context"
    """The harness: the next request could not fit the token budget under the context policy."""
    LOOP = "loop"
    """The harness: the agent repeated itself past the loop limit (when configured to end the episode)."""
    ENV_EXCEPTION = "env_exception"
    """The collector: the env raised."""


class Outcome(StrEnum):
    """What a learner may make of an episode (decided by `decide_outcome`, and only there)."""

    SUCCESS = "success"
    FAILURE = "failure"
    ENV_ERROR = "env_error"
    """Spoiled by the environment: dropped and resampled, never scored."""


#: Endings the environment is to blame for. Everything else that ends an episode is the agent's doing.
ENV_ENDINGS = frozenset({Ending.ENGINE_LOST, Ending.ENV_EXCEPTION})


def decide_outcome(ending: str | None, resolved: bool, verifier_error: str | None) -> Outcome:
    """The one rule: env-caused endings and verifier errors are env errors; a resolved episode is a success; every
    other ending — the agent's own sandbox loss and safety terminations included — is a scored failure.

    >>> decide_outcome("submitted", True, None), decide_outcome("sandbox_lost", False, None)
    (<Outcome.SUCCESS: 'success'>, <Outcome.FAILURE: 'failure'>)
    >>> decide_outcome("submitted", False, "verifier timed out after 60 s")
    <Outcome.ENV_ERROR: 'env_error'>
    """
    if ending in ENV_ENDINGS or verifier_error:
        return Outcome.ENV_ERROR
    return Outcome.SUCCESS if resolved else Outcome.FAILURE


# -- what a step and a reset say ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolCallRecord:
    """One tool call as the env parsed it."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass
class ToolResult:
    """What one tool call returned, as the observation renders it."""

    tool: str
    output: str
    exit_code: int | None = 0
    timed_out: bool = False
    truncated: bool = False
    duration: float = 0.0
    error: bool = False


@dataclass(frozen=True)
class Verification:
    """The verifier's report: resolved or not, per-test outcomes, and its own error (the env is to blame)."""

    resolved: bool = False
    tests: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class StepInfo:
    """Everything `RockEnv.step` reports besides the observation and reward.

    Attributes:
        task_id: the task being played.
        turn: this step's turn number, from 1.
        tool_calls: the calls the env parsed from the action, in order.
        tool_results: per call run, its result.
        format_error: the turn's calls could not be parsed or validated (the turn still counts).
        safety: the safety monitor's events for this turn's calls (``SafetyEvent.to_dict()``).
        safety_penalty: reward taken off by the monitor this step.
        ending: why the episode ended at this step (`Ending`), or None.
        error: the error that ended it (a lost sandbox, a safety block).
        verification: the verifier's report, when it ran.
        step_seconds: wall time of the step.
        todo: the agent's todo list after this turn, when it keeps one (the ``todo`` tool).
    """

    task_id: str = ""
    turn: int = 0
    tool_calls: tuple[ToolCallRecord, ...] = ()
    tool_results: tuple[ToolResult, ...] = ()
    format_error: str | None = None
    safety: tuple[dict[str, Any], ...] = ()
    safety_penalty: float = 0.0
    ending: str | None = None
    error: str | None = None
    verification: Verification | None = None
    step_seconds: float = 0.0
    todo: tuple[str, ...] | None = None

    @property
    def verifier_error(self) -> str | None:
        """The verifier's own failure (an env error), when it ran and failed."""
        return self.verification.error if self.verification else None

    @property
    def resolved(self) -> bool:
        return bool(self.verification and self.verification.resolved)

    @property
    def outcome(self) -> Outcome | None:
        """The episode's outcome when this step ended it, else None."""
        return decide_outcome(self.ending, self.resolved, self.verifier_error) if self.ending else None

    def to_info(self) -> dict[str, Any]:
        """The gymnasium ``info`` dict (plain values; vector envs batch it per key)."""
        info = dataclasses.asdict(self)
        info["tool_calls"] = list(info["tool_calls"])
        info["tool_results"] = list(info["tool_results"])
        info["safety"] = list(info["safety"])
        info["todo"] = list(self.todo) if self.todo is not None else None
        return info

    @classmethod
    def from_info(cls, info: Mapping[str, Any]) -> StepInfo:
        """Read a step's ``info`` back (also a vector env's per-env slice, or an older record's dict)."""
        verification = info.get("verification")
        todo = info.get("todo")
        return cls(
            task_id=str(info.get("task_id") or ""),
            turn=int(info.get("turn") or 0),
            tool_calls=tuple(_call(c) for c in info.get("tool_calls") or ()),
            tool_results=tuple(_result(r) for r in info.get("tool_results") or ()),
            format_error=info.get("format_error"),
            safety=tuple(dict(e) for e in info.get("safety") or ()),
            safety_penalty=float(info.get("safety_penalty") or 0.0),
            ending=info.get("ending"),
            error=info.get("error"),
            verification=_verification(verification, info.get("verifier_error")),
            step_seconds=float(info.get("step_seconds") or 0.0),
            todo=tuple(todo) if todo is not None else None,
        )


@dataclass(frozen=True)
class PrefixStep:
    """One turn `reset` replayed from a prefix: the action, what the env answered, and its step info."""

    action: str
    observation: str
    info: StepInfo


@dataclass(frozen=True)
class ResetInfo:
    """What `RockEnv.reset` reports.

    Attributes:
        task_id: the task drawn.
        tool_format: how the env parses tool calls (``hermes``, ``qwen3_coder``, ``openai``, a plugin's).
        tools: the tools' OpenAI function schemas.
        messages: the chat messages the episode starts from (system, user) as ``{"role", "content"}``.
        prefix: the turns replayed from ``options["prefix"]``, each with its observation; the observation
            `reset` returns is the last one's (or the task prompt when there is no prefix).
    """

    task_id: str = ""
    tool_format: str = "hermes"
    tools: tuple[dict[str, Any], ...] = ()
    messages: tuple[dict[str, Any], ...] = ()
    prefix: tuple[PrefixStep, ...] = ()

    @property
    def turn(self) -> int:
        return len(self.prefix)

    def to_info(self) -> dict[str, Any]:
        info = dataclasses.asdict(self)
        info["tools"] = [dict(t) for t in self.tools]
        info["messages"] = [dict(m) for m in self.messages]
        info["prefix"] = [
            {"action": p.action, "observation": p.observation, "info": p.info.to_info()} for p in self.prefix
        ]
        info["turn"] = self.turn
        return info

    @classmethod
    def from_info(cls, info: Mapping[str, Any]) -> ResetInfo:
        prefix = tuple(
            PrefixStep(str(p["action"]), str(p["observation"]), StepInfo.from_info(p.get("info") or {}))
            for p in info.get("prefix") or ()
        )
        return cls(
            task_id=str(info.get("task_id") or ""),
            tool_format=str(info.get("tool_format") or "hermes"),
            tools=tuple(dict(t) for t in info.get("tools") or ()),
            messages=tuple(dict(m) for m in info.get("messages") or ()),
            prefix=prefix,
        )


# -- an episode -----------------------------------------------------------------------------------------------------


@dataclass
class Chunk:
    """One model turn (IPA's chunk): the action, the env's answer, and the tokens on both sides.

    Attributes:
        index: the turn's position in the episode, from 0 (replayed prefix turns included).
        action: what the model said: the env's action (decoded from ``completion_ids`` when they exist).
        observation: what the env answered.
        reward: the env's reward for this step.
        step: the env's step info.
        replayed: an expert prefix turn replayed by `reset`, not sampled (its ids are the expert's text tokenized,
            for an imitation loss; never importance-weighted).
        segment: the token segment the chunk belongs to.
        completion_ids: the sampled ids, the end token included when it was sampled.
        logprobs: per completion id, log µ at sampling time (empty for replayed chunks and text-only engines).
        finish_reason: ``"stop"`` (an end token was sampled), ``"length"``, or an engine's own.
        observation_ids: the template's ids after the completion, up to the next request: what the model did not
            sample (the assistant turn's closing when it stopped on length, the observation, the generation prompt).
        sent_observation: the observation as the model was shown it (with reminders and loop notes), when it differs.
        weight_version: which weights sampled the chunk, when the learner versions them.
    """

    index: int
    action: str
    observation: str = ""
    reward: float = 0.0
    step: StepInfo = field(default_factory=StepInfo)
    replayed: bool = False
    segment: int = 0
    completion_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    finish_reason: str = "stop"
    observation_ids: list[int] = field(default_factory=list)
    sent_observation: str | None = None
    weight_version: int | None = None

    @property
    def text(self) -> str:
        """The action, by the name the policies use."""
        return self.action

    @property
    def format_error(self) -> str | None:
        return self.step.format_error

    @property
    def safety(self) -> tuple[dict[str, Any], ...]:
        return self.step.safety


@dataclass
class Segment:
    """A stretch of the episode that is one append-only token sequence.

    Attributes:
        index: the segment's number, from 0.
        start_chunk: the first chunk it holds.
        reason: why it starts: ``"start"``, ``"template"`` (the template re-rendered earlier turns), or the context
            policy that rewrote history (``"elide"``, ``"drop"``, ``"summary"``), or ``"legacy"`` (an old record).
        prompt_ids: the request that opened it.
    """

    index: int
    start_chunk: int
    reason: str = "start"
    prompt_ids: list[int] = field(default_factory=list)


@dataclass
class EpisodeStats:
    """What the harness saw of an episode's context.

    Attributes:
        context_tokens: per sampled turn, the request's length in tokens.
        elided_tokens: tokens the context policy cut (elided, dropped or summarized away).
        segments: token segments (1 when the sequence stayed append-only).
        loops: loop warnings given.
        reminders: reminders appended to observations.
        max_context_tokens: the budget (0: none).
    """

    context_tokens: list[int] = field(default_factory=list)
    elided_tokens: int = 0
    segments: int = 1
    loops: int = 0
    reminders: int = 0
    max_context_tokens: int = 0


@dataclass
class Trajectory:
    """One episode as a learner reads it.

    Attributes:
        task_id: the task played.
        seed: the reset seed, when seeded.
        tool_format: the env's tool format.
        messages: the chat messages the episode started from (system, user).
        tools: the tool schemas the policy was shown.
        chunks: one per model turn, replayed prefix turns first.
        segments: the token segments (empty when the policy saw no tokens).
        reward: the episode's return (sum of step rewards).
        terminated, truncated: as the env (or the harness) ended it.
        ending: why it ended (`Ending`), None while unfinished.
        outcome: `decide_outcome`'s verdict; None while unfinished.
        verification: the verifier's report, when it ran.
        error: the error that ended it.
        seconds: wall time from the reset to the end.
        stats: the harness's context statistics.
        start: how many chunks were replayed from an expert prefix before sampling began.
    """

    task_id: str
    seed: int | None = None
    tool_format: str = "hermes"
    messages: list[dict[str, Any]] = field(default_factory=list)
    tools: list[dict[str, Any]] = field(default_factory=list)
    chunks: list[Chunk] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    reward: float = 0.0
    terminated: bool = False
    truncated: bool = False
    ending: str | None = None
    outcome: Outcome | None = None
    verification: Verification | None = None
    error: str | None = None
    seconds: float = 0.0
    stats: EpisodeStats = field(default_factory=EpisodeStats)
    start: int = 0

    # -- reading -------------------------------------------------------------------------------------------------

    @property
    def resolved(self) -> bool:
        return self.outcome == Outcome.SUCCESS

    @property
    def env_error(self) -> bool:
        """The env spoiled it: a learner drops it (and resamples) rather than score it."""
        return self.outcome == Outcome.ENV_ERROR

    @property
    def scored(self) -> bool:
        """It ended and a learner may score it."""
        return self.outcome in (Outcome.SUCCESS, Outcome.FAILURE)

    @property
    def verifier_error(self) -> str | None:
        return self.verification.error if self.verification else None

    @property
    def sampled(self) -> list[Chunk]:
        """The chunks the policy sampled (not replayed)."""
        return [c for c in self.chunks if not c.replayed]

    def conversation(self, observation_role: str = "tool") -> list[dict[str, Any]]:
        """The start messages, then each turn's action and the observation the model was shown."""
        messages = [dict(m) for m in self.messages]
        for chunk in self.chunks:
            messages.append({"role": "assistant", "content": chunk.action})
            shown = chunk.sent_observation if chunk.sent_observation is not None else chunk.observation
            if shown:
                messages.append({"role": observation_role, "content": shown})
        return messages

    def request_ids(self, k: int) -> list[int]:
        """The exact token ids the policy was given for chunk ``k``: its segment's opening request, then every
        earlier chunk of the segment's completion and observation ids."""
        chunk = self.chunks[k]
        segment = self.segments[chunk.segment]
        ids = list(segment.prompt_ids)
        for earlier in self.chunks[segment.start_chunk : k]:
            ids += earlier.completion_ids + earlier.observation_ids
        return ids

    def segment_tokens(self, s: int) -> SegmentTokens:
        """Segment ``s`` packed: every token once, which chunk sampled it (-1: not sampled), and µ's logprobs."""
        segment = self.segments[s]
        ids, owner, logprobs = list(segment.prompt_ids), [-1] * len(segment.prompt_ids), [0.0] * len(segment.prompt_ids)
        for chunk in self.chunks[segment.start_chunk :]:
            if chunk.segment != s:
                break
            ids += chunk.completion_ids
            owner += [chunk.index] * len(chunk.completion_ids)
            logprobs += (
                chunk.logprobs
                if len(chunk.logprobs) == len(chunk.completion_ids)
                else [0.0] * len(chunk.completion_ids)
            )
            ids += chunk.observation_ids
            owner += [-1] * len(chunk.observation_ids)
            logprobs += [0.0] * len(chunk.observation_ids)
        return SegmentTokens(s, ids, owner, logprobs)

    # -- writing and reading JSON ----------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON line's object (``"version"`` first); `Trajectory.from_dict` reads it back."""
        data = dataclasses.asdict(self)
        return {"version": RECORD_VERSION, **data, "resolved": self.resolved}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Trajectory:
        """Read any recorded shape: this version, `RecordTrajectory` v1 lines, or old rollout dumps."""
        version = data.get("version")
        if version is None:
            return _from_v1(data)
        if version != RECORD_VERSION:
            raise ValueError(
                f"trajectory record version {version} is newer than this rock_gym reads ({RECORD_VERSION})"
            )
        fields = {k: v for k, v in data.items() if k in _TRAJECTORY_FIELDS}
        fields["chunks"] = [_chunk(c) for c in data.get("chunks", [])]
        fields["segments"] = [Segment(**s) for s in data.get("segments", [])]
        fields["stats"] = EpisodeStats(**(data.get("stats") or {}))
        fields["verification"] = _verification(data.get("verification"), None)
        fields["outcome"] = Outcome(data["outcome"]) if data.get("outcome") else None
        return cls(**fields)


@dataclass(frozen=True)
class SegmentTokens:
    """One segment's packed tokens: ``ids``, per token the chunk that sampled it (``owner``, -1 for prompt and
    observation tokens), and per token µ's logprob (0.0 where not sampled)."""

    segment: int
    ids: list[int]
    owner: list[int]
    logprobs: list[float]


_TRAJECTORY_FIELDS = {f.name for f in dataclasses.fields(Trajectory)} - {"chunks", "segments", "stats"}


def write_trajectories(path: str | os.PathLike[str], trajectories: list[Trajectory]) -> None:
    """Append trajectories to a JSONL file, one line each, each line with a single ``os.write`` (O_APPEND)."""
    fd = os.open(Path(path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        for trajectory in trajectories:
            append_line(fd, trajectory.to_dict())
    finally:
        os.close(fd)


def append_line(fd: int, record: Mapping[str, Any]) -> None:
    """One JSON line in one write: a crash loses at most the line in flight, and writers may share a file."""
    data = (json.dumps(record, default=str) + "\n").encode()
    while data:  # one write for a regular file; the loop only guards a short write
        data = data[os.write(fd, data) :]


def load_trajectories(path: str | os.PathLike[str]) -> list[Trajectory]:
    """Every trajectory in a JSONL file, in order, whichever version wrote it; a torn last line is skipped."""
    return [Trajectory.from_dict(row) for row in read_lines(path)]


def read_lines(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    lines = Path(path).read_text().splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                return
            raise ValueError(f"{path}:{number} is not a JSON line: was it written by rock_gym?") from None


def replay_options(trajectory: Trajectory, turns: int) -> dict[str, Any]:
    """`reset` options that rebuild the state the recorded episode had after its first `turns` turns.

    >>> t = Trajectory("t", chunks=[Chunk(0, "pwd", replayed=True), Chunk(1, "ls"), Chunk(2, "cat a")], start=1)
    >>> replay_options(t, turns=2)
    {'task_id': 't', 'prefix': ['pwd', 'ls']}
    """
    if not 0 <= turns <= len(trajectory.chunks):
        raise ValueError(f"turns must be between 0 and {len(trajectory.chunks)} (the turns recorded), got {turns}")
    if turns and trajectory.chunks[turns - 1].step.ending:
        raise ValueError(
            f"turn {turns} ended the recorded episode, so it cannot be replayed as a prefix: use turns={turns - 1}"
        )
    return {"task_id": trajectory.task_id, "prefix": [c.action for c in trajectory.chunks[:turns]]}


# -- reading older shapes -------------------------------------------------------------------------------------------


def _call(value: Any) -> ToolCallRecord:
    if isinstance(value, ToolCallRecord):
        return value
    return ToolCallRecord(str(value.get("name")), dict(value.get("arguments") or {}))


def _result(value: Any) -> ToolResult:
    if isinstance(value, ToolResult):
        return value
    known = {f.name for f in dataclasses.fields(ToolResult)}
    fields = {k: v for k, v in value.items() if k in known}
    fields.setdefault("tool", "")
    fields.setdefault("output", "")
    return ToolResult(**fields)


def _verification(value: Any, verifier_error: str | None) -> Verification | None:
    if value is None:
        return Verification(error=verifier_error) if verifier_error else None
    if isinstance(value, Verification):
        return value
    return Verification(
        bool(value.get("resolved")), dict(value.get("tests") or {}), value.get("error") or verifier_error
    )


def _chunk(data: Mapping[str, Any]) -> Chunk:
    fields = {k: v for k, v in data.items() if k in _CHUNK_FIELDS}
    fields["step"] = StepInfo.from_info(data.get("step") or {})
    return Chunk(**fields)


_CHUNK_FIELDS = {f.name for f in dataclasses.fields(Chunk)} - {"step"}


def _from_v1(data: Mapping[str, Any]) -> Trajectory:
    """A `RecordTrajectory` v1 line (``turns`` of ``action`` s) or an old rollout dump (``chunks`` of ``text``)."""
    if "chunks" in data:
        return _from_rollout_dump(data)
    prefix = list(data.get("prefix") or [])
    chunks = [Chunk(i, str(action), replayed=True) for i, action in enumerate(prefix)]
    for turn in data.get("turns", []):
        info = StepInfo.from_info({**turn, "task_id": data.get("task_id"), "turn": len(chunks) + 1})
        chunks.append(Chunk(len(chunks), str(turn["action"]), str(turn.get("observation") or ""), turn["reward"], info))
    prompt = str(data.get("observation") or "")
    messages = [{"role": "user", "content": prompt}] if prompt and not prefix else []
    return _finished(
        data,
        Trajectory(str(data.get("task_id")), data.get("seed"), chunks=chunks, start=len(prefix), messages=messages),
    )


def _from_rollout_dump(data: Mapping[str, Any]) -> Trajectory:
    trajectory = Trajectory(
        str(data.get("task_id")),
        data.get("seed"),
        messages=list(data.get("messages") or []),
        tools=list(data.get("tools") or []),
        seconds=float(data.get("seconds") or 0.0),
    )
    for raw in data["chunks"]:
        step = StepInfo.from_info({**raw, "tool_results": [{**r, "output": ""} for r in raw.get("tool_results") or []]})
        chunk = Chunk(
            int(raw["index"]),
            str(raw.get("text") or ""),
            str(raw.get("observation") or ""),
            float(raw.get("reward") or 0.0),
            step,
            completion_ids=list(raw.get("completion_ids") or []),
            logprobs=list(raw.get("logprobs") or []),
            finish_reason=str(raw.get("finish_reason") or "stop"),
        )
        if raw.get("prompt_ids"):  # each old chunk carried its whole prompt: one segment each
            chunk.segment = len(trajectory.segments)
            trajectory.segments.append(Segment(chunk.segment, chunk.index, "legacy", list(raw["prompt_ids"])))
        trajectory.chunks.append(chunk)
    if data.get("env_error") and not data.get("error"):
        data = {**data, "error": "env error"}
    trajectory = _finished(data, trajectory)
    if data.get("env_error"):
        trajectory.outcome = Outcome.ENV_ERROR
    return trajectory


def _finished(data: Mapping[str, Any], trajectory: Trajectory) -> Trajectory:
    trajectory.reward = float(data.get("return", data.get("reward", 0.0)) or 0.0)
    trajectory.terminated, trajectory.truncated = bool(data.get("terminated")), bool(data.get("truncated"))
    trajectory.ending = data.get("ending")
    trajectory.error = data.get("error")
    trajectory.verification = _verification(data.get("verification"), data.get("verifier_error"))
    if not data.get("unfinished") and (trajectory.terminated or trajectory.truncated):
        resolved = bool(trajectory.verification and trajectory.verification.resolved)
        # Version 1 could not tell the agent's sandbox loss from the engine's: an error was always the env's.
        ending = (
            Ending.ENGINE_LOST
            if trajectory.error and trajectory.ending in (None, "sandbox_lost")
            else trajectory.ending
        )
        trajectory.outcome = decide_outcome(ending, resolved, trajectory.verifier_error)
    return trajectory


def __getattr__(name: str) -> Any:
    # `RecordTrajectory` lives with the other wrappers; it was importable from here before version 2.
    if name == "RecordTrajectory":
        from rock_gym.envs.wrappers import RecordTrajectory

        return RecordTrajectory
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
