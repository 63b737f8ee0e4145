"""Learning: expert trajectories → SFT warm start → IPA against token-level REINFORCE, on rock/Terminal-v0.

    python benchmarks/learning.py            # 3 seeds: about 25 minutes on 2 cores
    python benchmarks/learning.py --short    # 1 seed, a few updates: a few minutes, for CI

Everything is trained from scratch here, on CPU, in real docker sandboxes:

1. A tiny Llama (`learners.policies.tiny.build_tiny_model`, hidden 128, 2 layers, ~0.4M weights) with a BPE
   tokenizer trained on the tasks' texts with their digits removed (so every number is one token per digit, in the
   observations and in the commands alike). Its chat template leaves the tool schemas out of the prompt: a model
   trained from scratch cannot read them, and they are 90% of the tokens of every forward pass (~800 of ~900).
2. The reference solutions of ``log-report`` tasks (train seeds) played by the `ExpertPolicy` in the env, recorded
   with that tokenizer: 4 turns each, ``cat /data/report_spec.txt``, ``head -n 3 /data/access.log``, an
   ``awk | sort | uniq -c | sort -rn | head -n TOP | awk`` pipeline whose status code and TOP come from the spec
   (4 × 3 values), then ``submit``.
3. `sft` on them until the warm start's chance of replaying a held-out reference solution at temperature 1
   (`expert_likelihood`, teacher-forced, no sandbox) reaches 0.25, checked every 25 updates from update 300 on. A
   tiny model learns the pipeline's syntax within ~150 updates but reads the two numbers from the spec only after
   a sudden change ~400-450 updates in (measured: likelihood 0.06 at 400, 0.22 at 425, 0.50 at 450; held-out
   success at temperature 1 tracked it: 0.03 at 300, 0.44 at 450, 0.75 at 600). Stopping just past that change
   leaves a warm start clearly between 0 and 1 (it misreads some specs and slips a token in the 76-token command
   now and then): room for RL. ``find-files`` (the first choice) did not work at this size: after 250-300 SFT
   updates on 128-384 tasks the model never copied the task's random 4-digit code (success 0, greedy too), so RL
   had no success to learn from.
4. From that one warm start, per seed: `ipa` (parallel initialized resampling from the reference solutions, chunk
   returns ±1) and `reinforce` (token-level, group-mean baseline), with the same tasks per update, episodes per
   update, learning rate (2e-4: in one-seed pilots at 5e-4 both collapsed to ~0 within 7 updates; at 1e-4 both
   rose from 0.34 to ~0.5; at 2e-4 IPA rose and REINFORCE fell), temperature and token limits, each trained until
   it has used the same budget of env steps. Env steps are counted in the env (a wrapper around every env the
   learners play in): every turn the policy sampled plus every expert turn `reset` replayed for a resampled start;
   IPA's experts are the SFT data, already played. Success on held-out seeds (temperature 1, the same episodes for
   every method) is measured along the way; the final success rates are pooled over seeds with Wilson 95%
   intervals.
5. Initialized resampling where plain RL sees nothing: ``count-matches`` tasks, a family the warm start never saw
   (4 turns: read the question, look at a log, a ``grep -c`` pipeline, submit). Plain rollouts never succeed, so
   plain RL (IPA without resampling or imitation) gets no success to learn from; IPA with ``parallel`` and
   ``rollback`` resampling starts rollouts after expert prefixes and gets successes there, with the imitation
   fallback on the expert chunks the policy could not get past.

Writes learning[_short].json (commit, machine, every curve, final rates and intervals, timings, load) and two
figures, learning[_short].png (held-out success against env steps, per method and seed) and
learning[_short]_resampling.png, to docs/figures/ (``--out`` elsewhere), and prints a summary table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runner import machine, pyplot  # noqa: E402

import learners  # noqa: E402
from learners.config import EnvConfig  # noqa: E402
from learners.evaluate import summarize, wilson_interval  # noqa: E402
from learners.ipa.learner import IPALearner  # noqa: E402
from learners.ipa.logprobs import taken_logprobs  # noqa: E402
from learners.policies.expert import ExpertPolicy  # noqa: E402
from learners.policies.hf import HFPolicy  # noqa: E402
from learners.policies.tiny import CHAT_TEMPLATE, build_tiny_model, default_corpus  # noqa: E402
from learners.rollout import StartState, collect  # noqa: E402
from rock_gym.agent.harness import HarnessConfig  # noqa: E402
from rock_gym.envs.record import Trajectory  # noqa: E402
from rock_gym.tasks import terminal_tasks  # noqa: E402
from rock_gym.tools import ToolCall, get_format  # noqa: E402

FIGURES = Path(__file__).resolve().parent.parent / "docs" / "figures"
HERMES = get_format("hermes")
#: Seeds of held-out tasks start here; train seeds start at 0.
EVAL_SEED = 100_000
#: The chat template without the tool schemas (see the module docstring).
COMPACT_TEMPLATE = CHAT_TEMPLATE.replace("{%- if tools %}", "{%- if false %}", 1)


@dataclass(frozen=True)
class Plan:
    """Sizes and budgets of one run."""

    family: str = "log-report"
    hard_family: str = "count-matches"
    hidden_size: int = 128
    num_layers: int = 2
    train_tasks: int = 256
    """Train seeds of the family: each is played once by the expert for SFT, and drawn from by RL."""
    eval_tasks: int = 32
    """Held-out seeds: the success curves' episodes (one per task, temperature 1)."""
    sft_min_updates: int = 300
    sft_max_updates: int = 700
    sft_check_every: int = 25
    sft_target: float = 0.25
    """SFT stops at the first check where the held-out experts' likelihood (`expert_likelihood`) reaches this."""
    sft_batch: int = 8
    sft_lr: float = 1e-3
    seeds: tuple[int, ...] = (0, 1, 2)
    env_steps: int = 540
    """RL budget per run, in env steps (sampled and replayed turns): 8 updates of 16 episodes."""
    eval_every: int = 4
    """Updates between held-out evaluations (and one after the last update)."""
    tasks_per_update: int = 4
    rollouts_per_task: int = 4
    """IPA's rollouts per task; REINFORCE's group size."""
    rl_lr: float = 2e-4
    anchors: int = 3
    max_new_tokens: int = 100
    max_context_tokens: int = 1536
    """Per request (plus max_new_tokens); a reference episode is ~600 tokens, a lost one that cats the log far more."""
    max_turns: int = 5
    num_envs: int = 4
    hard_train_tasks: int = 4
    hard_eval_tasks: int = 16
    resample_updates: int = 6
    resample_lr: float = 1e-3
    """The resampling study's step size: the imitation fallback is supervised learning, at SFT's step size."""
    lambda_il: float = 1.0
    resample_modes: tuple[str, ...] = ("none", "parallel", "rollback")


