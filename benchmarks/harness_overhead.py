"""Harness overhead: what `EpisodeHarness` costs per turn, and a 100-turn SWE episode kept within a 32k-token budget.

    python benchmarks/harness_overhead.py            # 100 turns, a 32,768-token budget
    python benchmarks/harness_overhead.py --short    # 30 turns: seconds, for CI

One real rock/SWE-v0 episode (docker) is played once with a scripted sequence of tool calls, the way an agent reads
a repository: editor views of the repository and of big standard-library files, grep, cat, ls -R, pytest runs,
notes written and edited; the last call submits. Its steps (action, observation, reward, endings, info) are recorded
and then replayed through `EpisodeHarness` with the tiny tokenizer (`learners.policies.tiny.build_tokenizer`), once
per context policy and once without a budget, each turn's `Completion` being the action tokenized plus the chat
template's end token. Only the harness is timed: `request` + `take` + `observe` per turn, no policy, no env.

(a) overhead per turn, median and p90 in ms, over every turn of every replay (target: median <= 2 ms);
(b) per context policy under the budget: turns reached, the largest request (request + max_new_tokens must stay
    <= the budget), segments, elided tokens. "keep" is expected to end with ending "context" when the history no
    longer fits; the others must reach the last turn.

Writes results/harness_overhead[_short].json, its bars (.png: median overhead per policy) and the request length of
every turn under each policy (_requests.png).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runner import RESULTS, pyplot, summary_ms, write  # noqa: E402

from learners.config import EnvConfig  # noqa: E402
from learners.policies.tiny import build_tokenizer  # noqa: E402
from rock_gym.agent.harness import Completion, EpisodeHarness, HarnessConfig  # noqa: E402
from rock_gym.agent.tokens import ChatTemplate  # noqa: E402
from rock_gym.envs.record import ResetInfo  # noqa: E402
from rock_gym.tools import ToolCall, get_format  # noqa: E402

HERMES = get_format("hermes")
TASK = "rock-gym__numtools-1"
POLICIES = ("keep", "elide", "drop", "summary", "elide+drop")
LIB = "/usr/lib/python3.11"
#: Standard-library files an agent might read whole: 1 to 12 KB, and 12 to 20 KB (a 20 KB file is ~13k tiny tokens).
SMALL = ("fnmatch.py", "glob.py", "bisect.py", "copy.py", "abc.py", "operator.py", "numbers.py", "reprlib.py",
         "sched.py", "hmac.py", "queue.py", "string.py", "keyword.py")  # fmt: skip
BIG = ("textwrap.py", "json/decoder.py", "json/encoder.py", "json/__init__.py", "shlex.py", "csv.py", "selectors.py")
#: Files longer than the editor shows at once (it clips a view at 20,000 characters).
CLIPPED = ("dataclasses.py", "enum.py", "pathlib.py", "functools.py", "random.py", "statistics.py", "tempfile.py")
PACKAGES = ("json", "email", "xml", "html", "http", "urllib", "logging", "unittest", "asyncio", "concurrent")


# -- the scripted episode ------------------------------------------------------------------------------------------


def bash(command: str) -> ToolCall:
    return ToolCall("bash", {"command": command})


def editor(command: str, path: str, **arguments: Any) -> ToolCall:
    return ToolCall("str_replace_editor", {"command": command, "path": path, **arguments})


def scripted_call(turn: int) -> ToolCall:
    """Turn ``turn``'s call: a ten-turn cycle of looking around the repository and the standard library."""
    block, step = divmod(turn, 10)
    pick = lambda names: names[block % len(names)]  # noqa: E731 - a different file each cycle
    calls = [
        lambda: editor("view", "/testbed/numtools/core.py" if block % 2 else "/testbed"),
        lambda: bash(f"grep -n 'def \\|class ' {LIB}/{pick(BIG)} | head -80"),
        lambda: bash(f"cat {LIB}/{pick(SMALL)}"),
        lambda: editor("view", f"{LIB}/{pick(CLIPPED)}"),
        lambda: bash("cd /testbed && python3 -m pytest -q 2>&1 | tail -15"),
        lambda: bash(f"ls -R {LIB}/{pick(PACKAGES)} | head -150"),
        lambda: bash(f"cat {LIB}/{pick(BIG)}"),
        lambda: bash(f"wc -l {LIB}/*.py | sort -n | tail -{20 + block}"),
        lambda: editor("view", "/testbed/tests/test_core.py", view_range=[1, 10]),
        lambda: note(block),
    ]
    return calls[step]()


