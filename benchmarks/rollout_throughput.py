"""Rollout throughput: the async collector against the barrier one, on turns that mix fast and slow commands.

    python benchmarks/rollout_throughput.py            # 16 envs, 32 episodes
    python benchmarks/rollout_throughput.py --short    # 8 envs, 8 episodes: about a minute, for CI

One run plays the same episodes twice with `learners.rollout.collect`, same starts and seed: ``barrier=True`` (every
policy call waits for the slowest env) and ``barrier=False`` (one batched call over whichever envs are ready).

The policy is the tiny random Llama of `learners.policies.tiny`, generating through `HFPolicy.sample` (one real
batched `generate` per call, on one torch thread by default: more threads spin against the env threads on a small
machine), with a logits processor that forces each row greedily to a scripted action. The action depends only on
the episode's own request (a hash of its first turn's observation, the task's README, and the number of assistant
turns in it), so both modes must produce identical trajectories (actions, sampled ids, observation ids), which the
run checks. Turn 0 reads the README; after it about one turn in four runs ``sleep 2``, the others ``sleep 0.1``;
turn 6 submits.

Figures: turns/s of each mode and their ratio (target: async >= 2x barrier), policy calls, mean batch and the share
of the wall time the policy was generating (near 1, the async run is bound by the policy, not the envs); results/
rollout_throughput[_short].json, its bars (.png) and a timeline of every env's steps and the policy calls
(_timeline.png).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from transformers import LogitsProcessor, LogitsProcessorList

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runner import RESULTS, pyplot, write  # noqa: E402

from learners.config import EnvConfig  # noqa: E402
from learners.policies.hf import HFPolicy  # noqa: E402
from learners.policies.tiny import build_tiny_model  # noqa: E402
from learners.rollout import RolloutStats, collect  # noqa: E402
from rock_gym.agent.harness import Completion, HarnessConfig  # noqa: E402
from rock_gym.agent.tokens import ChatTemplate  # noqa: E402
from rock_gym.envs.record import Trajectory  # noqa: E402
from rock_gym.tasks import terminal_tasks  # noqa: E402
from rock_gym.tools import ToolCall, get_format  # noqa: E402

HERMES = get_format("hermes")


# -- the scripted actions ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Script:
    """Which action a request gets. Turn 0 reads the task's README (its error code tells episodes apart: the
    instruction is the same for every find-files task); turn ``t`` of an episode whose first two turns hash to
    ``h`` runs ``slow`` when ``(h + t) % slow_every == 0``, else ``fast``; turn ``turns`` submits. Staggered by
    ``h``, every round of many envs holds a slow turn somewhere, while each episode has about one in four."""

    turns: int = 6
    slow_every: int = 4
    fast: str = "sleep 0.1"
    slow: str = "sleep 2"
    look: str = "cat /data/README.txt"

    def action(self, episode_key: int, turn: int) -> str:
        if turn >= self.turns:
            return HERMES.render([ToolCall("submit", {})])
        if turn == 0:
            return HERMES.render([ToolCall("bash", {"command": self.look})])
        slow = (episode_key + turn) % self.slow_every == 0
        return HERMES.render([ToolCall("bash", {"command": self.slow if slow else self.fast})])

    def kind(self, action: str) -> str:
        """The kind of an action ("slow", "fast" or "submit"), read back from its text."""
        if '"submit"' in action:
            return "submit"
        return "slow" if self.slow in action else "fast"


class ForceTokens(LogitsProcessor):
    """A `generate` logits processor: row ``i`` may only emit ``targets[i][step]`` (then its end token), so greedy
    decoding writes exactly the targets while the model still runs every forward pass."""

    def __init__(self, targets: list[list[int]], width: int, end_id: int) -> None:
        self.targets, self.width, self.end_id = targets, width, end_id

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        step = input_ids.shape[1] - self.width
        forced = scores.new_full(scores.shape, float("-inf"))
        for row, target in enumerate(self.targets):
            forced[row, target[step] if step < len(target) else self.end_id] = 0.0
        return forced


class ScriptedHFPolicy(HFPolicy):
    """`HFPolicy` whose `sample` is forced to the `Script`'s actions; `calls` records (start, end, batch) per call."""

    def __init__(self, path: Path, script: Script) -> None:
        super().__init__(path, tool_format="hermes")
        self.script = script
        self.template = ChatTemplate(self.tokenizer)
        head = [{"role": "user", "content": "x"}]
        prompt = self.template.render(head, generation_prompt=True)
        self.assistant = prompt[len(self.template.render(head, generation_prompt=False)) :]
        self.calls: list[tuple[float, float, int]] = []

    def target(self, prompt: list[int]) -> list[int]:
        """The scripted action's ids (and the end token) for a request: from its own text only."""
        parts = self.template.decode(prompt).split(self.assistant)
        turn = len(parts) - 2  # the last assistant header is the generation prompt
        first = self.assistant.join(parts[:3])  # the task, then turn 0 and its observation (the README)
        key = int.from_bytes(hashlib.sha256(first.encode()).digest()[:4], "big")
        assert self.template.end_id is not None
        return self.template.encode(self.script.action(key, turn)) + [self.template.end_id]

    def sample(
        self, prompts: Any, *, max_new_tokens: int = 512, temperature: float = 1.0, seed: int | None = None
    ) -> list[Completion]:
        started = time.perf_counter()
        targets = [self.target(list(p)) for p in prompts]
        longest = max(len(t) for t in targets)
        if longest > max_new_tokens:
            raise ValueError(f"the scripted action needs {longest} new tokens: raise max_new_tokens")
        force = ForceTokens(targets, max(len(p) for p in prompts), self.template.end_id)  # type: ignore[arg-type]
        generate = self.model.generate
        # HFPolicy.sample takes no logits processors: hand generate ours for the duration of this call.
        self.model.generate = lambda *a, **k: generate(*a, logits_processor=LogitsProcessorList([force]), **k)
        try:
            completions = super().sample(prompts, max_new_tokens=max_new_tokens, temperature=0.0, seed=seed)
        finally:
            del self.model.generate
        self.calls.append((started, time.perf_counter(), len(prompts)))
        return completions


