"""Container sandboxes: a hardened container with a persistent shell, on Docker or Podman.

The sandbox layer imports nothing from envs, tasks or learners.
"""

from typing import TYPE_CHECKING

from rock_gym.sandbox.config import DEFAULT_IMAGE, SandboxConfig
from rock_gym.sandbox.errors import (
    EngineUnavailableError,
    ImageNotFoundError,
    SandboxClosedError,
    SandboxError,
    SandboxStartError,
)

if TYPE_CHECKING:  # at run time these load lazily (see __getattr__), so that docker loads only when used
    from rock_gym.sandbox.pool import SandboxPool
    from rock_gym.sandbox.sandbox import Sandbox
    from rock_gym.sandbox.session import CommandResult

__all__ = [
    "DEFAULT_IMAGE",
    "CommandResult",
    "EngineUnavailableError",
    "ImageNotFoundError",
    "Sandbox",
    "SandboxClosedError",
    "SandboxConfig",
    "SandboxError",
    "SandboxPool",
    "SandboxStartError",
]


def __getattr__(name: str) -> object:
    # The docker SDK loads only when a sandbox is actually used.
    if name == "Sandbox":
        from rock_gym.sandbox.sandbox import Sandbox

        return Sandbox
    if name == "CommandResult":
        from rock_gym.sandbox.session import CommandResult

        return CommandResult
    if name == "SandboxPool":
        from rock_gym.sandbox.pool import SandboxPool

        return SandboxPool
    raise AttributeError(f"module 'rock_gym.sandbox' has no attribute {name!r}")
