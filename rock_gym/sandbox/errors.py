"""The sandbox layer's exceptions; each message names the fix."""

from __future__ import annotations


class SandboxError(RuntimeError):
    """Base class of every error raised by the sandbox layer."""


class EngineUnavailableError(SandboxError):
    """The container engine cannot be reached at the configured address."""


class ImageNotFoundError(SandboxError):
    """The configured image is not present in the engine."""


class SandboxStartError(SandboxError):
    """A sandbox could not be started or did not become ready in time (its container is removed)."""


class SandboxClosedError(SandboxError):
    """The sandbox was used after close(), or its container is gone."""
