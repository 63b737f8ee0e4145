"""`Generator`: the sampling engine of a distributed run, in its own actor, and the version of its weights.

Version ``v`` means "the weights after ``v`` optimizer updates". A caller asks for at least a version
(``min_version``): the driver sets it to ``update − max_weight_lag`` for the batch a rollout feeds, so the generator
never samples with weights staler than the configured lag; a call that comes early waits for the weights it needs.
Samples and weight loads take turns (one lock), so no sample ever mixes two versions.

The class is plain Python (tested in process); the cluster runs it as a threaded Ray actor, so that calls waiting
for a version do not block the weight update they wait for.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Sequence
from typing import Any

from learners.distributed.sync import Groups, World, broadcast_weights, distinct_tensors, join, leave, weights_digest
from learners.policies.base import make_policy
from rock_gym.agent.harness import Completion


def choose_engine(setting: str, device: str) -> str:
    """ "hf" or "vllm": ``setting`` unless "auto", which takes vLLM where it is installed and the device is CUDA."""
    if setting == "auto":
        vllm = importlib.util.find_spec("vllm") is not None
        return "vllm" if vllm and device.startswith("cuda") else "hf"
    if setting not in ("hf", "vllm"):
        raise ValueError(f"unknown generator {setting!r}: use auto, hf or vllm")
    return setting


class Generator:
    """A token policy (``sample``: ids in, ids and µ out) with a weight version.

    Args:
        model_path: the model directory (``save_pretrained`` layout), reachable from the generator's node.
        engine: "hf", "vllm" or "auto" (`choose_engine`).
        device: where it samples.
        version: the version of the weights at ``model_path``.
        wait_s: how long a call waits for the version it asks for before it fails.
    """

    def __init__(
        self, model_path: str, engine: str = "auto", device: str = "cpu", version: int = 0, wait_s: float = 1800.0
    ) -> None:
        self.engine = choose_engine(engine, device)
        options = {"device": device} if self.engine == "hf" else {}
        self.policy: Any = make_policy(f"{self.engine}:{model_path}", **options)
        self.version = version
        self.wait_s = wait_s
        self.turn = threading.Condition()
        self.groups: Groups | None = None

    def describe(self) -> dict[str, Any]:
        """What a rollout worker's local proxy needs: the end ids, the tool format; and where this runs."""
        return {
            "eos_ids": sorted(getattr(self.policy, "eos_ids", ()) or ()),
            "tool_format": getattr(self.policy, "tool_format", None),
            "engine": self.engine,
            "pid": os.getpid(),
        }

    def sample(
        self,
        prompts: Sequence[Sequence[int]],
        *,
        max_new_tokens: int = 512,
        temperature: float = 1.0,
        seed: int | None = None,
        min_version: int = 0,
    ) -> tuple[list[Completion], int]:
        """`HFPolicy.sample`, once the weights are at least ``min_version``; the completions and their version.

        Raises:
            TimeoutError: the weights did not reach ``min_version`` within ``wait_s``.
        """
        with self.turn:
            if not self.turn.wait_for(lambda: self.version >= min_version, timeout=self.wait_s):
                raise TimeoutError(
                    f"the generator holds weights {self.version} and was asked for {min_version} or newer: "
                    "no weight update came (is the driver alive?)"
                )
            completions = self.policy.sample(prompts, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
            return completions, self.version

    # -- weights ------------------------------------------------------------------------------------------------

    def load(self, state: dict[str, Any], version: int) -> None:
        """Take a state dict (the object-store transport) as ``version``."""
        with self.turn:
            self.policy.update_weights(state)
            self._set(version)

    def join(self, world: World, rank: int) -> None:
        """Join the run's torch.distributed world as ``rank``, after the learners' (the collective transport)."""
        self.groups = join(world, rank, str(getattr(self.policy, "device", "cpu")))

    def receive(self, version: int) -> int:
        """Receive learner rank 0's broadcast into the model's own tensors, as ``version``; the bytes received."""
        if self.groups is None:
            raise RuntimeError("receive() before join(): this generator is not in the run's world")
        with self.turn:
            received = broadcast_weights(self.policy.model, self.groups.sync, src=0)
            self._set(version)
        return received

    def set_version(self, version: int) -> None:
        """Declare the weights ``version`` without moving them (an update that changed nothing, a resume)."""
        with self.turn:
            self._set(version)

    def digest(self) -> str:
        """A hash of the weights, to compare with the learners'."""
        return weights_digest(distinct_tensors(self.policy.model))

    def close(self) -> None:
        leave()

    def _set(self, version: int) -> None:
        self.version = version
        self.turn.notify_all()
