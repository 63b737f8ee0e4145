"""Rollouts: envs, a policy and one harness per episode, with no barrier on the slowest env.

Each env runs on its own thread. Whenever one or more envs have finished their step (or reset), the collector asks
their harnesses for requests and makes *one* batched policy call over exactly those envs, then sends each its
action; the others keep running. A slow command in one sandbox no longer holds up the turns of the rest
(``barrier=True`` restores the old behaviour: every env waits for the slowest, one batch per round).

Episodes start from `StartState` s: a task (or a seeded draw), and optionally an expert prefix of turns that
`reset` replays in a fresh sandbox; the replayed turns are recorded first, marked ``replayed``. Episode ``j`` is
reset with ``seed + j`` and its start, whichever env plays it, so a deterministic policy gives the same trajectories
in either mode. Outcomes are decided by `rock_gym.envs.record.decide_outcome`: episodes the environment spoiled are
``env_error`` and, with ``resample=N``, played again from the same start (up to N times).

Token policies (an ``HFPolicy``: ``tokenizer`` and ``sample``) get token ids in and give token ids out; text-only
engines (``ExpertPolicy``, ``OpenAIPolicy``) get chat messages and give text.

Examples:
    >>> from learners.policies import ExpertPolicy                                      # doctest: +SKIP
    >>> trajectories = collect(EnvConfig("rock/Terminal-v0", num_envs=2), ExpertPolicy(), episodes=4)  # doctest: +SKIP
    >>> [(t.task_id, t.reward, len(t.chunks)) for t in trajectories]                    # doctest: +SKIP
    [('find-files-3', 1.0, 3), ...]
"""

from __future__ import annotations

import concurrent.futures as cf
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from learners.config import EnvConfig
from learners.policies.base import Policy
from rock_gym.agent.harness import Completion, EpisodeHarness, HarnessConfig, Request
from rock_gym.envs.record import Ending, Outcome, ResetInfo, Trajectory, decide_outcome


@dataclass(frozen=True)
class StartState:
    """Where an episode starts: a task (None: the env draws one with the episode's seed) and an expert prefix of
    turns (actions) that `reset` replays before the policy takes over."""

    task_id: str | None = None
    prefix: tuple[str, ...] = ()


@dataclass
class RolloutStats:
    """Where a collection's time went; pass one to `collect` to have it filled."""

    turns: int = 0
    generate_calls: int = 0
    generate_seconds: float = 0.0
    env_seconds: float = 0.0
    resets: int = 0
    env_errors: int = 0
    resampled: int = 0
    env_exceptions: int = 0
    wall_seconds: float = 0.0

    @property
    def mean_batch(self) -> float:
        """Turns per policy call."""
        return self.turns / self.generate_calls if self.generate_calls else 0.0

    @property
    def turns_per_second(self) -> float:
        return self.turns / self.wall_seconds if self.wall_seconds else 0.0


@dataclass
class Sampling:
    """How the policy samples: temperature and the seed of the first policy call (then +1 per call)."""

    temperature: float = 1.0
    seed: int | None = 0


