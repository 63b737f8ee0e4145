"""What every learner is: a config dataclass (every field documented) beside a class with `train` and `save`.

The conventions, CleanRL / TRL style:
- A learner's config is a dataclass subclassing `LearnerConfig`; each field has a default and a docstring right below
  it saying what it is and its unit. Readable top to bottom, no hidden defaults elsewhere.
- The learner class names its config in `config_class`, takes the config in `__init__`, and is built from keyword
  arguments (`learners.make("NAME", field=value, ...)`) by `from_kwargs`, which rejects unknown names.
- `train(updates)` runs that many updates and returns one dict of float metrics per update; `save(path)` writes what
  is needed to continue or evaluate; `close()` releases environments and engines.

Examples:
    >>> from dataclasses import dataclass, field
    >>> @dataclass
    ... class CountConfig(LearnerConfig):
    ...     step: int = 1
    ...     '''How much each update adds.'''
    >>> class Count(Learner):
    ...     config_class = CountConfig
    ...     def train(self, updates):
    ...         return [{"update": float(i), "value": float(self.config.step * (i + 1))} for i in range(updates)]
    ...     def save(self, path):
    ...         pass
    >>> Count.from_kwargs(step=2).train(2)
    [{'update': 0.0, 'value': 2.0}, {'update': 1.0, 'value': 4.0}]
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

from learners.config import ENV_FIELDS, EnvConfig


@dataclass
class LearnerConfig:
    """Fields every learner has; a learner's own config subclasses this and adds its own, each documented."""

    env: EnvConfig = field(default_factory=EnvConfig)
    """The environments to train in (`learners.config.EnvConfig`: env id, tasks, backend, num_envs, max_turns,
    tool format, ...)."""
    seed: int = 0
    """Seed of the learner's sampling and of the environment resets."""

    @property
    def env_id(self) -> str:
        """``env.env_id``, as configs before `EnvConfig` had it."""
        return self.env.env_id

    @property
    def backend(self) -> str:
        """``env.backend``, as configs before `EnvConfig` had it."""
        return self.env.backend

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> Self:
        """The config with these fields set; an unknown name is an error listing the known ones.

        `EnvConfig`'s fields may be given at the top level too (``env_id=``, ``tasks=``, ``num_envs=``, ...): they
        go into ``env``. ``env=`` takes an `EnvConfig`, an env id or a dict of its fields.
        """
        known = [f.name for f in dataclasses.fields(cls)]
        env = EnvConfig.coerce(kwargs.pop("env", None))
        routed = {k: kwargs.pop(k) for k in list(kwargs) if k in ENV_FIELDS and k not in known}
        unknown = sorted(set(kwargs) - set(known))
        if unknown:
            names = ", ".join(map(repr, unknown))
            raise TypeError(f"{cls.__name__} has no field {names}: known are {', '.join(known)} (and EnvConfig's)")
        return cls(env=env.replace(**routed), **kwargs)


class Learner(ABC):
    """Trains a policy in an environment, one update at a time.

    Attributes:
        config_class: the learner's config dataclass.
        config: this learner's config.
    """

    config_class: ClassVar[type[LearnerConfig]] = LearnerConfig

    def __init__(self, config: LearnerConfig) -> None:
        self.config = config

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> Self:
        """The learner with `config_class(**kwargs)` (unknown names rejected)."""
        return cls(cls.config_class.from_kwargs(**kwargs))

    @abstractmethod
    def train(self, updates: int) -> list[dict[str, float]]:
        """Run `updates` updates; one dict of metrics (mean reward, loss, ...) per update."""

    @abstractmethod
    def save(self, path: str | Path) -> None:
        """Write the learner's state (weights or parameters, and its config) to `path`."""

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs besides the weights `save` writes (optimizer, samplers, RNGs, the update
        count); empty when nothing (the default)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict`'s output onto a learner built from the saved weights."""
        if state:
            raise NotImplementedError(f"{type(self).__name__} cannot restore a saved state")

    def close(self) -> None:  # noqa: B027 - optional: most learners hold an env, some hold nothing
        """Release environments, sandboxes and engines (nothing by default)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def trainable_path(policy: str) -> str:
    """The model directory of a trainable policy spec: `hf:PATH` or a bare PATH.

    Raises:
        ValueError: another engine (`openai:`, `vllm:`, `expert`), which a learner cannot train in place.

    Examples:
        >>> trainable_path("hf:/models/tiny")
        '/models/tiny'
    """
    engine, sep, target = policy.partition(":")
    if not sep or engine == "hf":
        return target if sep else policy
    raise ValueError(f"cannot train policy {policy!r}: learners train an HF model in place, give policy='hf:PATH'")


def trainer_state(learner: Any) -> dict[str, Any]:
    """The state every torch learner here shares: optimizer, Python and torch RNGs, the update count."""
    import torch

    return {
        "optimizer": learner.optimizer.state_dict(),
        "rng": learner.rng.getstate(),
        "torch_rng": torch.get_rng_state(),
        "updates_done": learner.updates_done,
    }


def load_trainer_state(learner: Any, state: dict[str, Any]) -> None:
    """The inverse of `trainer_state`."""
    import torch

    learner.optimizer.load_state_dict(state["optimizer"])
    learner.rng.setstate(state["rng"])
    torch.set_rng_state(state["torch_rng"])
    learner.updates_done = int(state["updates_done"])


def trainable_policy(learner: Learner) -> tuple[Any, Any]:
    """The `HFPolicy` a learner trains in place (``config.policy`` on ``config.device``, torch seeded with
    ``config.seed``) and an AdamW over its weights (``config.learning_rate``, ``config.weight_decay``).

    Raises:
        ValueError: the config names no trainable policy.
    """
    import torch

    from learners.policies.hf import HFPolicy

    config = learner.config
    if not getattr(config, "policy", ""):
        raise ValueError(
            f"{type(learner).__name__} needs policy='hf:PATH': a model directory saved with save_pretrained"
        )
    torch.manual_seed(config.seed)
    policy = HFPolicy(trainable_path(config.policy), device=config.device)  # type: ignore[attr-defined]
    optimizer = torch.optim.AdamW(
        policy.model.parameters(),
        lr=config.learning_rate,
        weight_decay=config.weight_decay,  # type: ignore[attr-defined]
    )
    return policy, optimizer