FULL = Plan()
SHORT = Plan(
    train_tasks=48,
    eval_tasks=8,
    sft_min_updates=60,
    sft_max_updates=60,
    seeds=(0,),
    env_steps=60,
    eval_every=2,
    tasks_per_update=2,
    rollouts_per_task=4,
    hard_train_tasks=2,
    hard_eval_tasks=4,
    resample_updates=1,
)
"""The pipeline end to end in a few minutes: too little SFT for the warm start to succeed, so no learning shows."""


# -- counting env steps ------------------------------------------------------------------------------------------


class Ledger(gym.Wrapper):
    """Counts an env's steps: the turns the policy took and the expert turns `reset` replayed for a resampled start.
    Each env has its own ledger (the collector steps envs on threads); `Books` sums them."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.sampled = 0
        self.replayed = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        self.replayed += len((options or {}).get("prefix", ()))
        return self.env.reset(seed=seed, options=options)

    def step(self, action: Any) -> Any:
        self.sampled += 1
        return self.env.step(action)


@dataclass
class Books:
    """The ledgers of one learner's envs."""

    ledgers: list[Ledger]

    @property
    def steps(self) -> int:
        return sum(ledger.sampled + ledger.replayed for ledger in self.ledgers)

    @property
    def replayed(self) -> int:
        return sum(ledger.replayed for ledger in self.ledgers)


def install_ledgers(learner: Any, env: EnvConfig) -> Books:
    """Give a learner its envs before its first update (both learners keep `envs` once made), each in a `Ledger`."""
    learner.envs = [Ledger(env.make()) for _ in range(env.num_envs)]
    return Books(learner.envs)


class RecordingIPA(IPALearner):
    """IPA that keeps its last update's rollouts with their start chunks (for success per start)."""

    last: list[tuple[int, Trajectory]]

    def rollouts(self, starts: list[StartState], stats: Any) -> list[Trajectory]:
        played = super().rollouts(starts, stats)
        self.last = [(len(s.prefix), t) for s, t in zip(starts, played, strict=True)]
        return played


