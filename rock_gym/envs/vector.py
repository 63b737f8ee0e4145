"""RockVectorEnv: N rock_gym envs stepped concurrently on threads, since each step mostly waits on the engine."""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space, iterate

from rock_gym.envs.core import RockEnv
from rock_gym.tasks import Task, TerminalTask

#: What one env returns from a vector step: observation, reward, terminated, truncated and its info.
Transition = tuple[str, float, bool, bool, dict[str, Any]]


class RockVectorEnv(VectorEnv[tuple[str, ...], tuple[str, ...], np.ndarray]):
    """`num_envs` rock_gym envs whose resets and steps run concurrently on a thread pool.

    Built by `gymnasium.make_vec("rock/SWE-v0", num_envs=8, tasks=...)`; every keyword other than the ones below
    goes to each env (see `RockEnv`). Observations are a tuple of `num_envs` strings, as gymnasium batches `Text`.

    Args:
        num_envs: how many envs (and, once reset, sandboxes).
        env_id: the id of the envs; by default the subclass's (`make_vec` builds `SWEVectorEnv` or
            `TerminalVectorEnv`), or inferred from `tasks` when `RockVectorEnv` is constructed directly.
        autoreset_mode: `AutoresetMode.NEXT_STEP` (default), `SAME_STEP` or `DISABLED`, or their string values.
        max_workers: threads stepping envs at once; default `num_envs`.
        max_episode_steps: an alias of the envs' `max_turns`.

    A sub-env raising, or a KeyboardInterrupt while waiting on the envs, closes every sandbox before the error
    propagates; `reset()` starts new ones.

    Infos are batched the gymnasium way (per key, with a `_key` mask); a value the env left unset (None, as a step
    before any verification) is batched as absent. `env_info(infos, i)` gives env i's own info back, for
    `StepInfo.from_info` or `ResetInfo.from_info`.

    >>> envs = gym.make_vec("rock/Terminal-v0", num_envs=2, backend="docker")  # doctest: +SKIP
    >>> observations, infos = envs.reset(seed=0)  # doctest: +SKIP
    >>> len(observations), [ResetInfo.from_info(env_info(infos, i)).task_id for i in range(2)]  # doctest: +SKIP
    (2, ['count-lines-7', 'json-field-3'])
    """

    #: The id a subclass's envs have; set by the per-id subclasses registered as vector entry points.
    default_env_id: str | None = None

    def __init__(
        self,
        num_envs: int = 1,
        env_id: str | None = None,
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
        max_workers: int | None = None,
        max_episode_steps: int | None = None,
        **env_kwargs: Any,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be at least 1, got {num_envs}")
        if max_episode_steps is not None:
            env_kwargs["max_turns"] = max_episode_steps
        self.num_envs = num_envs
        self.env_kwargs = env_kwargs
        self.autoreset_mode = AutoresetMode(autoreset_mode)
        self.envs: list[RockEnv] = []
        self.executor = cf.ThreadPoolExecutor(max_workers or num_envs, thread_name_prefix="rock-vector-env")
        self._build(env_id or self.default_env_id or infer_env_id(env_kwargs.get("tasks")))
        self._rewards = np.zeros(num_envs, dtype=np.float64)
        self._terminations = np.zeros(num_envs, dtype=np.bool_)
        self._truncations = np.zeros(num_envs, dtype=np.bool_)
        self._autoreset_envs = np.zeros(num_envs, dtype=np.bool_)
        self._observations: tuple[str, ...] = tuple("" for _ in range(num_envs))

    def _build(self, env_id: str) -> None:
        self.env_id = env_id
        self.envs = [gym.make(env_id, **self.env_kwargs).unwrapped for _ in range(self.num_envs)]  # type: ignore[misc]
        first = self.envs[0]
        self.metadata = {**first.metadata, "autoreset_mode": self.autoreset_mode}
        self.render_mode = first.render_mode
        self.single_observation_space = first.observation_space
        self.single_action_space = first.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

    # -- the VectorEnv API ------------------------------------------------------------------------------------

    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[tuple[str, ...], dict[str, Any]]:
        """Reset every env (or those in `options["reset_mask"]`) concurrently; env i gets seed `seed + i`."""
        seeds = per_env_seeds(seed, self.num_envs)
        options = dict(options or {})
        mask = np.asarray(options.pop("reset_mask", np.ones(self.num_envs, dtype=np.bool_)), dtype=np.bool_)
        if mask.shape != (self.num_envs,) or not mask.any():
            raise ValueError(f"options['reset_mask'] must be a bool array of shape ({self.num_envs},) with a True")
        indices = [i for i in range(self.num_envs) if mask[i]]
        results = self._run({i: self._reset_job(i, seeds[i], options) for i in indices})
        self._terminations[mask] = self._truncations[mask] = self._autoreset_envs[mask] = False
        observations = list(self._observations)
        infos: dict[str, Any] = {}
        for i in indices:
            observations[i], info = results[i]
            infos = self._add_info(infos, info, i)
        self._observations = tuple(observations)  # how gymnasium `concatenate`s Text observations
        return self._observations, infos

    def step(
        self, actions: Sequence[str]
    ) -> tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every env concurrently; an env whose episode ended last step is reset instead (NEXT_STEP)."""
        actions = [] if isinstance(actions, str) else list(iterate(self.action_space, actions))
        if len(actions) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} actions, got {len(actions)}")
        results = self._run({i: self._step_job(i, action) for i, action in enumerate(actions)})
        observations: list[str] = []
        infos: dict[str, Any] = {}
        for i in range(self.num_envs):
            observation, reward, terminated, truncated, info, final = results[i]
            if final is not None:
                infos = self._add_info(infos, final, i)
            infos = self._add_info(infos, info, i)
            observations.append(observation)
            self._rewards[i], self._terminations[i], self._truncations[i] = reward, terminated, truncated
        self._observations = tuple(observations)  # how gymnasium `concatenate`s Text observations
        self._autoreset_envs = np.logical_or(self._terminations, self._truncations)
        return (
            self._observations,
            self._rewards.copy(),
            self._terminations.copy(),
            self._truncations.copy(),
            infos,
        )

    def render(self) -> tuple[Any, ...]:
        return tuple(env.render() for env in self.envs)

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """Call method `name` of every env (or read attribute `name`), in env order."""
        values = [getattr(env, name) for env in self.envs]
        return tuple(value(*args, **kwargs) if callable(value) else value for value in values)

    def get_attr(self, name: str) -> tuple[Any, ...]:
        return tuple(getattr(env, name) for env in self.envs)

    def set_attr(self, name: str, values: Any) -> None:
        """Set attribute `name` of every env: one value for all, or a list/tuple of one per env."""
        if not isinstance(values, list | tuple):
            values = [values] * self.num_envs
        if len(values) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} values for {name!r}, got {len(values)}")
        for env, value in zip(self.envs, values, strict=True):
            setattr(env, name, value)

    def _add_info(self, vector_infos: dict[str, Any], env_info: dict[str, Any], env_num: int) -> dict[str, Any]:
        # A typed info has every key, None where unset; gymnasium types a key's batch by its first value and cannot
        # batch a None beside a dict (a verification), so an unset value is batched as absent (its mask False).
        return super()._add_info(vector_infos, without_none(env_info), env_num)

    @property
    def np_random_seed(self) -> tuple[int | None, ...]:  # type: ignore[override]
        return self.get_attr("np_random_seed")

    def close_extras(self, **kwargs: Any) -> None:
        """Close every env's sandbox and stop the threads (`close()` is idempotent)."""
        if hasattr(self, "executor"):  # also reached from __del__ after a failed __init__
            self.close_sandboxes()
            self.executor.shutdown(wait=True, cancel_futures=True)

    def close_sandboxes(self) -> None:
        """Close every env's sandbox, leaving the vector env usable: `reset()` starts new ones."""
        for env in self.envs:
            env.close()

    # -- jobs -------------------------------------------------------------------------------------------------

    def _reset_job(self, i: int, seed: int | None, options: dict[str, Any]) -> Callable[[], tuple[str, dict]]:
        return lambda: self.envs[i].reset(seed=seed, options=options)

    def _step_job(self, i: int, action: str) -> Callable[[], tuple[str, float, bool, bool, dict, dict | None]]:
        """Env i's part of a vector step: its transition, plus `final_obs`/`final_info` when SAME_STEP resets it."""
        env = self.envs[i]

        def next_step() -> tuple[str, float, bool, bool, dict, dict | None]:
            if self._autoreset_envs[i]:
                observation, info = env.reset()
                return observation, 0.0, False, False, info, None
            return (*env.step(action), None)

        def same_step() -> tuple[str, float, bool, bool, dict, dict | None]:
            observation, reward, terminated, truncated, info = env.step(action)
            if not (terminated or truncated):
                return observation, reward, terminated, truncated, info, None
            final = {"final_obs": observation, "final_info": info}
            observation, info = env.reset()
            return observation, reward, terminated, truncated, info, final

        def disabled() -> tuple[str, float, bool, bool, dict, dict | None]:
            if self._autoreset_envs[i]:
                raise RuntimeError(f"env {i} has ended: reset it (options={{'reset_mask': ...}}) before stepping")
            return (*env.step(action), None)

        modes = {AutoresetMode.NEXT_STEP: next_step, AutoresetMode.SAME_STEP: same_step}
        return modes.get(self.autoreset_mode, disabled)

    def _run(self, jobs: dict[int, Callable[[], Any]]) -> dict[int, Any]:
        """Run one job per env concurrently and return their results by env index.

        A job raising closes every sandbox once all jobs are done, then re-raises; so does a KeyboardInterrupt
        while waiting, after first killing the containers so that running commands end at once.
        """
        futures = {i: self.executor.submit(job) for i, job in jobs.items()}
        try:
            cf.wait(futures.values())
        except BaseException:
            self._abort(list(futures.values()))
            raise
        for future in futures.values():
            error = future.exception()
            if error is not None:
                self.close_sandboxes()
                raise error
        return {i: future.result() for i, future in futures.items()}

    def _abort(self, futures: list[cf.Future[Any]]) -> None:
        for future in futures:
            future.cancel()
        for env in self.envs:
            kill_container(env)
        cf.wait(futures)  # steps return quickly once their containers are gone; resets finish their setup
        self.close_sandboxes()


def kill_container(env: RockEnv) -> None:
    """Remove an env's container without waiting for its sandbox lock, which a running command holds."""
    sandbox = env.episode.sandbox if env.episode is not None else None
    if sandbox is None or sandbox.engine is None or sandbox.container_id is None:
        return
    with contextlib.suppress(Exception):  # best effort: Sandbox.close retries, `rock-gym gc` catches the rest
        sandbox.engine.remove(sandbox.container_id)


def without_none(info: Mapping[str, Any]) -> dict[str, Any]:
    """`info` without its None values, at every depth.

    >>> without_none({"ending": None, "verification": {"resolved": True, "error": None}})
    {'verification': {'resolved': True}}
    """
    return {
        key: without_none(value) if isinstance(value, Mapping) else value
        for key, value in info.items()
        if value is not None
    }


def env_info(infos: Mapping[str, Any], i: int) -> dict[str, Any]:
    """Env `i`'s own info out of a vector step's batched infos (gymnasium's `_key` masks, nested dicts).

    >>> batched = {"turn": np.array([1, 2]), "_turn": np.array([True, True]), "ending": np.array([None, "submitted"]),
    ...            "_ending": np.array([False, True])}
    >>> env_info(batched, 0), env_info(batched, 1)
    ({'turn': 1}, {'turn': 2, 'ending': 'submitted'})
    """
    own: dict[str, Any] = {}
    for key, value in infos.items():
        if key.startswith("_"):
            continue
        mask = infos.get(f"_{key}")
        if mask is not None and not mask[i]:
            continue
        own[key] = env_info(value, i) if isinstance(value, Mapping) else python_value(value[i])
    return own


def python_value(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (other values as they are)."""
    return value.item() if isinstance(value, np.generic) else value


def infer_env_id(tasks: Sequence[Task] | None) -> str:
    """rock/Terminal-v0 for terminal tasks, else rock/SWE-v0."""
    if tasks and all(isinstance(task, TerminalTask) for task in tasks):
        return "rock/Terminal-v0"
    return "rock/SWE-v0"


def per_env_seeds(seed: int | Sequence[int | None] | None, num_envs: int) -> list[int | None]:
    """gymnasium's convention: None for all, `seed + i` for env i, or one seed per env."""
    if seed is None:
        return [None] * num_envs
    if isinstance(seed, int | np.integer):
        return [int(seed) + i for i in range(num_envs)]
    if len(seed) != num_envs:
        raise ValueError(f"expected {num_envs} seeds, got {len(seed)}")
    return list(seed)


class SWEVectorEnv(RockVectorEnv):
    """`gym.make_vec("rock/SWE-v0", ...)`."""

    default_env_id = "rock/SWE-v0"


class TerminalVectorEnv(RockVectorEnv):
    """`gym.make_vec("rock/Terminal-v0", ...)`."""

    default_env_id = "rock/Terminal-v0"