# -- timing the envs -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One env call: which env, what it ran ("reset", "fast", "slow", "submit"), when (perf_counter seconds)."""

    env: int
    kind: str
    start: float
    end: float


class Timed(gym.Wrapper):
    """Records each reset and step of the env it wraps into `events`, a list the envs of a run share (appends are
    atomic)."""

    def __init__(self, env: gym.Env, index: int, script: Script) -> None:
        super().__init__(env)
        self.index, self.script = index, script
        self.events: list[Event] = []

    def reset(self, **kwargs: Any) -> Any:
        started = time.perf_counter()
        result = self.env.reset(**kwargs)
        self.events.append(Event(self.index, "reset", started, time.perf_counter()))
        return result

    def step(self, action: Any) -> Any:
        started = time.perf_counter()
        result = self.env.step(action)
        self.events.append(Event(self.index, self.script.kind(action), started, time.perf_counter()))
        return result


# -- the two runs ---------------------------------------------------------------------------------------------------


def play(
    envs: list[Timed], policy: ScriptedHFPolicy, task_ids: list[str], barrier: bool, max_new: int, window: float = 0.0
) -> dict:
    """One `collect` over the task ids; its stats, trajectories, env events and policy calls (times from its start)."""
    events: list[Event] = []
    for env in envs:
        env.events = events
    policy.calls = []
    stats = RolloutStats()
    began = time.perf_counter()
    trajectories = collect(
        envs,
        policy,
        task_ids=task_ids,
        harness=HarnessConfig(max_new_tokens=max_new),
        seed=0,
        temperature=0.0,
        barrier=barrier,
        stats=stats,
        batch_window=0.0 if barrier else window,
    )
    shift = [Event(e.env, e.kind, e.start - began, e.end - began) for e in events]
    calls = [(start - began, end - began, batch) for start, end, batch in policy.calls]
    return {"stats": stats, "trajectories": trajectories, "events": shift, "calls": calls}


def mode_figures(run: dict) -> dict[str, Any]:
    stats: RolloutStats = run["stats"]
    trajectories: list[Trajectory] = run["trajectories"]
    return {
        "turns": stats.turns,
        "wall_s": round(stats.wall_seconds, 2),
        "turns_per_s": round(stats.turns_per_second, 3),
        "generate_calls": stats.generate_calls,
        "mean_batch": round(stats.mean_batch, 2),
        "generate_s": round(stats.generate_seconds, 2),
        "policy_busy": round(stats.generate_seconds / stats.wall_seconds, 3) if stats.wall_seconds else 0.0,
        "env_exceptions": stats.env_exceptions,
        "endings": sorted({str(t.ending) for t in trajectories}),
        "slow_steps": sum(e.kind == "slow" for e in run["events"]),
        "fast_steps": sum(e.kind == "fast" for e in run["events"]),
    }


def fingerprint(trajectory: Trajectory) -> tuple:
    """What must match between the modes: per chunk the action, the sampled ids and the observation's ids."""
    chunks = tuple((c.action, tuple(c.completion_ids), tuple(c.observation_ids)) for c in trajectory.chunks)
    return (trajectory.task_id, trajectory.ending, chunks)


def differences(a: list[Trajectory], b: list[Trajectory]) -> list[str]:
    """Episodes (in start order) whose trajectories differ between the two modes."""
    if len(a) != len(b):
        return [f"{len(a)} trajectories against {len(b)}"]
    return [
        f"episode {j} ({x.task_id})"
        for j, (x, y) in enumerate(zip(a, b, strict=True))
        if fingerprint(x) != fingerprint(y)
    ]


# -- the timeline plot ----------------------------------------------------------------------------------------------

COLORS = {"reset": "#BBBBBB", "fast": "#4C72B0", "slow": "#C44E52", "submit": "#55A868"}