# -- the model, the experts, the warm start ----------------------------------------------------------------------


def corpus(families: list[str], seeds: range) -> list[str]:
    """Texts for the tokenizer: the tools' markup and the tasks' instructions, spec files and expert turns, without
    digits (numbers stay one token per digit, alike in what the model reads and what it writes)."""
    texts = []
    for task in terminal_tasks(families, seeds=seeds):
        texts.append(task.instruction)
        texts += [text for path, text in task.files.items() if path.endswith(".txt")]
        texts += [
            HERMES.render([ToolCall(c.name, dict(c.arguments)) for c in turn]) for turn in task.expert_turns or []
        ]
    return default_corpus() + [re.sub(r"\d", "", text) for text in texts]


def build_policy(path: Path, plan: Plan) -> Path:
    """The untrained model and its tokenizer, with the compact chat template."""
    from transformers import AutoTokenizer

    texts = corpus([plan.family, plan.hard_family], range(64))
    build_tiny_model(path, vocab_corpus=texts, hidden_size=plan.hidden_size, num_layers=plan.num_layers)
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.chat_template = COMPACT_TEMPLATE
    tokenizer.save_pretrained(path)
    return path


def env_config(tasks: list[Any], plan: Plan) -> EnvConfig:
    return EnvConfig("rock/Terminal-v0", tasks=tasks, num_envs=plan.num_envs, max_turns=plan.max_turns)


def play_experts(tasks: list[Any], plan: Plan, tokenizer: Any) -> list[Trajectory]:
    """The reference solution of every task, played in the env and recorded with the model's tokenizer."""
    expert = ExpertPolicy(tasks=tasks)
    return collect(env_config(tasks, plan), expert, task_ids=[t.task_id for t in tasks], tokenizer=tokenizer)


def warm_start(
    base: Path, out: Path, experts: list[Trajectory], held_out: list[Trajectory], plan: Plan
) -> dict[str, Any]:
    """SFT on the expert trajectories until the held-out experts' likelihood reaches ``sft_target`` (checked every
    ``sft_check_every`` updates from ``sft_min_updates`` on, up to ``sft_max_updates``); saved to ``out``."""
    sft = learners.make("sft", policy=str(base), learning_rate=plan.sft_lr, batch_size=plan.sft_batch, seed=0)
    sft.add_trajectories(experts)  # type: ignore[attr-defined]
    metrics = sft.train(plan.sft_min_updates)
    checks = [{"update": len(metrics), "likelihood": expert_likelihood(sft.model, held_out)}]  # type: ignore[attr-defined]
    while checks[-1]["likelihood"] < plan.sft_target and len(metrics) < plan.sft_max_updates:
        metrics += sft.train(min(plan.sft_check_every, plan.sft_max_updates - len(metrics)))
        checks.append({"update": len(metrics), "likelihood": expert_likelihood(sft.model, held_out)})  # type: ignore[attr-defined]
    sft.save(out)
    return {
        "updates": len(metrics),
        "loss_first": round(metrics[0]["loss"], 4),
        "loss_last": round(metrics[-1]["loss"], 4),
        "loss_every_25": [round(m["loss"], 4) for m in metrics[::25]],
        "held_out_likelihood": checks,
    }


def expert_likelihood(model: Any, trajectories: list[Trajectory]) -> float:
    """Mean over trajectories of π(every expert turn | the observations before it): the chance that sampling at
    temperature 1 replays the reference solution word for word (a lower bound on success, which other commands may
    reach too), computed without a sandbox."""
    rows, positions = [], []
    for trajectory in trajectories:
        packed = trajectory.segment_tokens(0)
        rows.append(packed.ids)
        positions.append([p for p, owner in enumerate(packed.owner) if owner >= 0 and p > 0])
    with torch.no_grad():
        logprobs = taken_logprobs(model, rows, positions).tolist()
    chances, at = [], 0
    for wanted in positions:
        chances.append(math.exp(sum(logprobs[at : at + len(wanted)])))
        at += len(wanted)
    return round(sum(chances) / max(len(chances), 1), 4)


# -- held-out success ----------------------------------------------------------------------------------------------


