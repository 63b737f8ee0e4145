"""Sandbox configuration: where a sandbox runs (engine) and how it is confined (limits)."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_IMAGE = "rock-gym/base:bookworm"

#: The capabilities a root shell needs to own, chown and signal its own files and processes; everything else
#: (NET_RAW, MKNOD, SYS_CHROOT, AUDIT_WRITE, NET_BIND_SERVICE, SETFCAP, SETPCAP) is dropped.
SHELL_CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID")

#: Where each backend listens when the user names no address. Podman's compatible API takes no runtime per
#: container: gVisor sandboxes go to a second service started with `--runtime runsc` (`scripts/setup` starts both).
DEFAULT_ENGINE_URLS = {
    "docker": "unix:///var/run/docker.sock",
    "podman": "unix:///run/podman/podman.sock",
    "podman-runsc": "unix:///run/podman/podman-runsc.sock",
}


class SandboxConfig(BaseModel):
    """Everything needed to start one sandbox.

    Examples:
        >>> SandboxConfig(image="python:3.11-slim", backend="podman", memory="512m").cpus
        1.0
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    image: str = Field(DEFAULT_IMAGE, min_length=1, description="Image to start; any image with bash works.")
    backend: Literal["docker", "podman"] = Field("docker", description="Which container engine runs the sandbox.")
    engine_url: str | None = Field(
        None,
        description="Engine API address (unix:///..., tcp://host:port, ssh://user@host). Default: $ROCK_GYM_<BACKEND>"
        "_URL, then $DOCKER_HOST (docker) or $CONTAINER_HOST (podman), then the backend's standard socket; podman "
        "with runtime='runsc': $ROCK_GYM_PODMAN_RUNSC_URL, then unix:///run/podman/podman-runsc.sock.",
    )
    workdir: str = Field("/", description="Working directory of the shell at start.")
    env: dict[str, str] = Field(default_factory=dict, description="Environment variables of the shell.")
    cpus: float = Field(1.0, gt=0, le=64, description="CPU limit in cores.")
    memory: str = Field("1g", pattern=r"^\d+[bkmgBKMG]?$", description="Memory limit (swap included), e.g. 1g.")
    pids_limit: int = Field(256, ge=16, description="Most processes (and threads) alive at once in the sandbox.")
    disk: str | None = Field(
        "10g",
        pattern=r"^\d+[bkmgBKMG]?$",
        description="Most bytes the sandbox may add to its filesystem, e.g. 10g; None: unbounded. Enforced by the "
        "disk watchdog (`rock_gym.sandbox.limits`) on an engine whose storage this host can read (a local engine); "
        "elsewhere a warning is logged once and the disk is unbounded.",
    )
    runtime: Literal["runc", "runsc"] = Field(
        default_factory=lambda: os.environ.get("ROCK_GYM_RUNTIME", "runc"),  # type: ignore[arg-type,return-value]
        description="OCI runtime: runc (namespaces and cgroups) or runsc (gVisor: a user-space kernel between the "
        "agent and the host's; `scripts/setup` registers it with both engines). Default: $ROCK_GYM_RUNTIME, else runc.",
    )
    user: str | None = Field(
        None,
        pattern=r"^[a-z_][a-z0-9_-]{0,31}$",
        description="Unprivileged user the agent's shell runs as (created in the sandbox when missing); setup and "
        "grading still run as root (`Sandbox.run(..., root=True)`). None: the shell is the sandbox's root.",
    )
    network: Literal["none", "bridge"] = Field("none", description="Networking; off unless a user opts in.")
    output_limit: int = Field(64_000, ge=256, description="Most bytes of output kept per call (head and tail).")
    timeout: float = Field(60.0, gt=0, description="Default per-call timeout in seconds.")
    startup_timeout: float = Field(60.0, gt=0, description="Seconds allowed from create to a ready shell.")
    labels: dict[str, str] = Field(default_factory=dict, description="Extra labels on the container.")

    @model_validator(mode="after")
    def _runsc_has_no_network(self) -> SandboxConfig:
        if self.runtime == "runsc" and self.network != "none":
            raise ValueError("runtime='runsc' sandboxes run with networking off (network='none')")
        return self

    @field_validator("workdir")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"workdir must be an absolute path, got {value!r}")
        return value

    def resolved_engine_url(self) -> str:
        """The engine address this config points at, after environment defaults."""
        if self.engine_url:
            return self.engine_url
        if self.backend == "podman" and self.runtime == "runsc":
            return os.environ.get("ROCK_GYM_PODMAN_RUNSC_URL") or DEFAULT_ENGINE_URLS["podman-runsc"]
        override = os.environ.get(f"ROCK_GYM_{self.backend.upper()}_URL")
        if override:
            return override
        generic = os.environ.get("DOCKER_HOST" if self.backend == "docker" else "CONTAINER_HOST")
        return generic or DEFAULT_ENGINE_URLS[self.backend]
