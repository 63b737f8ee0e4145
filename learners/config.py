"""`EnvConfig`: the one description of the environments a learner, a rollout or an evaluation plays in.

Learner configs nest it (``config.env``), and `collect` and `evaluate` take it, so the env's knobs live in one
documented place instead of being repeated in every signature.

Examples:
    >>> EnvConfig(env_id="rock/Terminal-v0", num_envs=4, max_turns=8).env_kwargs()
    {'backend': 'docker', 'max_turns': 8, 'tool_format': 'hermes'}
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # gymnasium loads with the env, not with the config: the learner core imports without it
    import gymnasium as gym


@dataclass
class EnvConfig:
    """Which env, on which tasks and engine, how many side by side, and the env's own limits."""

    env_id: str = "rock/Terminal-v0"
    """Gymnasium id of the environment (`rock/Terminal-v0`, `rock/SWE-v0`)."""
    tasks: Any = None
    """The tasks to play: anything `rock_gym.tasks.load` takes (task objects, rows, a JSONL file, Harbor dirs);
    None: the env's own (built-in SWE tasks, procedural terminal families)."""
    backend: str = "docker"
    """Container engine of the sandboxes: "docker" or "podman"."""
    engine_url: str | None = None
    """The engine's address (`unix://`, `tcp://`, `ssh://`); None: `$ROCK_GYM_DOCKER_URL`, `$DOCKER_HOST` or local."""
    num_envs: int = 1
    """Envs (so sandboxes) played side by side."""
    max_turns: int = 30
    """Turns before an episode is truncated."""
    tool_format: str = "hermes"
    """How the model writes tool calls: "hermes", "qwen3_coder", "openai", or a plugin's format."""
    sandbox: dict[str, Any] | None = None
    """Extra `SandboxConfig` fields (memory, cpus, pids_limit, runtime, user, ...)."""
    safety: Any = None
    """The safety monitor's configuration (see `RockEnv`); None: the env's default (every category logged)."""
    failure_reward: float = 0.0
    """Reward of a verified, unresolved episode (IPA's failure term needs it non-zero, or a baseline)."""

    def env_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `gym.make` / `gym.make_vec`: the fields that differ from the env's defaults."""
        kwargs: dict[str, Any] = {"backend": self.backend, "max_turns": self.max_turns, "tool_format": self.tool_format}
        optional = {"tasks": self.tasks, "engine_url": self.engine_url, "sandbox": self.sandbox, "safety": self.safety}
        kwargs.update({k: v for k, v in optional.items() if v is not None})
        if self.failure_reward:
            kwargs["failure_reward"] = self.failure_reward
        return kwargs

    def make(self) -> gym.Env:
        """One env."""
        import gymnasium as gym

        import rock_gym.envs  # noqa: F401 - registers the rock/* ids

        return gym.make(self.env_id, **self.env_kwargs())

    def make_vec(self) -> gym.vector.VectorEnv:
        """`num_envs` envs stepped together (`RockVectorEnv`)."""
        import gymnasium as gym

        import rock_gym.envs  # noqa: F401

        return gym.make_vec(self.env_id, num_envs=self.num_envs, **self.env_kwargs())

    def replace(self, **changes: Any) -> EnvConfig:
        """A copy with fields changed."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def coerce(cls, value: EnvConfig | str | dict[str, Any] | None) -> EnvConfig:
        """An `EnvConfig` from itself, an env id, a dict of its fields, or None (the defaults)."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            return cls(env_id=value)
        if isinstance(value, dict):
            known = {f.name for f in dataclasses.fields(cls)}
            unknown = sorted(set(value) - known)
            if unknown:
                raise TypeError(f"EnvConfig has no field {', '.join(map(repr, unknown))}: known are {sorted(known)}")
            return cls(**value)
        raise TypeError(f"an env config must be an EnvConfig, an env id or a dict, not {type(value).__name__}")


#: The names `LearnerConfig.from_kwargs` routes into the nested `EnvConfig` (``env_id=`` as well as ``env=``).
ENV_FIELDS = frozenset(f.name for f in dataclasses.fields(EnvConfig))