def plot_timeline(runs: dict[str, dict], num_envs: int, path: Path, title: str) -> None:
    """Per mode, one row per env (its resets and steps) and a bottom row of policy calls, on one time axis."""
    plt = pyplot()
    if plt is None:
        return
    fig, axes = plt.subplots(len(runs), 1, figsize=(11, 1.2 + 0.28 * (num_envs + 1) * len(runs)), sharex=True)
    for ax, (mode, run) in zip(axes, runs.items(), strict=True):
        for kind, color in COLORS.items():
            for e in (e for e in run["events"] if e.kind == kind):
                ax.broken_barh([(e.start, e.end - e.start)], (e.env - 0.4, 0.8), color=color, label=kind)
        for start, end, batch in run["calls"]:
            ax.broken_barh([(start, end - start)], (-0.4, 0.8), color="black", label="policy call")
            ax.annotate(str(batch), (start, 0.5), fontsize=6)
        figures = mode_figures(run)
        ax.set_title(f"{mode}: {figures['turns_per_s']} turns/s, mean batch {figures['mean_batch']}", fontsize=9)
        ax.set_ylabel("env (0: policy)")
        ax.set_ylim(-0.6, num_envs + 0.6)
    handles, labels = axes[0].get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    axes[0].legend(unique.values(), unique.keys(), loc="upper right", fontsize=7, ncol=5)
    axes[-1].set_xlabel("seconds since the collection started")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# -- main ------------------------------------------------------------------------------------------------------------


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["docker", "podman"], default="docker")
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--episodes", type=int, default=32)
    parser.add_argument("--turns", type=int, default=6, help="scripted turns before the submit")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument(
        "--torch-threads", type=int, default=1, help="torch's CPU threads (more spin against the env threads)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON and PNGs go")
    parser.add_argument(
        "--batch-window", type=float, default=0.05, help="async: seconds envs about to finish may join a policy call"
    )
    parser.add_argument("--short", action="store_true", help="8 envs, 8 episodes: about a minute, for CI")
    args = parser.parse_args(argv)
    if args.short:
        args.num_envs, args.episodes = 8, 8
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    torch.set_num_threads(args.torch_threads)
    script = Script(turns=args.turns)
    tasks = terminal_tasks(["find-files"], seeds=range(args.episodes))
    task_ids = [task.task_id for task in tasks]
    config = EnvConfig("rock/Terminal-v0", tasks=tasks, backend=args.backend, max_turns=args.turns + 5)
    with tempfile.TemporaryDirectory(prefix="rock-gym-tiny-") as tmp:
        policy = ScriptedHFPolicy(build_tiny_model(Path(tmp) / "model"), script)
    warm_up = policy.template.prompt([{"role": "user", "content": "warm up"}])[0]
    policy.sample([warm_up], max_new_tokens=args.max_new_tokens)  # torch's first call, outside the timings
    envs = [Timed(config.make(), i + 1, script) for i in range(args.num_envs)]
    load_before = os.getloadavg()
    try:
        runs = {
            "barrier": play(envs, policy, task_ids, True, args.max_new_tokens),
            "async": play(envs, policy, task_ids, False, args.max_new_tokens, args.batch_window),
        }
    finally:
        for env in envs:
            env.close()
    differ = differences(runs["barrier"]["trajectories"], runs["async"]["trajectories"])
    figures: dict[str, Any] = {
        "backend": args.backend,
        "num_envs": args.num_envs,
        "episodes": args.episodes,
        "script": {"turns": script.turns, "slow_every": script.slow_every, "fast": script.fast, "slow": script.slow},
        **{mode: mode_figures(run) for mode, run in runs.items()},
        "identical_trajectories": not differ,
        "differing_episodes": differ[:10],
        "batch_window_s": args.batch_window,
        "torch_threads": args.torch_threads,
        "load_average": {"before": load_before, "after": os.getloadavg()},
    }
    ratio = figures["async"]["turns_per_s"] / max(figures["barrier"]["turns_per_s"], 1e-9)
    figures["targets"] = {"async_vs_barrier_turns_per_s (>= 2)": round(ratio, 3), "identical_trajectories": not differ}
    name = "rollout_throughput_short" if args.short else "rollout_throughput"
    title = f"rollout: {args.num_envs} Terminal envs ({args.backend}), tiny HF policy, sleep 0.1 / sleep 2 turns"
    bars = {f"{mode} turns/s": figures[mode]["turns_per_s"] for mode in runs}
    write(name, figures, bars, "turns per second", title, directory=args.out)
    plot_timeline(runs, args.num_envs, args.out / f"{name}_timeline.png", title)
    print(
        f"barrier {figures['barrier']['turns_per_s']} turns/s, async {figures['async']['turns_per_s']} turns/s: "
        f"{ratio:.2f}x; mean batch {figures['barrier']['mean_batch']} vs {figures['async']['mean_batch']}; "
        f"policy busy {figures['barrier']['policy_busy']:.0%} vs {figures['async']['policy_busy']:.0%} of wall time; "
        f"trajectories identical: {not differ}"
    )
    return figures


if __name__ == "__main__":
    main()