@dataclass
class Evaluator:
    """Held-out episodes, the same for every policy: one per task, temperature 1, fixed sampling seed."""

    envs: list[gym.Env]
    task_ids: list[str]
    plan: Plan
    seconds: float = 0.0

    def __call__(self, policy: Any) -> dict[str, Any]:
        started = time.perf_counter()
        played = collect(
            self.envs,
            policy,
            task_ids=self.task_ids,
            harness=HarnessConfig(self.plan.max_context_tokens, max_new_tokens=self.plan.max_new_tokens),
            seed=EVAL_SEED,
            temperature=1.0,
        )
        self.seconds += time.perf_counter() - started
        report = summarize("rock/Terminal-v0", "policy", played)
        return {"successes": report.successes, "episodes": report.scored, "success_rate": report.success_rate}


# -- one RL run ------------------------------------------------------------------------------------------------------


def make_learner(method: str, warm: Path, env: EnvConfig, plan: Plan, seed: int, **overrides: Any) -> Any:
    """IPA or REINFORCE from the warm start, with the same batch shape, step size and sampling."""
    common = {
        "policy": str(warm),
        "env": env,
        "seed": seed,
        "tasks_per_update": plan.tasks_per_update,
        "learning_rate": plan.rl_lr,
        "max_new_tokens": plan.max_new_tokens,
        "max_context_tokens": plan.max_context_tokens,
        "temperature": 1.0,
    }
    if method == "reinforce":
        return learners.make("reinforce", **{**common, "group_size": plan.rollouts_per_task, **overrides})
    options = {"resampling": "parallel", "anchors": plan.anchors, "rollouts_per_task": plan.rollouts_per_task}
    return learners.make("ipa", **{**common, **options, "micro_batch": 8, **overrides})


def train_run(
    method: str, seed: int, warm: Path, plan: Plan, experts: list[Trajectory], evaluate: Evaluator, start: dict
) -> dict[str, Any]:
    """Train until the env-step budget is spent; held-out success every ``eval_every`` updates and at the end."""
    tasks = terminal_tasks([plan.family], seeds=range(plan.train_tasks))
    learner = make_learner(method, warm, env_config(tasks, plan), plan, seed)
    books = install_ledgers(learner, learner.config.env)
    if method == "ipa":
        learner.sampler.experts.update({t.task_id: t for t in experts})  # the SFT data: played once, already paid
    curve = [{"env_steps": 0, "update": 0, **start}]
    updates: list[dict[str, float]] = []
    started = time.perf_counter()
    try:
        while books.steps < plan.env_steps:
            metrics = learner.train(1)[-1]
            updates.append(update_record(metrics, books))
            if len(updates) % plan.eval_every == 0 or books.steps >= plan.env_steps:
                curve.append({"env_steps": books.steps, "update": len(updates), **evaluate(learner.policy)})
    finally:
        learner.close()
    rates = " -> ".join(f"{p['success_rate']:.2f}" for p in curve)
    print(f"[learning] {method} seed {seed}: held-out success {rates} over {books.steps} env steps", flush=True)
    return {
        "method": method,
        "seed": seed,
        "curve": curve,
        "updates": updates,
        "env_steps": books.steps,
        "replayed_steps": books.replayed,
        "seconds": round(time.perf_counter() - started, 1),
    }


def update_record(metrics: dict[str, float], books: Books) -> dict[str, float]:
    """What one update did, as the learner measured it: env steps so far, success of its scored episodes (all, and
    from plain starts), the gradient's norm and the update's seconds."""
    success = metrics["success_rate"]
    plain = metrics.get("plain_success_rate", success)  # IPA's: NaN when no rollout started at chunk 0
    return {
        "env_steps": books.steps,
        "train_success": round(success, 4),
        "plain_success": None if math.isnan(plain) else round(plain, 4),
        "grad_norm": round(metrics.get("grad_norm", 0.0), 4),
        "seconds": round(metrics.get("seconds", 0.0), 2),
    }


# -- initialized resampling where plain RL sees no success -----------------------------------------------------------


