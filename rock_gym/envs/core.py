"""The rock_gym Env: a task in a sandbox, one model turn (a chunk of tool calls) per step, endings in one place.

The env knows no kind of task: it asks the task (`rock_gym.tasks.TaskKind`) for its image, prompt, setup and
verdict. It reports through the typed record (`rock_gym.envs.record`): `StepInfo(...).to_info()` from `step`,
`ResetInfo(...).to_info()` from `reset`; `ToolResult` is the record's, re-exported here.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
from gymnasium import spaces

from rock_gym.envs.record import Ending, PrefixStep, ResetInfo, StepInfo, ToolCallRecord, ToolResult, Verification
from rock_gym.safety import SafetyMonitor
from rock_gym.sandbox import Sandbox, SandboxConfig, SandboxError
from rock_gym.sandbox.session import CommandResult
from rock_gym.tasks import TaskKind, load_kinds
from rock_gym.tasks.verify import VerifyError
from rock_gym.tools import (
    Editor,
    FormatError,
    ToolCall,
    ToolError,
    get_format,
    list_dir_command,
    render_todo,
    tool_schemas,
)
from rock_gym.tools import validate_call as validate_tool_call

__all__ = ["TOOL_NAMES", "Episode", "RockEnv", "ToolResult", "printable", "render_results"]

#: Every printable character of the Basic Multilingual Plane, plus newline and tab: the charset of both spaces.
#: Characters outside it (control bytes, astral-plane symbols) are shown to the model as U+FFFD.
PRINTABLE = frozenset(["\n", "\t"] + [chr(i) for i in range(0x10000) if chr(i).isprintable()])
MAX_ACTION_LENGTH = 200_000
MAX_OBSERVATION_LENGTH = 100_000
TOOL_NAMES = ("bash", "str_replace_editor", "submit", "todo")


def printable(text: str, limit: int = MAX_OBSERVATION_LENGTH) -> str:
    """`text` restricted to the spaces' charset and length (head and tail kept)."""
    clean = "".join(c if c in PRINTABLE else "\ufffd" for c in text)
    if len(clean) <= limit:
        return clean
    note = f"\n[... {len(clean) - limit + 80} characters omitted ...]\n"
    half = (limit - len(note)) // 2
    return clean[:half] + note + clean[len(clean) - half :]


@dataclass
class Episode:
    """The episode in play: its task, sandbox, turn count, and the agent's todo list (the `todo` tool's)."""

    task: TaskKind
    sandbox: Sandbox
    base_commit: str = "HEAD"
    turn: int = 0
    done: bool = False
    todo: tuple[str, ...] | None = None
    transcript: list[str] = field(default_factory=list)


@dataclass
class Turn:
    """What one step gathers while its calls run; it becomes the step's `StepInfo`."""

    calls: list[ToolCall] = field(default_factory=list)
    results: list[ToolResult] = field(default_factory=list)
    format_error: str | None = None
    safety: list[dict[str, Any]] = field(default_factory=list)
    penalty: float = 0.0

    def info(
        self, episode: Episode, ended: Ended | None, verification: Verification | None, seconds: float
    ) -> StepInfo:
        """The step's typed report: what the turn gathered, the episode's state after it, and how it ended."""
        return StepInfo(
            task_id=episode.task.task_id,
            turn=episode.turn,
            tool_calls=tuple(ToolCallRecord(call.name, call.arguments) for call in self.calls),
            tool_results=tuple(self.results),
            format_error=self.format_error,
            safety=tuple(self.safety),
            safety_penalty=self.penalty,
            ending=ended.reason.value if ended else None,
            error=ended.error if ended else None,
            verification=verification,
            step_seconds=seconds,
            todo=episode.todo,
        )