def collect(
    env: EnvConfig | str | Sequence[gym.Env],
    policy: Policy,
    episodes: int | None = None,
    *,
    starts: Sequence[StartState] | None = None,
    task_ids: Sequence[str] | None = None,
    harness: HarnessConfig | None = None,
    seed: int | None = 0,
    temperature: float = 1.0,
    barrier: bool = False,
    resample: int = 0,
    stats: RolloutStats | None = None,
    on_trajectory: Callable[[Trajectory], None] | None = None,
    max_env_exceptions: int = 3,
    tokenizer: Any = None,
    batch_window: float = 0.0,
) -> list[Trajectory]:
    """Play episodes with ``policy`` and return their trajectories in the order of their starts.

    Args:
        env: an `EnvConfig` (``num_envs`` envs are made and closed at the end), an env id, or envs the caller
            made and keeps.
        policy: a token policy (``sample`` and ``tokenizer``) or any text `Policy`.
        episodes: how many episodes, drawn by the envs with seeds ``seed + j``; or give ``starts`` / ``task_ids``.
        starts: one episode per start (a task and an expert prefix).
        task_ids: one episode per id (a shorthand for starts without prefixes).
        harness: the context settings (budget, context policy, max_new_tokens, reminders, loops).
        seed: episode ``j`` resets with ``seed + j``; policy calls are seeded from it too. None: unseeded.
        temperature: the sampling temperature.
        barrier: wait for every env before each policy call (the old vector-step behaviour), for comparison.
        resample: play an episode the environment spoiled again from the same start, up to this many times.
        stats: filled with timings and counts.
        on_trajectory: called with each trajectory as it ends (a progress bar).
        max_env_exceptions: envs raising (each marks its episode an env error) before the exception propagates.
        tokenizer: record a text-only policy's turns as tokens of this tokenizer (its chat template): an expert's
            trajectories for a model to imitate. A token policy's own tokenizer is always used.
        batch_window: once one env is ready, wait up to this many seconds for others to join the same policy call
            (where each call has a fixed cost, as HF ``generate``'s decode loop does); 0: call at once.

    Raises:
        ValueError: the policy declares a tool format other than the env's (before any sandbox starts).
    """
    plan = _starts(episodes, starts, task_ids)
    if not plan:
        return []
    owned = isinstance(env, (EnvConfig, str))
    if isinstance(env, (EnvConfig, str)):
        config = EnvConfig.coerce(env)
        check_tool_format(config.tool_format, policy)
        envs = [config.make() for _ in range(min(config.num_envs, len(plan)))]
    else:
        envs = list(env)
        check_tool_format(_unwrapped(envs[0]).tool_format, policy)
    try:
        collector = Collector(envs, policy, harness or HarnessConfig(), Sampling(temperature, seed), barrier, tokenizer)
        collector.stats = stats or RolloutStats()
        collector.on_trajectory = on_trajectory
        collector.resample, collector.max_env_exceptions = resample, max_env_exceptions
        collector.batch_window = batch_window
        return collector.run(plan, seed)
    finally:
        for made in envs if owned else []:
            made.close()


def check_tool_format(env_format: str, policy: Any) -> None:
    """Refuse a policy that writes another tool format than the env parses; the format must be registered."""
    from rock_gym.plugins import get_plugin_manager

    formats = get_plugin_manager().tool_formats
    if env_format not in formats.names():
        raise ValueError(f"unknown tool format {env_format!r}: registered are {', '.join(sorted(formats.names()))}")
    declared = getattr(policy, "tool_format", None)
    if declared is not None and declared != env_format:
        raise ValueError(
            f"the policy writes tool calls as {declared!r} but the env parses {env_format!r}: "
            f"make the env with tool_format={declared!r} or give the policy tool_format={env_format!r}"
        )


def _starts(episodes: int | None, starts: Sequence[StartState] | None, task_ids: Sequence[str] | None) -> list:
    if starts is not None:
        return list(starts)
    if task_ids is not None:
        return [StartState(task_id) for task_id in task_ids]
    return [StartState() for _ in range(episodes or 0)]


def _unwrapped(env: gym.Env) -> Any:
    return env.unwrapped


@dataclass
class Slot:
    """One env and the episode it plays."""

    env: gym.Env
    job: int = -1
    harness: EpisodeHarness | None = None
    request: Request | None = None
    started: float = 0.0
    action: str = ""


@dataclass
class _Result:
    kind: str  # "reset" or "step"
    value: Any = None
    error: BaseException | None = None
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


