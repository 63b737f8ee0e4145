"""Evaluate a policy in a rock_gym env: success rate with a Wilson interval, a per-task table, errors, timings.

Env errors (a lost sandbox, a verifier error) are counted apart and left out of the success rate: they say nothing
about the policy.

Examples:
    >>> report = evaluate(EnvConfig("rock/Terminal-v0", num_envs=2), "expert", episodes=4)   # doctest: +SKIP
    >>> report.success_rate, report.interval                                    # doctest: +SKIP
    (1.0, (0.51, 1.0))
    >>> wilson_interval(8, 10)
    (0.4902, 0.9433)
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from learners.config import EnvConfig
from learners.policies.base import Policy, make_policy
from learners.rollout import RolloutStats, collect
from rock_gym.agent.harness import HarnessConfig
from rock_gym.envs.record import Ending, Trajectory

#: z of a two-sided 95% interval.
Z95 = 1.959963984540054


def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (95% by default), rounded to 4 places; (0, 1) for none."""
    if trials == 0:
        return (0.0, 1.0)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return (round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4))


@dataclass
class TaskRow:
    """One task's line of the report."""

    task_id: str
    episodes: int = 0
    successes: int = 0
    env_errors: int = 0
    mean_reward: float = 0.0
    mean_turns: float = 0.0


@dataclass
class EvalReport:
    """What `evaluate` found.

    Attributes:
        env_id, policy: what was evaluated.
        episodes: episodes played; scored: those without an env error (the success rate's denominator).
        successes: scored episodes the verifier resolved.
        success_rate, interval: successes / scored and its Wilson 95% interval.
        mean_reward, mean_turns: over scored episodes.
        env_errors: episodes an env error spoiled, with their messages in ``errors``.
        format_errors: turns whose tool calls could not be parsed or validated.
        context_limits: episodes the harness ended because no request could fit its token budget.
        context: the harness's statistics: mean and max request tokens, elided tokens, segments, loop warnings and
            reminders per episode (means over episodes).
        endings: how many episodes ended each way (``submitted``, ``turn_limit``, ...).
        safety: safety-monitor events by category (empty when the env has no monitor).
        tasks: one row per task.
        seconds: wall-clock total; generate_seconds and env_seconds: where it went.
    """

    env_id: str
    policy: str
    episodes: int = 0
    scored: int = 0
    successes: int = 0
    success_rate: float = 0.0
    interval: tuple[float, float] = (0.0, 1.0)
    mean_reward: float = 0.0
    mean_turns: float = 0.0
    env_errors: int = 0
    errors: list[str] = field(default_factory=list)
    format_errors: int = 0
    context_limits: int = 0
    context: dict[str, float] = field(default_factory=dict)
    endings: dict[str, int] = field(default_factory=dict)
    safety: dict[str, int] = field(default_factory=dict)
    tasks: list[TaskRow] = field(default_factory=list)
    seconds: float = 0.0
    generate_seconds: float = 0.0
    env_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")


def summarize(env_id: str, policy: str, trajectories: Sequence[Trajectory]) -> EvalReport:
    """The report over these trajectories (timings left at 0)."""
    scored = [t for t in trajectories if not t.env_error]
    successes = sum(t.resolved for t in scored)
    report = EvalReport(env_id, policy, episodes=len(trajectories), scored=len(scored), successes=successes)
    if scored:
        report.success_rate = successes / len(scored)
        report.mean_reward = sum(t.reward for t in scored) / len(scored)
        report.mean_turns = sum(len(t.chunks) for t in scored) / len(scored)
    report.interval = wilson_interval(successes, len(scored))
    report.env_errors = len(trajectories) - len(scored)
    report.errors = [f"{t.task_id}: {t.error}" for t in trajectories if t.env_error]
    report.format_errors = sum(c.format_error is not None for t in trajectories for c in t.chunks)
    report.context_limits = sum(t.ending == Ending.CONTEXT for t in trajectories)
    report.context = context_summary(trajectories)
    report.endings = dict(Counter(str(t.ending) for t in trajectories))
    report.safety = dict(Counter(str(e.get("category")) for t in trajectories for c in t.chunks for e in c.safety))
    report.tasks = task_rows(trajectories)
    return report


def context_summary(trajectories: Sequence[Trajectory]) -> dict[str, float]:
    """The harness's per-episode statistics, averaged over episodes (max request tokens: over all)."""
    if not trajectories:
        return {}
    requests = [n for t in trajectories for n in t.stats.context_tokens]
    n = len(trajectories)
    return {
        "mean_request_tokens": sum(requests) / len(requests) if requests else 0.0,
        "max_request_tokens": float(max(requests, default=0)),
        "elided_tokens": sum(t.stats.elided_tokens for t in trajectories) / n,
        "segments": sum(t.stats.segments for t in trajectories) / n,
        "loops": sum(t.stats.loops for t in trajectories) / n,
        "reminders": sum(t.stats.reminders for t in trajectories) / n,
    }


