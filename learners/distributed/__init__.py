"""IPA on a Ray cluster: rollout actors own envs on their nodes, generator actors sample, DDP learner actors train.

Chosen by `IPAConfig` fields (``ray_address``, ``rollout_workers``, ``learner_workers``, ``max_weight_lag``, ...):
``learners.make("ipa", ..., ray_address="auto")`` gives a `DistributedIPALearner`, the same update as `IPALearner`
(the same starts, batch, loss and resampling code) with its two heavy parts moved out of process:

- ``rollout.py``: `RolloutWorker`, pinned to a node by a custom resource, drives that node's container engine and
  plays episodes with `learners.rollout.collect`, sampling through the generator; a restarted worker removes the
  containers its dead predecessor left.
- ``generator.py``: `Generator`, the sampling engine (HF, or vLLM where installed) and its weight version; it never
  samples with weights older than the caller allows.
- ``learner.py``: `LearnerWorker`, one DDP rank of the IPA loss on a shard of each batch (gloo on CPU, NCCL on GPU).
- ``sync.py``: the torch.distributed world and weight transport (object store or a broadcast), with bytes and seconds.
- ``cluster.py``: connecting to Ray and placing the actors; ``driver.py``: the update loop and its faults.

Importing this package imports nothing heavy; its modules import ray and torch.
"""