def note(block: int) -> ToolCall:
    """Notes the agent keeps: written in even cycles, edited in odd ones."""
    path = f"/tmp/notes_{block // 2}.md"
    if block % 2 == 0:
        return editor("create", path, file_text=f"# notes {block}\n\n- clamp returns low above high\n")
    return editor("str_replace", path, old_str="returns low", new_str="returns `low`")


def script(turns: int) -> list[str]:
    """The episode's actions: ``turns - 1`` scripted calls, then `submit`."""
    calls = [scripted_call(turn) for turn in range(turns - 1)] + [ToolCall("submit", {})]
    return [HERMES.render([call]) for call in calls]


@dataclass
class Recording:
    """A played episode: the reset's info and each step's (action, observation, reward, terminated, truncated,
    info)."""

    reset_info: dict[str, Any]
    steps: list[tuple[str, str, float, bool, bool, dict[str, Any]]] = field(default_factory=list)


def record(backend: str, actions: list[str]) -> Recording:
    """Play the actions in one real SWE episode, once."""
    env = EnvConfig("rock/SWE-v0", backend=backend, max_turns=len(actions)).make()
    try:
        _, info = env.reset(seed=0, options={"task_id": TASK})
        recording = Recording(info)
        for action in actions:
            observation, reward, terminated, truncated, step_info = env.step(action)
            recording.steps.append((action, observation, float(reward), terminated, truncated, step_info))
            if terminated or truncated:
                break
    finally:
        env.close()
    return recording


# -- the replay ------------------------------------------------------------------------------------------------------


@dataclass
class Replay:
    """One replay through a harness: per turn the request's length and the harness's seconds (and by phase)."""

    requests: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    phases: dict[str, list[float]] = field(default_factory=lambda: {"request": [], "take": [], "observe": []})
    harness: EpisodeHarness | None = None
    given: list[list[int]] = field(default_factory=list)


def replay(recording: Recording, tokenizer: Any, config: HarnessConfig, completions: list[Completion]) -> Replay:
    """Feed the recorded steps through a fresh harness, timing only its calls."""
    clock = time.perf_counter
    harness = EpisodeHarness(ResetInfo.from_info(recording.reset_info), config, tokenizer, 0, len(recording.steps))
    out = Replay(harness=harness)
    for (_, observation, reward, terminated, truncated, info), completion in zip(
        recording.steps, completions, strict=True
    ):
        t0 = clock()
        request = harness.request()
        t1 = clock()
        if request is None:  # the harness ended the episode: nothing fits the budget
            break
        harness.take(completion)
        t2 = clock()
        done = harness.observe(observation, reward, terminated, truncated, info)
        t3 = clock()
        out.requests.append(len(request.ids or ()))
        out.given.append(list(request.ids or ()))
        out.seconds.append(t3 - t0)
        for phase, seconds in zip(("request", "take", "observe"), (t1 - t0, t2 - t1, t3 - t2), strict=True):
            out.phases[phase].append(seconds)
        if done:
            break
    return out


def tokenizing_seconds(template: ChatTemplate, recording: Recording, repeats: int) -> list[float]:
    """Per turn, the median seconds of tokenizing its observation once: what any token-level harness must pay."""
    clock = time.perf_counter
    per_turn = []
    for step in recording.steps:
        samples = []
        for _ in range(repeats):
            started = clock()
            template.encode(step[1])
            samples.append(clock() - started)
        per_turn.append(statistics.median(samples))
    return per_turn