class Collector:
    """The state of one `collect` call: which env plays which start, and the policy calls over ready envs."""

    def __init__(
        self,
        envs: list[gym.Env],
        policy: Any,
        harness: HarnessConfig,
        sampling: Sampling,
        barrier: bool,
        tokenizer: Any = None,
    ) -> None:
        self.envs, self.policy, self.harness, self.sampling, self.barrier = envs, policy, harness, sampling, barrier
        self.samples_tokens = hasattr(policy, "sample") and getattr(policy, "tokenizer", None) is not None
        self.tokenizer = policy.tokenizer if self.samples_tokens else tokenizer
        self.end_ids = tuple(getattr(policy, "eos_ids", ()) or ())
        self.max_turns = getattr(_unwrapped(envs[0]), "max_turns", None)
        self.stats = RolloutStats()
        self.on_trajectory: Callable[[Trajectory], None] | None = None
        self.resample, self.max_env_exceptions = 0, 3
        self.batch_window = 0.0
        self.calls = 0

    def run(self, plan: list[StartState], seed: int | None) -> list[Trajectory]:
        began = time.perf_counter()
        self.plan, self.seed = plan, seed
        self.queue: deque[int] = deque(range(len(plan)))
        self.attempts = [0] * len(plan)
        self.results: dict[int, Trajectory] = {}
        slots = [Slot(env) for env in self.envs]
        in_flight: dict[cf.Future[_Result], Slot] = {}
        with cf.ThreadPoolExecutor(len(slots), thread_name_prefix="rollout") as pool:
            try:
                while len(self.results) < len(plan):
                    for slot in slots:
                        if slot.harness is None and slot.job < 0 and self.queue and slot not in in_flight.values():
                            slot.job = self.queue.popleft()
                            in_flight[pool.submit(self._reset, slot)] = slot
                    if not in_flight:
                        break
                    mode = cf.ALL_COMPLETED if self.barrier else cf.FIRST_COMPLETED
                    done, pending = cf.wait(list(in_flight), return_when=mode)
                    if pending and self.batch_window > 0:  # let envs about to finish join this policy call
                        done |= cf.wait(pending, timeout=self.batch_window)[0]
                    for future in done:
                        self._settle(in_flight.pop(future), future.result())
                    self._act(
                        [s for s in slots if s.harness is not None and s not in in_flight.values()], pool, in_flight
                    )
            except BaseException:
                for future in in_flight:
                    future.cancel()
                raise
        self.stats.wall_seconds += time.perf_counter() - began
        return [self.results[j] for j in range(len(plan))]

    # -- on the env threads ---------------------------------------------------------------------------------------

    def _reset(self, slot: Slot) -> _Result:
        job = slot.job
        start = self.plan[job]
        options: dict[str, Any] = {}
        if start.task_id is not None:
            options["task_id"] = start.task_id
        if start.prefix:
            options["prefix"] = list(start.prefix)
        seed = None if self.seed is None else self.seed + job
        began = time.perf_counter()
        try:
            _, info = slot.env.reset(seed=seed, options=options or None)
            return _Result("reset", info, seconds=time.perf_counter() - began, extra={"seed": seed})
        except Exception as exc:  # noqa: BLE001 - an env that cannot start this episode spoils it, nothing more
            return _Result("reset", error=exc, seconds=time.perf_counter() - began, extra={"seed": seed})

    def _step(self, slot: Slot, action: str) -> _Result:
        began = time.perf_counter()
        try:
            return _Result("step", slot.env.step(action), seconds=time.perf_counter() - began)
        except Exception as exc:  # noqa: BLE001 - marked an env error by the main thread
            return _Result("step", error=exc, seconds=time.perf_counter() - began)

    # -- on the collector's thread --------------------------------------------------------------------------------

    def _settle(self, slot: Slot, result: _Result) -> None:
        """Take a finished reset or step into the slot's harness; finish the episode when it ended."""
        self.stats.env_seconds += result.seconds
        if result.error is not None:
            return self._env_exception(slot, result.error)
        if result.kind == "reset":
            self.stats.resets += 1
            reset = ResetInfo.from_info(result.value)
            slot.harness = EpisodeHarness(
                reset, self.harness, self.tokenizer, result.extra["seed"], self.max_turns, self.end_ids
            )
            slot.started = time.perf_counter()
            if slot.harness.done:  # the replayed prefix ended it
                self._finish(slot)
            return None
        assert slot.harness is not None
        observation, reward, terminated, truncated, info = result.value
        if slot.harness.observe(observation, float(reward), bool(terminated), bool(truncated), info):
            self._finish(slot)
        return None

    def _act(self, ready: list[Slot], pool: cf.ThreadPoolExecutor, in_flight: dict) -> None:
        """One policy call over the envs that are ready, then their steps."""
        asking = []
        for slot in ready:
            slot.request = slot.harness.request()  # type: ignore[union-attr]
            if slot.request is None:  # the harness ended the episode (context)
                self._finish(slot)
            else:
                asking.append(slot)
        if not asking:
            return
        began = time.perf_counter()
        actions = self._generate(asking)
        self.stats.generate_seconds += time.perf_counter() - began
        self.stats.generate_calls += 1
        self.stats.turns += len(asking)
        for slot, action in zip(asking, actions, strict=True):
            in_flight[pool.submit(self._step, slot, action)] = slot

    def _generate(self, slots: list[Slot]) -> list[str]:
        requests = [s.request for s in slots]
        seed = None if self.sampling.seed is None else self.sampling.seed + self.calls
        self.calls += 1
        max_new = self.harness.max_new_tokens
        if self.samples_tokens:
            prompts = [r.ids for r in requests]  # type: ignore[union-attr]
            completions: list[Completion] = self.policy.sample(
                prompts, max_new_tokens=max_new, temperature=self.sampling.temperature, seed=seed
            )
            return [s.harness.take(c) for s, c in zip(slots, completions, strict=True)]  # type: ignore[union-attr]
        harnesses = [s.harness for s in slots]
        turns = self.policy.generate(
            [r.messages for r in requests],  # type: ignore[union-attr]
            harnesses[0].trajectory.tools or None,  # type: ignore[union-attr]
            max_new_tokens=max_new,
            temperature=self.sampling.temperature,
            seed=seed,
            task_ids=[h.trajectory.task_id for h in harnesses],  # type: ignore[union-attr]
            turn_indices=[len(h.trajectory.chunks) for h in harnesses],  # type: ignore[union-attr]
        )
        return [h.take(t.text) for h, t in zip(harnesses, turns, strict=True)]  # type: ignore[union-attr]

    # -- endings --------------------------------------------------------------------------------------------------

    def _env_exception(self, slot: Slot, error: BaseException) -> None:
        self.stats.env_exceptions += 1
        if self.stats.env_exceptions > self.max_env_exceptions:
            raise error
        message = f"{type(error).__name__}: {error}"
        if slot.harness is None:  # the reset failed: a trajectory with nothing in it
            start = self.plan[slot.job]
            slot.harness = EpisodeHarness(ResetInfo(start.task_id or ""), self.harness)
        slot.harness.abort(Ending.ENV_EXCEPTION, message)
        self._finish(slot)

    def _finish(self, slot: Slot) -> None:
        """The slot's episode ended: keep it, or play its start again when the env spoiled it."""
        assert slot.harness is not None
        trajectory, job = slot.harness.trajectory, slot.job
        trajectory.seconds = time.perf_counter() - slot.started if slot.started else 0.0
        slot.harness, slot.request, slot.job, slot.started = None, None, -1, 0.0
        if trajectory.outcome is None:  # defensive: every ending sets it
            trajectory.outcome = decide_outcome(trajectory.ending, False, trajectory.verifier_error)
        if trajectory.outcome == Outcome.ENV_ERROR:
            self.stats.env_errors += 1
            if self.attempts[job] < self.resample:
                self.attempts[job] += 1
                self.stats.resampled += 1
                self.queue.appendleft(job)
                return
        self.results[job] = trajectory
        if self.on_trajectory is not None:
            self.on_trajectory(trajectory)