def resampling_run(
    mode: str, warm: Path, plan: Plan, tasks: list[Any], experts: list[Trajectory], evaluate: Evaluator
) -> dict[str, Any]:
    """IPA on the hard family's tasks with one resampling mode ("none": plain RL, imitation off too)."""
    options: dict[str, Any] = {
        "resampling": mode,
        "anchors": 4,
        "learning_rate": plan.resample_lr,
        "lambda_il": plan.lambda_il,
        "tasks_per_update": len(tasks),
    }
    if mode == "none":
        options["imitation"] = False
    config = make_learner("ipa", warm, env_config(tasks, plan), plan, 0, **options).config
    learner = RecordingIPA(config)
    books = install_ledgers(learner, config.env)
    learner.sampler.experts.update({t.task_id: t for t in experts})  # played before, outside the ledgers
    per_update, started = [], time.perf_counter()
    try:
        for _ in range(plan.resample_updates):
            metrics = learner.train(1)[-1]
            by_start: dict[int, list[int]] = {}
            for k, trajectory in learner.last:
                if trajectory.scored:
                    by_start.setdefault(k, [0, 0])
                    by_start[k][0] += int(trajectory.resolved)
                    by_start[k][1] += 1
            resampled = [n for k, n in by_start.items() if k > 0]
            record: dict[str, Any] = update_record(metrics, books)
            record["resampled_success"] = _rate(sum(s for s, _ in resampled), sum(n for _, n in resampled))
            record["by_start"] = {str(k): by_start[k] for k in sorted(by_start)}
            record["imitation_targets"] = metrics.get("imitation_targets", 0.0)
            per_update.append(record)
        final = evaluate(learner.policy)
    finally:
        learner.close()
    totals: dict[str, list[int]] = {}
    for record in per_update:
        for k, (successes, attempts) in record["by_start"].items():
            totals[k] = [totals.get(k, [0, 0])[0] + successes, totals.get(k, [0, 0])[1] + attempts]
    return {
        "mode": mode,
        "updates": per_update,
        "success_by_start": dict(sorted(totals.items())),
        "held_out_plain": {**final, "interval": wilson_interval(final["successes"], final["episodes"])},
        "env_steps": books.steps,
        "seconds": round(time.perf_counter() - started, 1),
    }


# -- summaries and figures -------------------------------------------------------------------------------------------


def final_rates(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per method: the last held-out point of each seed, pooled, with its Wilson 95% interval."""
    table: dict[str, Any] = {}
    for method in sorted({r["method"] for r in runs}):
        last = [r["curve"][-1] for r in runs if r["method"] == method]
        successes, episodes = sum(p["successes"] for p in last), sum(p["episodes"] for p in last)
        table[method] = {
            "success_rate": round(successes / max(episodes, 1), 4),
            "successes": successes,
            "episodes": episodes,
            "interval": wilson_interval(successes, episodes),
            "per_seed": [round(p["success_rate"], 4) for p in last],
            "env_steps": [r["env_steps"] for r in runs if r["method"] == method],
        }
    return table


COLORS = {"ipa": "#C44E52", "reinforce": "#4C72B0", "none": "#777777", "parallel": "#C44E52", "rollback": "#55A868"}


def plot_curves(
    runs: list[dict[str, Any]], warm: dict[str, Any], table: dict[str, Any], path: Path, title: str
) -> None:
    """Left: held-out success against env steps, one thin line per seed, the mean over seeds thick, the warm start
    dotted. Right: the learners' own training success per update from plain starts (mean over seeds)."""
    plt = pyplot()
    if plt is None:
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 2]})
    for method in sorted({r["method"] for r in runs}):
        mine = [r for r in runs if r["method"] == method]
        for r in mine:
            xs = [p["env_steps"] for p in r["curve"]]
            left.plot(xs, [p["success_rate"] for p in r["curve"]], color=COLORS[method], alpha=0.35, lw=1)
        low, high = table[method]["interval"]
        label = f"{method}: final {table[method]['success_rate']:.2f} [{low:.2f}, {high:.2f}]"
        left.plot(
            *_mean_curve([r["curve"] for r in mine], "success_rate"),
            color=COLORS[method],
            lw=2.5,
            marker="o",
            label=label,
        )
        right.plot(
            *_mean_curve([r["updates"] for r in mine], "plain_success"), color=COLORS[method], marker=".", label=method
        )
    left.axhline(warm["success_rate"], color="#333333", ls=":", lw=1, label=f"warm start: {warm['success_rate']:.2f}")
    left.set_xlabel("env steps (sampled + replayed turns)")
    left.set_ylabel("held-out success (temperature 1)")
    right.set_xlabel("env steps")
    right.set_ylabel("training success, plain starts")
    for ax in (left, right):
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _mean_curve(curves: list[list[dict[str, Any]]], key: str) -> tuple[list[float], list[float]]:
    """Point by point over seeds (as far as the shortest goes): the mean env steps and the mean of ``key``."""
    points = min(len(curve) for curve in curves)
    xs = [sum(curve[i]["env_steps"] for curve in curves) / len(curves) for i in range(points)]
    ys = []
    for i in range(points):
        values = [curve[i][key] for curve in curves if curve[i][key] is not None]
        ys.append(sum(values) / len(values) if values else float("nan"))
    return xs, ys