def policy_figures(
    replays: list[Replay], budget: int | None, max_new: int, turns: int, tokenizing: list[float]
) -> dict[str, Any]:
    """What a policy did (its first replay) and what the harness cost (every replay)."""
    first = replays[0]
    trajectory = first.harness.trajectory  # type: ignore[union-attr]
    largest = max(first.requests, default=0)
    exact = all(trajectory.request_ids(k) == ids for k, ids in enumerate(first.given))
    return {
        "turns_reached": len(trajectory.chunks),
        "reached_last_turn": len(trajectory.chunks) == turns,
        "ending": trajectory.ending,
        "max_request_tokens": largest,
        "max_request_plus_new_tokens": largest + max_new,
        "within_budget": budget is None or largest + max_new <= budget,
        "segments": trajectory.stats.segments,
        "segment_reasons": sorted({s.reason for s in trajectory.segments}),
        "elided_tokens": trajectory.stats.elided_tokens,
        "requests_rebuilt_from_record": exact,
        "overhead": summary_ms([s for r in replays for s in r.seconds]),
        "overhead_beyond_tokenizing_the_observation": summary_ms(
            [s - tokenizing[k] for r in replays for k, s in enumerate(r.seconds)]
        ),
        "overhead_by_phase_median_ms": {
            phase: round(statistics.median(s for r in replays for s in r.phases[phase]) * 1000, 3)
            for phase in first.phases
        },
    }


# -- the plot --------------------------------------------------------------------------------------------------------


def plot_requests(per_policy: dict[str, Replay], budget: int, max_new: int, path: Path, title: str) -> None:
    """Request tokens per turn under each policy, and the harness's time per turn."""
    plt = pyplot()
    if plt is None:
        return
    fig, (tokens, times) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
    for i, (name, run) in enumerate(per_policy.items()):
        color = f"C{i}"
        if name != "unbounded":  # its requests grow past the axis: it has no budget
            tokens.plot(range(len(run.requests)), run.requests, label=name, linewidth=1, color=color)
        times.plot(range(len(run.seconds)), [s * 1000 for s in run.seconds], label=name, linewidth=0.8, color=color)
    tokens.axhline(budget - max_new, color="black", linestyle="--", linewidth=0.8, label="budget - max_new_tokens")
    tokens.set_ylabel("request tokens")
    tokens.set_title(title, fontsize=9)
    tokens.legend(fontsize=7)
    times.set_yscale("log")
    times.set_ylabel("harness ms per turn (first replay)")
    times.legend(fontsize=7)
    times.set_xlabel("turn")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# -- main ------------------------------------------------------------------------------------------------------------


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["docker", "podman"], default="docker")
    parser.add_argument("--turns", type=int, default=100)
    parser.add_argument("--budget", type=int, default=32768, help="max_context_tokens: request + max_new_tokens")
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5, help="replays per policy, timings pooled")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON and PNGs go")
    parser.add_argument("--short", action="store_true", help="30 turns, 2 replays: seconds, for CI")
    args = parser.parse_args(argv)
    if args.short:
        args.turns, args.repeats = 30, 2
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    tokenizer = build_tokenizer()
    recording = record(args.backend, script(args.turns))
    template = ChatTemplate(tokenizer, ResetInfo.from_info(recording.reset_info).tools)
    assert template.end_id is not None, "the tiny template must end an assistant turn with a special token"
    completions = [Completion(template.encode(step[0]) + [template.end_id]) for step in recording.steps]
    observation_tokens = sum(len(template.encode(step[1])) for step in recording.steps)
    configs = {"unbounded": HarnessConfig(max_new_tokens=args.max_new_tokens)}
    configs |= {
        name: HarnessConfig(max_context_tokens=args.budget, context=name, max_new_tokens=args.max_new_tokens)
        for name in POLICIES
    }
    replays = {
        name: [replay(recording, tokenizer, c, completions) for _ in range(args.repeats)] for name, c in configs.items()
    }
    turns, tokenizing = len(recording.steps), tokenizing_seconds(template, recording, args.repeats)
    per_policy = {
        name: policy_figures(runs, configs[name].max_context_tokens, args.max_new_tokens, turns, tokenizing)
        for name, runs in replays.items()
    }
    figures = episode_figures(args, recording, observation_tokens) | {
        "tokenizing_an_observation_once": summary_ms(tokenizing),
        "policies": per_policy,
    }
    figures["targets"] = targets(per_policy)
    name = "harness_overhead_short" if args.short else "harness_overhead"
    title = f"harness on a {turns}-turn SWE episode, tiny tokenizer, {args.budget}-token budget"
    bars = {policy: f["overhead"]["median_ms"] for policy, f in per_policy.items()}
    write(name, figures, bars, "harness ms per turn (median, log scale)", title, directory=args.out)
    first = {policy: runs[0] for policy, runs in replays.items()}
    plot_requests(first, args.budget, args.max_new_tokens, args.out / f"{name}_requests.png", title)
    print_table(per_policy)
    return figures