def task_rows(trajectories: Sequence[Trajectory]) -> list[TaskRow]:
    """Per task, sorted by id: episodes, successes and env errors; mean reward and turns over scored episodes."""
    by_task: dict[str, list[Trajectory]] = {}
    for trajectory in trajectories:
        by_task.setdefault(trajectory.task_id, []).append(trajectory)
    rows = []
    for task_id in sorted(by_task):
        played = by_task[task_id]
        scored = [t for t in played if not t.env_error]
        row = TaskRow(task_id, episodes=len(played), env_errors=len(played) - len(scored))
        row.successes = sum(t.resolved for t in scored)
        if scored:
            row.mean_reward = sum(t.reward for t in scored) / len(scored)
            row.mean_turns = sum(len(t.chunks) for t in scored) / len(scored)
        rows.append(row)
    return rows


def evaluate(
    env: EnvConfig | str,
    policy: str | Policy,
    episodes: int,
    *,
    seed: int | None = 0,
    model: str | None = None,
    temperature: float = 1.0,
    harness: HarnessConfig | None = None,
    on_trajectory: Callable[[Trajectory], None] | None = None,
) -> EvalReport:
    """Play `episodes` episodes with a policy and report how it did.

    Args:
        env: the envs (`EnvConfig`: env id, tasks, backend, num_envs, max_turns, tool format), or an env id.
        policy: a spec for `make_policy` (``"hf:PATH"``, ``"openai:URL"``, ``"expert"``) or a policy.
        episodes: episodes to play.
        seed: seeds the resets and the sampling.
        model: the model name an ``openai:`` server is asked for.
        temperature: sampling.
        harness: the harness's context settings (budget, context policy, max_new_tokens, ...). For ``openai:``
            servers observations go back as ``"user"`` messages unless set otherwise (strict servers refuse tool
            messages that answer no structured call).
        on_trajectory: called as each episode ends.
    """
    env = EnvConfig.coerce(env)
    spec = policy if isinstance(policy, str) else type(policy).__name__
    if isinstance(policy, str):
        policy = make_policy(policy, **policy_kwargs(policy, model, env.tasks, env.tool_format))
    if harness is None:
        harness = HarnessConfig(observation_role="user" if spec.startswith("openai:") else "tool")
    stats = RolloutStats()
    started = time.perf_counter()
    trajectories = collect(
        env,
        policy,
        episodes,
        seed=seed,
        temperature=temperature,
        harness=harness,
        stats=stats,
        on_trajectory=on_trajectory,
    )
    report = summarize(env.env_id, spec, trajectories)
    report.seconds = time.perf_counter() - started
    report.generate_seconds, report.env_seconds = stats.generate_seconds, stats.env_seconds
    return report


def policy_kwargs(spec: str, model: str | None, tasks: Any, tool_format: str = "hermes") -> dict[str, Any]:
    """Constructor arguments a policy spec needs: the server's model name, the expert's tasks, the tool format."""
    engine = spec.partition(":")[0]
    if engine == "openai":
        return {"model": model, "tool_format": tool_format}
    if engine == "expert":
        from rock_gym.tasks import load

        return {"tool_format": tool_format, "tasks": load(tasks) if tasks is not None else None}
    return {}


def report_tables(report: EvalReport) -> list[Any]:
    """Rich tables of a report: the summary, then one row per task."""
    from rich.table import Table

    low, high = report.interval
    summary = Table(title=f"{report.env_id} · {report.policy}")
    for column in ("episodes", "success rate", "95% CI", "mean reward", "mean turns", "env errors", "format errors"):
        summary.add_column(column, justify="right")
    summary.add_row(
        str(report.episodes),
        f"{report.success_rate:.3f} ({report.successes}/{report.scored})",
        f"[{low:.3f}, {high:.3f}]",
        f"{report.mean_reward:.3f}",
        f"{report.mean_turns:.1f}",
        str(report.env_errors),
        str(report.format_errors),
    )
    per_task = Table(title="per task")
    for column in ("task", "episodes", "successes", "mean reward", "mean turns", "env errors"):
        per_task.add_column(column, justify="left" if column == "task" else "right", no_wrap=column == "task")
    for row in report.tasks:
        per_task.add_row(
            row.task_id,
            str(row.episodes),
            str(row.successes),
            f"{row.mean_reward:.3f}",
            f"{row.mean_turns:.1f}",
            str(row.env_errors),
        )
    tables = [summary, per_task]
    if report.safety:
        safety = Table(title="safety events")
        safety.add_column("category")
        safety.add_column("events", justify="right")
        for category, count in sorted(report.safety.items()):
            safety.add_row(category, str(count))
        tables.append(safety)
    timings = f"{report.seconds:.1f}s: {report.generate_seconds:.1f}s generating, {report.env_seconds:.1f}s in envs"
    endings = ", ".join(f"{k} {v}" for k, v in sorted(report.endings.items()))
    if report.context:
        c = report.context
        endings += (
            f"; context: {c['mean_request_tokens']:.0f} tokens per request (max {c['max_request_tokens']:.0f}),"
            f" {c['elided_tokens']:.0f} elided, {c['segments']:.1f} segments, {c['loops']:.1f} loop warnings"
            " per episode"
        )
    footer = Table.grid()
    footer.add_row(f"{timings}; endings: {endings}")
    tables.append(footer)
    return tables