def plot_resampling(study: list[dict[str, Any]], path: Path, title: str) -> None:
    """Left: per mode, training success per update from plain starts (solid) and resampled starts (dashed).
    Right: success by start chunk over all updates (k expert chunks replayed first; k = 0 is a plain start)."""
    plt = pyplot()
    if plt is None:
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.3), gridspec_kw={"width_ratios": [3, 2]})
    for run in study:
        mode, xs = run["mode"], list(range(1, len(run["updates"]) + 1))
        held = run["held_out_plain"]
        ys = [u["plain_success"] for u in run["updates"]]
        label = f"{mode}: plain starts (held-out after: {held['successes']}/{held['episodes']})"
        left.plot(xs, [float("nan") if y is None else y for y in ys], color=COLORS[mode], marker="o", label=label)
        if mode != "none":
            ys = [u["resampled_success"] for u in run["updates"]]
            ys = [float("nan") if y is None else y for y in ys]
            left.plot(xs, ys, color=COLORS[mode], ls="--", marker="^", label=f"{mode}: resampled starts")
    left.set_xlabel("IPA update")
    left.set_ylabel("training success")
    left.set_ylim(-0.02, 1.02)
    left.legend(fontsize=7)
    starts = sorted({int(k) for run in study for k in run["success_by_start"]})
    width = 0.8 / len(study)
    for i, run in enumerate(study):
        for k in starts:
            successes, attempts = run["success_by_start"].get(str(k), [0, 0])
            if not attempts:
                continue
            x = k + (i - (len(study) - 1) / 2) * width
            right.bar(
                x, successes / attempts, width, color=COLORS[run["mode"]], label=run["mode"] if k == starts[0] else None
            )
            right.annotate(f"{successes}/{attempts}", (x, successes / attempts), ha="center", va="bottom", fontsize=6)
    right.set_xticks(starts)
    right.set_xlabel("start chunk k (expert turns replayed first)")
    right.set_ylabel("success, all updates")
    right.set_ylim(0, 1.1)
    right.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def print_summary(table: dict[str, Any], warm: dict[str, Any], study: list[dict[str, Any]]) -> None:
    low, high = wilson_interval(warm["successes"], warm["episodes"])
    print(f"\n{'method':<12} {'success':>8} {'95% CI':>16} {'episodes':>9}  per seed          env steps")
    print(f"{'warm start':<12} {warm['success_rate']:>8.3f} {f'[{low:.3f}, {high:.3f}]':>16} {warm['episodes']:>9}")
    for method, row in table.items():
        low, high = row["interval"]
        print(
            f"{method:<12} {row['success_rate']:>8.3f} {f'[{low:.3f}, {high:.3f}]':>16} {row['episodes']:>9}"
            f"  {row['per_seed']!s:<17} {row['env_steps']}"
        )
    print(f"\n{'resampling':<12} {'success by start chunk k (successes/attempts)':<50} held-out plain")
    for run in study:
        starts = ", ".join(f"k={k}: {s}/{n}" for k, (s, n) in run["success_by_start"].items())
        held = run["held_out_plain"]
        print(f"{run['mode']:<12} {starts:<50} {held['successes']}/{held['episodes']}")


def _rate(successes: int, attempts: int) -> float | None:
    return round(successes / attempts, 4) if attempts else None


