"""`RolloutWorker`: envs on one node, played with `learners.rollout.collect`, sampling through the generator actor.

Each worker is placed on a node (a custom resource) and makes its envs there, so its sandboxes run on that node's
container engine: sandboxes scale with nodes, and no engine sees another node's creates. The policy it plays is a
`GeneratorClient`: the harness builds token-exact requests with a tokenizer loaded here from the model directory,
and only ids travel to the generator and back.

Containers carry two labels besides rock_gym's owner labels: the run (`RUN_LABEL`) and the worker's name
(`WORKER_LABEL`). A worker Ray restarts after its process died (its node lost, or killed) first removes the
containers its predecessor left under its name: their owner process is gone, so `rock-gym gc` would remove them too,
but the run should not wait for someone to call it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from typing import Any

import gymnasium as gym

from learners.config import EnvConfig
from learners.rollout import RolloutStats, StartState, collect
from rock_gym.agent.harness import Completion, HarnessConfig
from rock_gym.envs.record import Trajectory

RUN_LABEL = "rock_gym.run"
WORKER_LABEL = "rock_gym.worker"


class VersionLedger:
    """Which weight version sampled each completion, so that the chunks made from them can say so.

    The harness copies a completion's ids and µ into its chunk; the pair identifies the completion (two samples with
    the same ids and the same log-probabilities to the last bit come from the same weights, or it does not matter).
    """

    def __init__(self) -> None:
        self.versions: dict[tuple[tuple[int, ...], tuple[float, ...]], int] = {}

    def record(self, completions: Sequence[Completion], version: int) -> None:
        for c in completions:
            key = (tuple(c.ids), tuple(c.logprobs))
            self.versions[key] = min(version, self.versions.get(key, version))

    def stamp(self, trajectory: Trajectory) -> None:
        """Set ``weight_version`` on the trajectory's sampled chunks."""
        for chunk in trajectory.sampled:
            key = (tuple(chunk.completion_ids), tuple(chunk.logprobs))
            chunk.weight_version = self.versions.get(key)


class GeneratorClient:
    """A token policy whose `sample` runs on the generator actor, at weights no older than ``min_version``."""

    def __init__(self, generator: Any, tokenizer: Any, eos_ids: Sequence[int], tool_format: str | None) -> None:
        self.generator, self.tokenizer, self.tool_format = generator, tokenizer, tool_format
        self.eos_ids = set(eos_ids)
        self.min_version = 0
        self.ledger = VersionLedger()

    def sample(
        self,
        prompts: Sequence[Sequence[int]],
        *,
        max_new_tokens: int = 512,
        temperature: float = 1.0,
        seed: int | None = None,
    ) -> list[Completion]:
        import ray

        call = self.generator.sample.remote(
            [list(p) for p in prompts],
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            seed=seed,
            min_version=self.min_version,
        )
        completions, version = ray.get(call)
        self.ledger.record(completions, version)
        return completions


def load_tokenizer(model_path: str) -> Any:
    """The model's tokenizer as `HFPolicy` sets it up (left padding, a pad token)."""
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(model_path)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def labelled(env: EnvConfig, labels: dict[str, str]) -> EnvConfig:
    """``env`` with ``labels`` added to its sandboxes' container labels."""
    sandbox = dict(env.sandbox or {})
    sandbox["labels"] = {**sandbox.get("labels", {}), **labels}
    return env.replace(sandbox=sandbox)


def remove_orphans(env: EnvConfig, labels: dict[str, str]) -> list[str]:
    """Remove the containers carrying all of ``labels`` whose owner process is gone; their ids."""
    from rock_gym.sandbox import SandboxConfig
    from rock_gym.sandbox.cleanup import owner_alive
    from rock_gym.sandbox.engines import Engine

    engine = Engine.connect(SandboxConfig(backend=env.backend, engine_url=env.engine_url))  # type: ignore[arg-type]
    removed = []
    for container in engine.labelled_containers():
        found = container.get("Labels") or {}
        if all(found.get(k) == v for k, v in labels.items()) and not owner_alive(found):
            engine.remove(container["Id"])
            removed.append(container["Id"])
    return removed


