"""The torch.distributed world of a run, and how weights travel from learner rank 0 to the generator.

Two transports, both timed and counted by the driver (``sync_seconds``, ``sync_bytes`` in the metrics):

- ``object_store``: rank 0 returns its state dict (CPU tensors) from an actor method; Ray keeps it in the object
  store and hands the generator a reference, so the driver never holds the weights. Works on any devices.
- ``collective``: the learners and the generators join one torch.distributed world (learners are ranks 0..N−1, the
  generators N..N+G−1) and rank 0 broadcasts each tensor over a group of itself and the generators, straight into
  the generators' own tensors. With NCCL on GPUs the weights go device to device, with no host copy and no
  serialization.

The learners' gradient all-reduce runs in the same world, over the learners' own group.
"""

from __future__ import annotations

import datetime
import hashlib
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

TRANSPORTS = ("object_store", "collective")


def choose_transport(setting: str, device: str, engine: str) -> str:
    """The transport a run uses: ``setting`` unless "auto", which picks the collective where NCCL can move the
    weights device to device (CUDA, an HF generator) and the object store otherwise.

    >>> choose_transport("auto", "cpu", "hf"), choose_transport("auto", "cuda", "hf")
    ('object_store', 'collective')
    """
    if setting == "auto":
        return "collective" if device.startswith("cuda") and engine == "hf" else "object_store"
    if setting not in TRANSPORTS:
        raise ValueError(f"unknown weight_sync {setting!r}: use auto, {', '.join(TRANSPORTS)}")
    if setting == "collective" and engine != "hf":
        raise ValueError(f"weight_sync='collective' needs an HF generator, not {engine!r}: use object_store")
    return setting


@dataclass(frozen=True)
class World:
    """Where the run's torch.distributed world meets and who is in it."""

    address: str
    port: int
    learners: int
    """Learner ranks 0..learners−1."""
    generators: int = 0
    """Generators joining as ranks learners..learners+generators−1 (the collective transport; 0 for the other)."""

    @property
    def size(self) -> int:
        return self.learners + self.generators


@dataclass
class Groups:
    """A member's process groups: the learners' (gradients) and the sync group (rank 0 and the generators)."""

    learners: Any
    sync: Any


def rendezvous_point() -> tuple[str, int]:
    """This node's address and a free port, for rank 0 to host the world's store."""
    import ray

    with socket.socket() as s:
        s.bind(("", 0))
        port = s.getsockname()[1]
    return ray.util.get_node_ip_address(), port


def join(world: World, rank: int, device: str, timeout_s: float = 600.0) -> Groups:
    """Join the world as ``rank`` (every member calls this at once), then make both groups, in the same order on
    every member as torch.distributed requires."""
    backend = "cpu:gloo,cuda:nccl" if device.startswith("cuda") else "gloo"
    dist.init_process_group(
        backend,
        init_method=f"tcp://{world.address}:{world.port}",
        rank=rank,
        world_size=world.size,
        timeout=datetime.timedelta(seconds=timeout_s),
    )
    learners = dist.new_group(list(range(world.learners)))
    sync = dist.new_group([0, *range(world.learners, world.size)]) if world.generators else None
    return Groups(learners, sync)


def distinct_tensors(model: Any) -> list[Any]:
    """The state dict's tensors in order, each storage once (tied embeddings are one tensor)."""
    seen: set[int] = set()
    tensors = []
    for tensor in model.state_dict().values():
        if tensor.data_ptr() not in seen:
            seen.add(tensor.data_ptr())
            tensors.append(tensor)
    return tensors


def state_bytes(tensors: Iterable[Any]) -> int:
    """Bytes of these tensors, each storage counted once."""
    seen: dict[int, int] = {}
    for tensor in tensors:
        seen[tensor.data_ptr()] = tensor.numel() * tensor.element_size()
    return sum(seen.values())


def cpu_state(model: Any) -> dict[str, Any]:
    """The model's state dict on the CPU (what the object-store transport ships)."""
    return {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}


def broadcast_weights(model: Any, group: Any, src: int = 0) -> int:
    """Broadcast the model's tensors from global rank ``src`` over ``group``, in place on the receivers (same
    architecture on both ends); the bytes sent."""
    tensors = distinct_tensors(model)
    with torch.no_grad():
        for tensor in tensors:
            dist.broadcast(tensor, src=src, group=group)
    return state_bytes(tensors)


def weights_digest(tensors: Iterable[Any]) -> str:
    """A hash of the tensors' values (bit for bit), to tell whether two copies of a model hold the same weights."""
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def leave() -> None:
    """Leave the world, if this process joined one."""
    if dist.is_initialized():
        dist.destroy_process_group()