# -- main ------------------------------------------------------------------------------------------------------------


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="1 seed, a few updates: a few minutes, for CI")
    parser.add_argument("--out", type=Path, default=None, help="where the JSON and PNGs go (default docs/figures)")
    parser.add_argument("--torch-threads", type=int, default=1, help="more spin against the env threads on 2 cores")
    parser.add_argument("--seeds", type=int, default=None, help="RL seeds (default: 3, or 1 with --short)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the models here (default: a temp dir)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    torch.set_num_threads(args.torch_threads)
    plan = SHORT if args.short else FULL
    if args.seeds is not None:
        plan = replace(plan, seeds=tuple(range(args.seeds)))
    out = args.out or FIGURES
    out.mkdir(parents=True, exist_ok=True)
    name = "learning_short" if args.short else "learning"
    began, load_before = time.perf_counter(), os.getloadavg()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="rock-gym-learning-"))
    timings: dict[str, float] = {}
    try:
        figures = run(plan, workdir, timings)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    timings["total"] = round(time.perf_counter() - began, 1)
    figures.update(timings=timings, load_average={"before": load_before, "after": os.getloadavg()})
    figures["torch_threads"] = args.torch_threads
    record = {"benchmark": name, "machine": machine(), "figures": figures}
    (out / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
    title = (
        f"rock/Terminal-v0 {plan.family}: SFT warm start ({figures['sft']['updates']} updates), then IPA vs REINFORCE,"
        f" {len(plan.seeds)} seed(s), {plan.env_steps} env steps each; tiny Llama {plan.hidden_size}x{plan.num_layers}"
        " from scratch, 2 CPU cores"
    )
    plot_curves(figures["runs"], figures["warm_start"], figures["final"], out / f"{name}.png", title)
    title = f"{plan.hard_family} (unseen in SFT): IPA resampling modes from the same warm start"
    plot_resampling(figures["resampling"], out / f"{name}_resampling.png", title)
    print_summary(figures["final"], figures["warm_start"], figures["resampling"])
    print(f"\n{json.dumps({k: figures[k] for k in ('final', 'timings', 'load_average')}, indent=2)}")
    print(f"wrote {out / (name + '.json')} and its figures in {timings['total']:.0f} s")
    return figures


def run(plan: Plan, workdir: Path, timings: dict[str, float]) -> dict[str, Any]:
    """Every stage, in order; ``timings`` gets each stage's seconds."""
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        timings[stage] = round(time.perf_counter() - clock, 1)
        clock = time.perf_counter()
        print(f"[learning] {stage}: {timings[stage]:.0f} s", flush=True)

    base = build_policy(workdir / "base", plan)
    tokenizer = HFPolicy(base).tokenizer
    tasks = terminal_tasks([plan.family], seeds=range(plan.train_tasks))
    experts = play_experts(tasks, plan, tokenizer)
    held_out = terminal_tasks([plan.family], seeds=range(EVAL_SEED, EVAL_SEED + plan.eval_tasks))
    held_out_experts = play_experts(held_out, plan, tokenizer)
    hard_tasks = terminal_tasks([plan.hard_family], seeds=range(plan.hard_train_tasks))
    hard_experts = play_experts(hard_tasks, plan, tokenizer)
    lap("experts")
    sft = warm_start(base, workdir / "warm", experts, held_out_experts, plan)
    lap("sft")
    hard_held_out = terminal_tasks([plan.hard_family], seeds=range(EVAL_SEED, EVAL_SEED + plan.hard_eval_tasks))
    eval_env = EnvConfig("rock/Terminal-v0", tasks=held_out + hard_held_out, max_turns=plan.max_turns)
    eval_envs = [eval_env.make() for _ in range(plan.num_envs)]
    try:
        evaluate = Evaluator(eval_envs, [t.task_id for t in held_out], plan)
        warm = evaluate(HFPolicy(workdir / "warm"))
        lap("warm_eval")
        runs = [
            train_run(method, seed, workdir / "warm", plan, experts, evaluate, warm)
            for seed in plan.seeds
            for method in ("ipa", "reinforce")
        ]
        lap("rl")
        hard = Evaluator(eval_envs, [t.task_id for t in hard_held_out], plan)
        study = [
            resampling_run(mode, workdir / "warm", plan, hard_tasks, hard_experts, hard) for mode in plan.resample_modes
        ]
        lap("resampling")
    finally:
        for env in eval_envs:
            env.close()
    timings["held_out_eval"] = round(evaluate.seconds + hard.seconds, 1)
    return {
        "plan": asdict(plan),
        "experts": {
            "episodes": len(experts),
            "resolved": sum(t.resolved for t in experts),
            "hard_episodes": len(hard_experts),
            "hard_resolved": sum(t.resolved for t in hard_experts),
        },
        "sft": sft,
        "warm_start": {**warm, "interval": wilson_interval(warm["successes"], warm["episodes"])},
        "runs": runs,
        "final": final_rates(runs),
        "resampling": study,
    }


if __name__ == "__main__":
    main()
