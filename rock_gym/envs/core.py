"""The rock_gym Env: a task in a sandbox, one model turn (a chunk of tool calls) per step, endings in one place."""

from __future__ import annotations

import shlex
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
from gymnasium import spaces

from rock_gym.safety import SafetyMonitor
from rock_gym.sandbox import Sandbox, SandboxConfig, SandboxError
from rock_gym.sandbox.session import CommandResult
from rock_gym.tasks import SWETask, Task, TerminalTask, load
from rock_gym.tasks import verify as grading
from rock_gym.tasks.build import build_task_image
from rock_gym.tools import Editor, FormatError, ToolCall, ToolError, get_format, list_dir_command, tool_schemas
from rock_gym.tools import validate_call as validate_tool_call

#: Every printable character of the Basic Multilingual Plane, plus newline and tab: the charset of both spaces.
#: Characters outside it (control bytes, astral-plane symbols) are shown to the model as U+FFFD.
PRINTABLE = frozenset(["\n", "\t"] + [chr(i) for i in range(0x10000) if chr(i).isprintable()])
MAX_ACTION_LENGTH = 200_000
MAX_OBSERVATION_LENGTH = 100_000
TOOL_NAMES = ("bash", "str_replace_editor", "submit")


def printable(text: str, limit: int = MAX_OBSERVATION_LENGTH) -> str:
    """`text` restricted to the spaces' charset and length (head and tail kept)."""
    clean = "".join(c if c in PRINTABLE else "\ufffd" for c in text)
    if len(clean) <= limit:
        return clean
    note = f"\n[... {len(clean) - limit + 80} characters omitted ...]\n"
    half = (limit - len(note)) // 2
    return clean[:half] + note + clean[len(clean) - half :]


@dataclass
class ToolResult:
    """What one tool call returned, as the observation renders it and `info["tool_results"]` carries it."""

    tool: str
    output: str
    exit_code: int | None = 0
    timed_out: bool = False
    truncated: bool = False
    duration: float = 0.0
    error: bool = False


@dataclass
class Episode:
    task: Task
    sandbox: Sandbox
    base_commit: str = "HEAD"
    turn: int = 0
    done: bool = False
    transcript: list[str] = field(default_factory=list)