class Ended(Exception):
    """How an episode ends; mapped to (terminated, truncated) in `RockEnv._finish`, and only there."""

    def __init__(self, reason: Ending, error: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error


class RockEnv(gym.Env[str, str]):
    """A task in a container sandbox; each step runs every tool call of one model turn.

    Args:
        tasks: the tasks to draw from (seeded by `reset(seed=...)`), or pick one with `options={"task_id": ID}`:
            task objects of any `rock_gym.tasks.TaskKind`, rows, or a path (Harbor task dirs, a JSONL file): see
            `rock_gym.tasks.load`.
        backend: "docker" or "podman"; engine_url: the engine's address (default: the local socket).
        tool_format: how the model writes tool calls: "hermes", "qwen3_coder" or "openai".
        max_turns: turns before the episode is truncated.
        call_timeout: default seconds per bash call; a call may ask for less or more, up to `max_call_timeout`.
        failure_reward: reward of a verified, unresolved episode.
        verify_on_truncation: also verify (and reward) when the turn limit truncates the episode.
        sandbox: extra `SandboxConfig` fields (memory, cpus, pids_limit, output_limit, ...).
        safety: the safety monitor checking each call before it runs (events in `StepInfo.safety`): default, every
            category logged; a dict of category -> "log" | "penalize" | "terminate" (and "penalty"); a
            `SafetyMonitor`; or False for none. A "terminate" call is not run: the episode ends (ending "safety",
            truncated, unverified). See `rock_gym.safety`.

    Observations and actions are `gymnasium.spaces.Text` over printable BMP characters, up to
    `MAX_OBSERVATION_LENGTH` and `MAX_ACTION_LENGTH` characters. `reset(options={"prefix": [action, ...]})` replays
    recorded turns first and returns the last one's observation; `ResetInfo.prefix` holds every one of them.

    >>> env = RockEnv(tasks=terminal_tasks(seeds=[0]), backend="docker")  # doctest: +SKIP
    >>> observation, info = env.reset(seed=0)  # doctest: +SKIP
    >>> ResetInfo.from_info(info).task_id  # doctest: +SKIP
    'find-files-0'
    """

    metadata = {"render_modes": ["ansi"]}
    system_prompt = "You are an agent working in a Linux container. Use the tools; call `submit` when done."

    def __init__(
        self,
        tasks: str | Path | Iterable[TaskKind | Mapping[str, Any]] | None = None,
        backend: str = "docker",
        engine_url: str | None = None,
        tool_format: str = "hermes",
        max_turns: int = 30,
        call_timeout: float = 60.0,
        max_call_timeout: float = 600.0,
        failure_reward: float = 0.0,
        verify_on_truncation: bool = True,
        sandbox: dict[str, Any] | None = None,
        render_mode: str | None = None,
        safety: SafetyMonitor | dict[str, Any] | bool | None = None,
    ) -> None:
        self.tasks = load_kinds(tasks) if tasks is not None else self.default_tasks()
        if not self.tasks:
            raise ValueError("no tasks given: pass tasks=[...] (see rock_gym.tasks)")
        self.by_id = {task.task_id: task for task in self.tasks}
        get_format(tool_format)  # fail now on an unknown format
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.tool_format = tool_format
        self.max_turns = max_turns
        self.call_timeout = call_timeout
        self.max_call_timeout = max_call_timeout
        self.failure_reward = failure_reward
        self.verify_on_truncation = verify_on_truncation
        self.render_mode = render_mode
        self.monitor = SafetyMonitor.from_config(safety)
        self.sandbox_base = SandboxConfig(backend=backend, engine_url=engine_url, **(sandbox or {}))  # type: ignore[arg-type]
        self.action_space = spaces.Text(MAX_ACTION_LENGTH, min_length=0, charset=PRINTABLE)
        self.observation_space = spaces.Text(MAX_OBSERVATION_LENGTH, min_length=0, charset=PRINTABLE)
        self.episode: Episode | None = None

    def default_tasks(self) -> list[TaskKind]:
        raise ValueError("no tasks given: pass tasks=[...] (see rock_gym.tasks)")

    # -- the task: placed and graded by its own kind -----------------------------------------------------------

    def setup(self, sandbox: Sandbox, task: TaskKind) -> str:
        """Place the task in a started sandbox (`TaskKind.setup`); returns the base commit verification compares to.

        Where the agent's shell runs as an unprivileged `user`, the task's working directory is handed to it.
        """
        base = task.setup(sandbox)
        user, workdir = sandbox.config.user, task.workdir
        if user and workdir:
            sandbox.run(f"mkdir -p {shlex.quote(workdir)} && chown -R {user}: {shlex.quote(workdir)}", root=True)
        return base

    def verify(self, episode: Episode) -> Verification:
        """The task's verdict on what the agent left (`TaskKind.verify`); a verifier that fails says so in `error`."""
        try:
            verdict = episode.task.verify(episode.sandbox, episode.base_commit)
        except (VerifyError, SandboxError, OSError) as exc:
            # The verifier failed, not the agent: `decide_outcome` makes the episode an env error, never a failure.
            return Verification(error=str(exc))
        return Verification(verdict.resolved, dict(verdict.tests))

    # -- the Gymnasium API ------------------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        self._close_episode()
        task = self._draw(options)
        task.prepare_image(self.sandbox_base)
        config = self.sandbox_base.model_copy(update={"image": task.image, "workdir": task.workdir, "env": task.env})
        sandbox = Sandbox(config).start()
        # The episode holds the sandbox before setup, so that a close() from another thread (Ctrl-C) reaches it.
        self.episode = Episode(task, sandbox)
        try:
            self.episode.base_commit = self.setup(sandbox, task)
            prompt = printable(task.prompt())
            self.episode.transcript.append(f"[task]\n{prompt}")
            prefix = tuple(self._replay(turn) for turn in options.get("prefix", []))
        except BaseException:
            self._close_episode()
            raise
        observation = prefix[-1].observation if prefix else prompt
        return observation, self._reset_info(task, prompt, prefix).to_info()

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        observation, reward, terminated, truncated, info = self._step(action)
        return observation, reward, terminated, truncated, info.to_info()

    def render(self) -> str | None:  # type: ignore[override]
        if self.render_mode != "ansi":
            return None
        return "\n\n".join(self.episode.transcript) if self.episode else ""

    def close(self) -> None:
        self._close_episode()
        super().close()

    # -- turns ------------------------------------------------------------------------------------------------

    def _step(self, action: str) -> tuple[str, float, bool, bool, StepInfo]:
        """One turn, with its step info typed (`reset` replays a prefix through here)."""
        episode = self._require_episode()
        episode.turn += 1
        started = time.perf_counter()
        turn, ended, verification = Turn(), None, None
        try:
            submitted = self._run_turn(action, turn)
            observation = render_results(turn.results, turn.format_error)
            if submitted:
                raise Ended(Ending.SUBMITTED)
            if episode.turn >= self.max_turns:
                raise Ended(Ending.TURN_LIMIT)
            reward, terminated, truncated = 0.0, False, False
        except Ended as ending:
            ended = ending
            if ending.error:
                observation = f"[episode ended: {ending.error}]"
            reward, terminated, truncated, verification = self._finish(ending)
        info = turn.info(episode, ended, verification, time.perf_counter() - started)
        observation = printable(observation)
        episode.transcript.append(f"[turn {episode.turn}]\n{action}\n[observation]\n{observation}")
        return observation, reward - turn.penalty, terminated, truncated, info

    def _run_turn(self, action: str, turn: Turn) -> bool:
        """Parse and run every call of one turn, gathering them in `turn`; returns whether `submit` came."""
        try:
            if len(action) > MAX_ACTION_LENGTH:
                raise FormatError(f"your turn has {len(action)} characters, over the limit of {MAX_ACTION_LENGTH}")
            turn.calls = get_format(self.tool_format).parse(action, None)
        except FormatError as exc:
            turn.format_error = exc.message
            return False
        for call in turn.calls:
            try:
                arguments = validate_tool_call(call).model_dump(exclude_none=True)
            except FormatError as exc:
                turn.format_error = exc.message
                turn.results.append(ToolResult(call.name, exc.message, exit_code=None, error=True))
                continue
            if self.monitor is not None:
                self._check_safety(call, arguments, turn)
            turn.results.append(self._run_call(call.name, arguments))
            if call.name == "submit":
                return True
        return False

    def _check_safety(self, call: ToolCall, arguments: dict[str, Any], turn: Turn) -> None:
        """Record the monitor's events and penalty for a call about to run; block it and end on "terminate"."""
        assert self.monitor is not None
        review = self.monitor.review({"name": call.name, "arguments": arguments}, self._require_episode().task.workdir)
        turn.safety += [event.to_dict() for event in review.events]
        turn.penalty += review.penalty
        if review.blocked:
            turn.results.append(ToolResult(call.name, review.blocked, exit_code=None, error=True))
            raise Ended(Ending.SAFETY, error=review.blocked)

    def _run_call(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        episode = self._require_episode()
        if name == "submit":
            return ToolResult("submit", "submitted")
        if name == "todo":  # the env keeps the list: the sandbox is not touched
            episode.todo = tuple(arguments["items"])
            return ToolResult("todo", render_todo(episode.todo))
        sandbox = episode.sandbox
        try:
            if name == "bash":
                timeout = min(float(arguments.get("timeout", self.call_timeout)), self.max_call_timeout)
                return from_command(sandbox.run(arguments["command"], timeout=timeout))
            return self._edit(sandbox, arguments)
        except SandboxError as exc:
            raise lost(sandbox, exc) from exc

    def _edit(self, sandbox: Sandbox, arguments: dict[str, Any]) -> ToolResult:
        started = time.perf_counter()
        editor = Editor(sandbox, list_dir=lambda path: sandbox.run(list_dir_command(path)).output)
        try:
            output, error = editor.run(**arguments), False
        except ToolError as exc:
            output, error = exc.message, True
        return ToolResult(
            "str_replace_editor",
            output,
            exit_code=1 if error else 0,
            error=error,
            duration=time.perf_counter() - started,
        )

    def _replay(self, turn: str | Mapping[str, Any]) -> PrefixStep:
        """Run a recorded turn (its action text) without endings or rewards; IPA's mid-trajectory restarts."""
        action = str(turn["action"]) if isinstance(turn, Mapping) else turn
        observation, _, terminated, truncated, info = self._step(action)
        if terminated or truncated:
            raise ValueError(f"the replayed prefix ended the episode at turn {info.turn}: drop its last turn")
        return PrefixStep(action, observation, info)

    # -- endings: the only place that decides terminated / truncated and the reward ----------------------------

    def _finish(self, ended: Ended) -> tuple[float, bool, bool, Verification | None]:
        """(reward, terminated, truncated) of an ending, and the verifier's report when it ran."""
        episode = self._require_episode()
        episode.done = True
        terminated = ended.reason == Ending.SUBMITTED
        truncated = not terminated
        if ended.error or not (terminated or self.verify_on_truncation):
            return 0.0, terminated, truncated, None
        verification = self.verify(episode)
        return (1.0 if verification.resolved else self.failure_reward), terminated, truncated, verification

    # -- internals --------------------------------------------------------------------------------------------

    def _draw(self, options: Mapping[str, Any]) -> TaskKind:
        """The task `options["task_id"]` names, else one drawn with the env's seeded generator."""
        if "task_id" not in options:
            return self.tasks[int(self.np_random.integers(len(self.tasks)))]
        if options["task_id"] not in self.by_id:
            raise KeyError(f"unknown task_id {options['task_id']!r}; known: {sorted(self.by_id)[:10]}...")
        return self.by_id[options["task_id"]]

    def _reset_info(self, task: TaskKind, prompt: str, prefix: tuple[PrefixStep, ...]) -> ResetInfo:
        return ResetInfo(
            task_id=task.task_id,
            tool_format=self.tool_format,
            tools=tuple(tool_schemas(TOOL_NAMES)),
            messages=({"role": "system", "content": self.system_prompt}, {"role": "user", "content": prompt}),
            prefix=prefix,
        )

    def _require_episode(self) -> Episode:
        if self.episode is None:
            raise RuntimeError("call reset() before step()")
        if self.episode.done:
            raise RuntimeError("the episode has ended: call reset() before step()")
        return self.episode

    def _close_episode(self) -> None:
        if self.episode is not None:
            self.episode.sandbox.close()
            self.episode = None


def lost(sandbox: Sandbox, error: SandboxError) -> Ended:
    """The ending of a sandbox that failed while it ran one of the agent's own calls."""
    # Whose fault: the agent's own call is the likeliest killer of its sandbox (`kill -9 -1`, a fork bomb, memory
    # exhaustion), so while the engine still answers the loss is the agent's and is scored as a failure. Only an
    # engine that stopped answering is the environment's fault: that episode is an env error, dropped and resampled.
    if sandbox.engine_answers():
        return Ended(Ending.SANDBOX_LOST, f"the sandbox was lost: {error}")
    return Ended(Ending.ENGINE_LOST, f"the sandbox was lost with its engine, which stopped answering: {error}")


def from_command(result: CommandResult) -> ToolResult:
    return ToolResult("bash", result.output, result.exit_code, result.timed_out, result.truncated, result.duration)


def render_results(results: list[ToolResult], format_error: str | None) -> str:
    """The observation: every call's result in call order, with exit code, timeout and truncation marks."""
    if not results and format_error:
        return f"[format error] {format_error}"
    parts = []
    for number, result in enumerate(results, 1):
        marks = [f"exit {result.exit_code}" if result.exit_code is not None else "no exit code"]
        if result.error:
            marks = ["error"]
        if result.timed_out:
            marks.append("timed out")
        if result.truncated:
            marks.append("output truncated")
        parts.append(f"[{number}] {result.tool} ({', '.join(marks)})\n{result.output}")
    return "\n".join(parts)