class RolloutWorker:
    """Envs on this node and a proxy of the generator; plays starts and expert solutions.

    Args:
        env: the envs' config (``num_envs`` of them are made here, on first use).
        model_path: the model directory, for the tokenizer (reachable from this node).
        generator: the generator actor's name (looked up here, so that a restarted worker finds it too).
        name: this worker's name in the run (a container label).
        run_id: the run's id (a container label).
    """

    def __init__(self, env: EnvConfig, model_path: str, generator: str, name: str, run_id: str) -> None:
        import ray

        self.name, self.labels = name, {RUN_LABEL: run_id, WORKER_LABEL: name}
        self.env = labelled(env, self.labels)
        self.removed = remove_orphans(self.env, self.labels)  # a dead predecessor's
        self.tokenizer = load_tokenizer(model_path)
        handle = ray.get_actor(generator)
        info: Any = ray.get(handle.describe.remote())
        self.client: GeneratorClient = GeneratorClient(handle, self.tokenizer, info["eos_ids"], info["tool_format"])
        self.envs: list[gym.Env] | None = None

    def where(self) -> dict[str, Any]:
        """The node this worker runs on (id, host, its resources), its pid and the orphans it removed at start."""
        import ray

        node_id = ray.get_runtime_context().get_node_id()
        node: dict[str, Any] = next((n for n in ray.nodes() if n["NodeID"] == node_id), {})
        return {
            "name": self.name,
            "node_id": node_id,
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "resources": dict(node.get("Resources", {})),
            "removed_orphans": len(self.removed),
        }

    def task_ids(self) -> list[str]:
        return sorted(self._envs()[0].unwrapped.by_id)  # type: ignore[attr-defined]

    def collect(
        self,
        starts: Sequence[StartState],
        *,
        seed: int,
        min_version: int,
        harness: HarnessConfig,
        temperature: float,
        resample: int,
        max_env_exceptions: int,
    ) -> tuple[list[Trajectory], RolloutStats]:
        """Play ``starts`` (episode ``j`` reset with ``seed + j``) at weights ``min_version`` or newer; each sampled
        chunk says which version sampled it."""
        self.client.min_version = min_version
        stats = RolloutStats()
        trajectories = collect(
            self._envs(),
            self.client,  # type: ignore[arg-type]  # a token policy (sample, tokenizer): collect takes those too
            starts=starts,
            harness=harness,
            seed=seed,
            temperature=temperature,
            resample=resample,
            stats=stats,
            max_env_exceptions=max_env_exceptions,
        )
        for trajectory in trajectories:
            self.client.ledger.stamp(trajectory)
        self.client.ledger = VersionLedger()
        return trajectories, stats

    def experts(self, task_ids: Sequence[str], resample: int) -> list[Trajectory]:
        """The tasks' reference solutions played by the `ExpertPolicy`, recorded with the model's tokenizer."""
        from learners.policies.expert import ExpertPolicy

        env = self._envs()[0].unwrapped
        expert = ExpertPolicy(self.env.tool_format, tasks=env.tasks)  # type: ignore[attr-defined]
        return collect(self._envs(), expert, task_ids=task_ids, tokenizer=self.tokenizer, resample=resample)

    def close(self) -> int:
        """Close the envs (and their sandboxes); remove any container of this worker whose owner is gone. How many
        such orphans there were."""
        for env in self.envs or []:
            env.close()
        self.envs = None
        return len(remove_orphans(self.env, self.labels))

    def _envs(self) -> list[gym.Env]:
        if self.envs is None:
            self.envs = [self.env.make() for _ in range(self.env.num_envs)]
        return self.envs