def episode_figures(args: argparse.Namespace, recording: Recording, observation_tokens: int) -> dict[str, Any]:
    last = recording.steps[-1]
    return {
        "backend": args.backend,
        "task": TASK,
        "turns": len(recording.steps),
        "budget_tokens": args.budget,
        "max_new_tokens": args.max_new_tokens,
        "repeats": args.repeats,
        "episode_ending": last[5].get("ending"),
        "observation_chars": sum(len(step[1]) for step in recording.steps),
        "observation_tokens": observation_tokens,
        "calls_failed": sum(
            any(r.get("exit_code") not in (0, None) or r.get("error") for r in step[5].get("tool_results") or ())
            for step in recording.steps
        ),
    }


def targets(per_policy: dict[str, dict[str, Any]]) -> dict[str, Any]:
    budgeted = {name: f for name, f in per_policy.items() if name != "unbounded"}
    return {
        "overhead_median_ms (<= 2), unbounded": per_policy["unbounded"]["overhead"]["median_ms"],
        "overhead_median_ms (<= 2), worst policy": max(f["overhead"]["median_ms"] for f in budgeted.values()),
        "overhead_beyond_tokenizing_median_ms, worst policy": max(
            f["overhead_beyond_tokenizing_the_observation"]["median_ms"] for f in per_policy.values()
        ),
        "every_request_within_budget": all(f["within_budget"] for f in budgeted.values()),
        "policies_short_of_the_last_turn (only keep expected)": [
            f"{n}: {f['turns_reached']} turns, {f['ending']}" for n, f in budgeted.items() if not f["reached_last_turn"]
        ],
        "keep_ends_on_context": budgeted["keep"]["ending"] == "context",
        "requests_rebuilt_from_record": all(f["requests_rebuilt_from_record"] for f in per_policy.values()),
    }


def print_table(per_policy: dict[str, dict[str, Any]]) -> None:
    header = ("policy", "turns", "ending", "max req", "segments", "elided", "median ms", "p90 ms", "-tokenize")
    print("{:<12}{:>6}{:>12}{:>9}{:>9}{:>9}{:>11}{:>9}{:>11}".format(*header))
    for name, f in per_policy.items():
        beyond = f["overhead_beyond_tokenizing_the_observation"]["median_ms"]
        print(
            f"{name:<12}{f['turns_reached']:>6}{str(f['ending']):>12}{f['max_request_tokens']:>9}{f['segments']:>9}"
            f"{f['elided_tokens']:>9}{f['overhead']['median_ms']:>11.3f}{f['overhead']['p90_ms']:>9.3f}{beyond:>11.3f}"
        )


if __name__ == "__main__":
    main()