class Ended(Exception):
    """How an episode ends; mapped to (terminated, truncated) in `RockEnv._finish`, and only there."""

    def __init__(self, reason: str, error: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error


class RockEnv(gym.Env[str, str]):
    """A task in a container sandbox; each step runs every tool call of one model turn.

    Args:
        tasks: the tasks to draw from (seeded by `reset(seed=...)`), or pick one with `options={"task_id": ID}`:
            a list of tasks or rows, or a path (Harbor task dirs, a JSONL file): see `rock_gym.tasks.load`.
        backend: "docker" or "podman"; engine_url: the engine's address (default: the local socket).
        tool_format: how the model writes tool calls: "hermes", "qwen3_coder" or "openai".
        max_turns: turns before the episode is truncated.
        call_timeout: default seconds per bash call; a call may ask for less or more, up to `max_call_timeout`.
        failure_reward: reward of a verified, unresolved episode.
        verify_on_truncation: also verify (and reward) when the turn limit truncates the episode.
        sandbox: extra `SandboxConfig` fields (memory, cpus, pids_limit, output_limit, ...).
        safety: the safety monitor checking each call before it runs (events in `info["safety"]`): default, every
            category logged; a dict of category -> "log" | "penalize" | "terminate" (and "penalty"); a
            `SafetyMonitor`; or False for none. A "terminate" call is not run: the episode ends (reason "safety",
            truncated, unverified). See `rock_gym.safety`.

    Observations and actions are `gymnasium.spaces.Text` over printable BMP characters, up to
    `MAX_OBSERVATION_LENGTH` and `MAX_ACTION_LENGTH` characters.
    """

    metadata = {"render_modes": ["ansi"]}
    system_prompt = "You are an agent working in a Linux container. Use the tools; call `submit` when done."

    def __init__(
        self,
        tasks: str | Path | Iterable[Task | dict[str, Any]] | None = None,
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
        self.tasks = load(tasks) if tasks is not None else self.default_tasks()
        if not self.tasks:
            raise ValueError("no tasks given: pass tasks=[...] (see rock_gym.tasks)")
        self.by_id = {task_id(t): t for t in self.tasks}
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

    # -- per task kind ----------------------------------------------------------------------------------------

    def default_tasks(self) -> list[Task]:
        raise ValueError("no tasks given: pass tasks=[...] (see rock_gym.tasks)")

    def prompt(self, task: Task) -> str:
        if isinstance(task, SWETask):
            return (
                f"Fix the following issue in the repository at {task.workdir}.\n\n{task.problem_statement}\n\n"
                "Edit the source files (not the tests), then call `submit`."
            )
        return f"{task.instruction}\n\nWhen you are done, call `submit`."

    def setup(self, sandbox: Sandbox, task: Task) -> str:
        """Place the task in a started sandbox (as root); returns the base commit that verification restores from.

        Where the agent's shell runs as an unprivileged `user`, the task's working directory is handed to it.
        """
        if isinstance(task, SWETask):
            base = grading.setup_swe(sandbox.as_root(), task)  # type: ignore[arg-type]
        else:
            grading.setup_terminal(sandbox.as_root(), task)  # type: ignore[arg-type]
            base = "HEAD"
        user, workdir = sandbox.config.user, getattr(task, "workdir", None)
        if user and workdir:
            sandbox.run(f"mkdir -p {shlex.quote(workdir)} && chown -R {user}: {shlex.quote(workdir)}", root=True)
        return base

    def verify(self, episode: Episode) -> dict[str, Any]:
        """Run the task's hidden tests; `{"resolved", "tests", "error"}`.

        SWE tasks are graded in a fresh sandbox that receives only the agent's change to the repository (see
        `grade_in_fresh_sandbox`); terminal (Harbor) tasks in the episode's own sandbox, by Harbor's convention, with
        the reward directory cleared and a clean environment.
        """
        sandbox, task = episode.sandbox, episode.task
        try:
            if isinstance(task, SWETask):
                grade = self.grade_in_fresh_sandbox(episode, task)
                return {"resolved": grade.resolved, "tests": grade.statuses, "error": None}
            reward = grading.grade_terminal(sandbox.as_root(), task)  # type: ignore[arg-type]
            return {"resolved": reward >= 1.0, "tests": {"tests/test.sh": reward}, "error": None}
        except (grading.VerifyError, SandboxError, OSError) as exc:
            return {"resolved": False, "tests": {}, "error": str(exc)}

    def grade_in_fresh_sandbox(self, episode: Episode, task: SWETask) -> grading.SWEGrade:
        """The agent's change as a binary diff against the base commit, graded in a new sandbox of the task's image.

        Nothing else of the episode reaches the tests: not its processes, files outside the repository, site-packages,
        PATH or environment; the tests and pytest's config files are restored (`grading.grade_swe_change`).
        """
        diff = grading.agent_diff(episode.sandbox.as_root(), task, episode.base_commit)  # type: ignore[arg-type]
        with Sandbox(episode.sandbox.config) as fresh:
            return grading.grade_swe_change(fresh.as_root(), task, diff, timeout=task_timeout(task))  # type: ignore

    # -- the Gymnasium API ------------------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        self._close_episode()
        if "task_id" in options:
            if options["task_id"] not in self.by_id:
                raise KeyError(f"unknown task_id {options['task_id']!r}; known: {sorted(self.by_id)[:10]}...")
            task = self.by_id[options["task_id"]]
        else:
            task = self.tasks[int(self.np_random.integers(len(self.tasks)))]
        config = self.sandbox_base.model_copy(update={"image": task.image, "workdir": task.workdir, "env": task.env})
        if isinstance(task, TerminalTask) and task.dockerfile:
            build_task_image(task, self.sandbox_base)
        sandbox = Sandbox(config).start()
        # The episode holds the sandbox before setup, so that a close() from another thread (Ctrl-C) reaches it.
        self.episode = Episode(task, sandbox)
        try:
            self.episode.base_commit = self.setup(sandbox, task)
        except BaseException:
            self._close_episode()
            raise
        observation = printable(self.prompt(task))
        self.episode.transcript.append(f"[task]\n{observation}")
        info = self._reset_info(task, observation)
        try:
            for turn in options.get("prefix", []):
                observation, info = self._replay(turn, info)
        except BaseException:
            self._close_episode()
            raise
        return observation, info

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        episode = self._require_episode()
        episode.turn += 1
        started = time.perf_counter()
        info: dict[str, Any] = {"task_id": task_id(episode.task), "turn": episode.turn}
        try:
            calls, results, submitted = self._run_turn(action, info)
            observation = render_results(calls, results, info.get("format_error"))
            if submitted:
                raise Ended("submitted")
            if episode.turn >= self.max_turns:
                raise Ended("turn_limit")
            reward, terminated, truncated = 0.0, False, False
        except Ended as ending:
            if ending.error:
                observation = f"[episode ended: {ending.error}]"
            reward, terminated, truncated = self._finish(ending, info)
        reward -= info.get("safety_penalty", 0.0)
        info["step_seconds"] = time.perf_counter() - started
        observation = printable(observation)
        episode.transcript.append(f"[turn {episode.turn}]\n{action}\n[observation]\n{observation}")
        return observation, reward, terminated, truncated, info

    def render(self) -> str | None:  # type: ignore[override]
        if self.render_mode != "ansi":
            return None
        return "\n\n".join(self.episode.transcript) if self.episode else ""

    def close(self) -> None:
        self._close_episode()
        super().close()

    # -- turns ------------------------------------------------------------------------------------------------

    def _run_turn(self, action: str, info: dict[str, Any]) -> tuple[list[ToolCall], list[ToolResult], bool]:
        """Parse and run every call of one turn; returns the calls, their results and whether `submit` came."""
        calls: list[ToolCall] = []
        results: list[ToolResult] = []
        info.update(tool_calls=[], tool_results=[], format_error=None, safety=[])
        try:
            if len(action) > MAX_ACTION_LENGTH:
                raise FormatError(f"your turn has {len(action)} characters, over the limit of {MAX_ACTION_LENGTH}")
            calls = get_format(self.tool_format).parse(action, None)
        except FormatError as exc:
            info["format_error"] = exc.message
            return calls, results, False
        submitted = False
        for call in calls:
            if submitted:
                break
            try:
                arguments = validate_tool_call(call).model_dump(exclude_none=True)
            except FormatError as exc:
                info["format_error"] = exc.message
                results.append(ToolResult(call.name, exc.message, exit_code=None, error=True))
                continue
            if self.monitor is not None:
                self._check_safety(call, arguments, calls, results, info)
            submitted = call.name == "submit"
            results.append(self._run_call(call.name, arguments))
        info["tool_calls"] = [{"name": c.name, "arguments": c.arguments} for c in calls]
        info["tool_results"] = [asdict(r) for r in results]
        return calls, results, submitted

    def _check_safety(
        self, call: ToolCall, arguments: dict[str, Any], calls: list[ToolCall], results: list[ToolResult], info: dict
    ) -> None:
        """Record the monitor's events and penalty for a call about to run; block it and end on "terminate"."""
        assert self.monitor is not None
        review = self.monitor.review({"name": call.name, "arguments": arguments}, self._require_episode().task.workdir)
        info["safety"] += [event.to_dict() for event in review.events]
        if review.penalty:
            info["safety_penalty"] = info.get("safety_penalty", 0.0) + review.penalty
        if review.blocked:
            results.append(ToolResult(call.name, review.blocked, exit_code=None, error=True))
            info["tool_calls"] = [{"name": c.name, "arguments": c.arguments} for c in calls]
            info["tool_results"] = [asdict(r) for r in results]
            raise Ended("safety", error=review.blocked)

    def _run_call(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        sandbox = self._require_episode().sandbox
        try:
            if name == "bash":
                timeout = min(float(arguments.get("timeout", self.call_timeout)), self.max_call_timeout)
                return from_command(sandbox.run(arguments["command"], timeout=timeout))
            if name == "str_replace_editor":
                return self._edit(sandbox, arguments)
            return ToolResult("submit", "submitted")
        except SandboxError as exc:
            raise Ended("sandbox_lost", error=f"the sandbox was lost: {exc}") from exc

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

    def _replay(self, turn: str | dict[str, Any], info: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Run a recorded turn (its action text) without endings or rewards; IPA's mid-trajectory restarts."""
        action = turn["action"] if isinstance(turn, dict) else turn
        observation, _, terminated, truncated, step_info = self.step(action)
        if terminated or truncated:
            raise ValueError(f"the replayed prefix ended the episode at turn {step_info['turn']}: drop its last turn")
        return observation, {**info, **step_info}

    # -- endings: the only place that decides terminated / truncated and the reward ----------------------------

    def _finish(self, ending: Ended, info: dict[str, Any]) -> tuple[float, bool, bool]:
        episode = self._require_episode()
        episode.done = True
        terminated = ending.reason == "submitted"
        truncated = not terminated
        info["ending"] = ending.reason
        reward = 0.0
        if ending.error:
            info["error"] = ending.error
        elif terminated or self.verify_on_truncation:
            verification = self.verify(episode)
            info["verification"] = verification
            if verification["error"]:
                info["verifier_error"] = verification["error"]
            reward = 1.0 if verification["resolved"] else self.failure_reward
        return reward, terminated, truncated

    # -- internals --------------------------------------------------------------------------------------------

    def _reset_info(self, task: Task, prompt: str) -> dict[str, Any]:
        return {
            "task_id": task_id(task),
            "tools": tool_schemas(TOOL_NAMES),
            "messages": [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": prompt}],
            "turn": 0,
        }

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


def task_id(task: Task) -> str:
    return task.instance_id if isinstance(task, SWETask) else task.task_id


def task_timeout(task: Task) -> float:
    return task.timeouts.verifier if isinstance(task, TerminalTask) else 300.0


def from_command(result: CommandResult) -> ToolResult:
    return ToolResult("bash", result.output, result.exit_code, result.timed_out, result.truncated, result.duration)


def render_results(calls: list[ToolCall], results: list[ToolResult], format_error: str | None) -> str:
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
