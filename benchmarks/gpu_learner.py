"""GPU learner: the IPA learner step (packed, bf16, chunked log-probs) against plain HF training, and fast sampling
against plain `generate`, on one ~0.5B Qwen2-shaped model.

    python benchmarks/gpu_learner.py                  # CUDA: Qwen2-0.5B shape, 8x2048 tokens; under 5 minutes
    python benchmarks/gpu_learner.py --short          # CUDA, fewer steps and new tokens: a smoke run
    python benchmarks/gpu_learner.py --device cpu     # a tiny Qwen2 on CPU, in seconds (the tested mode)

The model is built from a config with random weights (CUDA: 24 layers, hidden 896, intermediate 4864, 14 heads / 2
KV heads, vocab 151936, tied embeddings: 494M parameters), fp32 weights (the master copy) under bf16 autocast.

(a) plain: ``model(input_ids, labels=input_ids)`` forward and backward on rows x seq tokens, eager, sdpa attention.
(b) IPA learner step on the same tokens, cut into agent-like segments of 1/4, 1/2 or all of a row (a prompt, then
    turns of sampled tokens, which carry the loss, and observations): the segments packed into rows of ``seq``
    tokens (`learners.ipa.packing`: block-diagonal attention, or flash-attention-2's varlen path where installed),
    log-probs through the head in checkpointed slices, the IPA loss (`learners.ipa.loss`), gradient clipping, an
    AdamW step. π_old is computed once beforehand (once per update, whatever the epochs), timed apart. Variants:
    with and without gradient checkpointing, eager and with the decoder layers compiled.
(c) the loss over the IPA steps, all on the same fixed batch and π_old: it must fall.
(d) generation, on a bf16 copy of the weights: plain ``generate`` (sampling, dynamic cache) against
    `learners.policies.fast_generate.StaticSampler` (static KV cache, decode step compiled into a CUDA graph,
    µ log-probs on the fly), batch x prompt tokens in, new tokens out; tokens/s counts new tokens, prefill included.

FLOPs (the convention of the anchors below, which it reproduces: 87k tokens/s is 28% MFU on an H200):
training 6·N·T + 6·L·d·Σs² (attention over each sequence of s tokens, causal), N the matmul parameters (the output
head counted on the positions it projects: all of them for plain HF, the loss positions for IPA), L layers, d the
attention width; generation 2·N per new token. MFU = FLOPs/s over the GPU's dense bf16 peak (`PEAK_BF16_TFLOPS`,
or ``--peak-tflops``). Peak memory is ``torch.cuda.max_memory_allocated`` over the timed steps (the IPA figure
includes AdamW's state; plain HF has no optimizer).

Anchors for the CUDA shape on one H200: plain HF eager 87k tokens/s (28% MFU, 56 GB peak), compiled 115k (37.5%,
33 GB); ``generate`` 1,061 tokens/s. Targets: IPA step >= 45% MFU and <= 60% of the plain peak memory; fast sampling
>= 5x ``generate``. Results: results/gpu_learner_<device>[_short].json and .png (no PNG without matplotlib).

Imports torch and transformers only (no gymnasium, pydantic, docker, ray, matplotlib or rich needed).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import math
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT)]

import runner  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

from learners.ipa.loss import ChunkTokens, LossSettings, chunk_returns, ipa_loss, unmasked_tokens  # noqa: E402
from learners.ipa.packing import attention_implementation, pack_rows, packed_logprobs  # noqa: E402

#: Dense bf16 tensor-core peak, TFLOP/s, by a substring of `torch.cuda.get_device_name()` (first match wins).
PEAK_BF16_TFLOPS = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.5),
    ("H200 NVL", 835.5),
    ("GH200", 989.4),
    ("H200", 989.4),
    ("H100", 989.4),
    ("H800", 989.4),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.1),
    ("L40", 181.0),
    ("L4", 121.0),
)

QWEN2_05B = {
    "vocab_size": 151936,
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True,
}
TINY_QWEN2 = {**QWEN2_05B, "vocab_size": 2048, "hidden_size": 64, "intermediate_size": 176, "num_hidden_layers": 2}
TINY_QWEN2.update(num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024)


@dataclass(frozen=True)
class Shape:
    """What one run measures: the model, the training batch, the generation batch, the steps timed."""

    model: dict[str, Any]
    rows: int
    seq: int
    gen_batch: int
    prompt: int
    new_tokens: int
    steps: int
    warmup: int
    lr: float


SHAPES = {
    "cuda": Shape(QWEN2_05B, rows=8, seq=2048, gen_batch=64, prompt=512, new_tokens=256, steps=5, warmup=2, lr=1e-4),
    "cpu": Shape(TINY_QWEN2, rows=4, seq=128, gen_batch=4, prompt=32, new_tokens=16, steps=3, warmup=1, lr=1e-3),
}


# -- the fixed batch ------------------------------------------------------------------------------------------------


@dataclass
class Segment:
    """One token segment of an agent trajectory (the fields of `learners.ipa.chunks.Row`)."""

    ids: list[int]
    positions: list[int] = field(default_factory=list)
    chunks: list[int] = field(default_factory=list)
    mu: list[float] = field(default_factory=list)


@dataclass
class Batch:
    """The segments, the same tokens as plain rows, and per chunk its return and outcome."""

    segments: list[Segment]
    rows: Any
    returns: list[float]
    success: list[bool]


def fixed_batch(shape: Shape, seed: int = 0) -> Batch:
    """Rows of ``seq`` random tokens, each cut into segments of seq, seq/2 or seq/4 tokens (sizes that divide each
    other, so first-fit decreasing packs them back into exactly ``rows`` rows)."""
    rng = random.Random(seed)
    q = shape.seq // 4
    patterns = [[4 * q], [2 * q, 2 * q], [2 * q, q, q], [q, q, q, q]]
    vocab = shape.model["vocab_size"]
    batch = Batch([], None, [], [])
    rows = []
    for r in range(shape.rows):
        row: list[int] = []
        for length in patterns[r % len(patterns)]:
            segment = Segment([rng.randrange(vocab) for _ in range(length)])
            add_turns(batch, segment, mu=-math.log(vocab))
            batch.segments.append(segment)
            row += segment.ids
        rows.append(row)
    batch.rows = rows
    return batch


def add_turns(batch: Batch, segment: Segment, mu: float, turns: int = 2) -> None:
    """Mark a segment's loss positions: a prompt (1/8), then ``turns`` chunks of 3/4 sampled tokens and 1/4
    observation; each chunk's return is γ^(K−k)·R with R = 1.

    Every trajectory succeeded, so the loss is a return-weighted log-likelihood that must fall as the model fits the
    batch. (On a failed trajectory's chunks the loss's value need not fall: their weight, the clipped ratio, shrinks
    as their log-probs do. The step costs the same either way.)"""
    n = len(segment.ids)
    prompt = n // 8
    span = (n - prompt) // turns
    first = len(batch.returns)
    batch.returns += chunk_returns(list(range(turns)), turns - 1, 1.0, 0.95)
    batch.success += [True] * turns
    for k in range(turns):
        start = prompt + k * span
        for p in range(max(start, 1), start + span * 3 // 4):
            segment.positions.append(p)
            segment.chunks.append(first + k)
            segment.mu.append(mu)


def chunk_tokens(batch: Batch, logp_old: Any) -> ChunkTokens:
    device = logp_old.device
    chunks = len(batch.returns)
    return ChunkTokens(
        logp=None,
        logp_old=logp_old,
        logp_mu=torch.tensor([m for s in batch.segments for m in s.mu], device=device),
        chunk=torch.tensor([c for s in batch.segments for c in s.chunks], device=device),
        chunk_return=torch.tensor(batch.returns, device=device),
        success=torch.tensor(batch.success, device=device),
        imitation=torch.zeros(chunks, dtype=torch.bool, device=device),
    )


# -- model, FLOPs, timing ------------------------------------------------------------------------------------------


def build_model(shape: Shape, device: str, seed: int = 0) -> Any:
    """The Qwen2 of the shape with random weights, fp32, built directly on ``device``, sdpa attention."""
    torch.manual_seed(seed)
    config = transformers.Qwen2Config(**shape.model, attn_implementation="sdpa")
    with torch.device(device):
        model = transformers.Qwen2ForCausalLM(config)
    return model.train()


def use_attention(model: Any, implementation: str) -> None:
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation(implementation)
    else:  # older transformers
        model.config._attn_implementation = implementation


def flash_available(device: str) -> bool:
    return device == "cuda" and importlib.util.find_spec("flash_attn") is not None


@dataclass(frozen=True)
class Flops:
    """The model's matmul sizes, for FLOP counts."""

    body: int
    head: int
    layers: int
    width: int

    @classmethod
    def of(cls, model: Any) -> Flops:
        config = model.config
        total = sum(p.numel() for p in model.parameters())
        embed = model.get_input_embeddings().weight
        head = model.get_output_embeddings().weight
        body = total - embed.numel() - (0 if head is embed else head.numel())
        heads = config.num_attention_heads
        width = heads * (getattr(config, "head_dim", None) or config.hidden_size // heads)
        return cls(body, head.numel(), config.num_hidden_layers, width)

    @property
    def params(self) -> int:
        return self.body + self.head

    def train(self, tokens: int, head_tokens: int, sequence_lengths: list[int]) -> float:
        attention = self.layers * self.width * sum(n * n for n in sequence_lengths)
        return 6.0 * (self.body * tokens + self.head * head_tokens + attention)

    def generate(self, tokens: int) -> float:
        return 2.0 * self.params * tokens


def peak_tflops(device: str, override: float | None) -> float | None:
    if override:
        return override
    if device != "cuda":
        return None
    name = torch.cuda.get_device_name()
    return next((peak for key, peak in PEAK_BF16_TFLOPS if key in name), None)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def measure(step: Callable[[], Any], device: str, warmup: int, steps: int) -> tuple[list[float], list, float | None]:
    """Run ``warmup`` untimed then ``steps`` timed calls; their seconds, their results, the peak GiB while timed."""
    for _ in range(warmup):
        step()
    sync(device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seconds, results = [], []
    for _ in range(steps):
        started = time.perf_counter()
        results.append(step())
        sync(device)
        seconds.append(time.perf_counter() - started)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None
    return seconds, results, peak


def figures_of(seconds: list[float], tokens: int, flops: float, peak: float | None, gib: float | None) -> dict:
    median = statistics.median(seconds)
    mfu = flops / median / (peak * 1e12) if peak else None
    return {
        "step_ms": round(median * 1000, 2),
        "tokens_per_s": round(tokens / median, 1),
        "tflops": round(flops / median / 1e12, 3),
        "mfu": round(mfu, 4) if mfu is not None else None,
        "peak_gib": round(gib, 2) if gib is not None else None,
    }


def autocast(device: str, enabled: bool) -> Any:
    return torch.autocast(device, dtype=torch.bfloat16, enabled=enabled)


def release(device: str) -> None:
    if device == "cuda":
        torch.cuda.empty_cache()


# -- (a) plain HF ----------------------------------------------------------------------------------------------


def plain_hf(model: Any, batch: Batch, args: Any, flops: Flops, peak: float | None) -> dict:
    ids = torch.tensor(batch.rows, device=args.device)

    def step() -> None:
        with autocast(args.device, args.bf16):
            loss = model(input_ids=ids, labels=ids, use_cache=False).loss
        loss.backward()
        model.zero_grad(set_to_none=True)

    seconds, _, gib = measure(step, args.device, args.shape.warmup, args.shape.steps)
    release(args.device)
    tokens = ids.numel()
    work = flops.train(tokens, tokens, [len(r) for r in batch.rows])
    return {**figures_of(seconds, tokens, work, peak, gib), "attention": attention_implementation(model)}


# -- (b, c) the IPA learner step ---------------------------------------------------------------------------------


@dataclass
class IPARun:
    """The IPA learner's state over the fixed batch: optimizer, π_old, the loss's inputs, every step's loss."""

    model: Any
    batch: Batch
    args: Any
    optimizer: Any = None
    tokens: Any = None
    normalizer: int = 0
    losses: list[float] = field(default_factory=list)
    settings: LossSettings = field(default_factory=LossSettings)

    def logprobs(self) -> Any:
        with autocast(self.args.device, self.args.bf16):
            return packed_logprobs(self.model, self.batch.segments, 1.0, 1024, self.args.shape.seq)

    def pi_old(self) -> dict:
        """π_old for the batch (no gradient), timed; sets the loss's inputs."""
        with torch.no_grad():
            seconds, results, _ = measure(self.logprobs, self.args.device, 1, 2)
        t = chunk_tokens(self.batch, results[-1])
        self.tokens = t
        self.normalizer = unmasked_tokens(t.logp_old, t.logp_mu, t.chunk, t.imitation, self.settings)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.args.shape.lr, weight_decay=0.0)
        tokens = sum(len(s.ids) for s in self.batch.segments)
        return {"tokens_per_s": round(tokens / statistics.median(seconds), 1)}

    def step(self) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        self.tokens.logp = self.logprobs()
        loss = ipa_loss(self.tokens, self.settings, self.normalizer).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        return float(loss.detach())

    def variant(self, flops: Flops, peak: float | None) -> dict:
        seconds, losses, gib = measure(self.step, self.args.device, self.args.shape.warmup, self.args.shape.steps)
        self.losses += losses
        release(self.args.device)
        segments = self.batch.segments
        tokens = sum(len(s.ids) for s in segments)
        head_tokens = sum(len(s.positions) for s in segments)
        work = flops.train(tokens, head_tokens, [len(s.ids) for s in segments])
        return figures_of(seconds, tokens, work, peak, gib)


def ipa_variants(model: Any, run: IPARun, args: Any, flops: Flops, peak: float | None) -> dict:
    """Each asked-for (compile, checkpointing) variant, eager ones first (compiling is not undone)."""
    results = {}
    compiled = False
    for compile_layers in _switch(args.compile):
        for checkpointing in _switch(args.gradient_checkpointing):
            if compile_layers and not compiled:
                for layer in model.base_model.layers:
                    layer.compile(dynamic=False)
                compiled = True
            checkpoint_layers(model, checkpointing)
            name = "ipa" + ("_compiled" if compile_layers else "_eager") + ("_checkpointed" if checkpointing else "")
            started = time.perf_counter()
            results[name] = run.variant(flops, peak)
            results[name]["wall_s"] = round(time.perf_counter() - started, 1)
            print(f"  {name}: {results[name]}", flush=True)
    checkpoint_layers(model, False)
    return results


def checkpoint_layers(model: Any, enabled: bool) -> None:
    """Activation checkpointing on or off (transformers 5's name for it, or 4.x's)."""
    prefix = "activation" if hasattr(model, "activation_checkpointing_enable") else "gradient"
    if enabled:
        getattr(model, f"{prefix}_checkpointing_enable")({"use_reentrant": False})
    else:
        getattr(model, f"{prefix}_checkpointing_disable")()


def _switch(value: str) -> list[bool]:
    return {"off": [False], "on": [True], "both": [False, True]}[value]


# -- (d) generation ----------------------------------------------------------------------------------------------


def load_fast_generate() -> Any:
    """`learners.policies.fast_generate`, by file where the package cannot load (learners/policies/__init__ imports
    the expert policy, hence rock_gym and gymnasium, which a bare GPU machine lacks)."""
    try:
        from learners.policies import fast_generate
    except ImportError:
        path = ROOT / "learners" / "policies" / "fast_generate.py"
        spec = importlib.util.spec_from_file_location("rock_gym_fast_generate", path)
        assert spec is not None and spec.loader is not None
        fast_generate = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(fast_generate)
    return fast_generate


def generation(model: Any, args: Any, flops: Flops, peak: float | None) -> dict:
    """Plain `generate` against the static sampler, same prompts, both sampling at temperature 1."""
    shape = args.shape
    dtype = torch.bfloat16 if args.bf16 else torch.float32
    sampler_model = build_model(shape, args.device).to(dtype).eval()  # the sampler's copy, as an engine holds one
    sampler_model.load_state_dict(model.state_dict())
    rng = random.Random(1)
    prompts = [
        [rng.randrange(1, shape.model["vocab_size"]) for _ in range(shape.prompt)] for _ in range(shape.gen_batch)
    ]
    ids = torch.tensor(prompts, device=args.device)
    config = transformers.GenerationConfig(
        do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=args.new_tokens, pad_token_id=0
    )
    tokens = shape.gen_batch * args.new_tokens

    def plain() -> None:
        with torch.no_grad():
            out = sampler_model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config)
        assert out.shape[1] - ids.shape[1] == args.new_tokens, "generate stopped early"

    sampler = load_fast_generate().StaticSampler(sampler_model, compile=args.compile_sampler)
    warm_started = time.perf_counter()
    sampler.sample(prompts, args.new_tokens, seed=0)  # compiles and captures the decode step
    warmup_s = time.perf_counter() - warm_started
    fast_seconds, _, fast_gib = measure(lambda: sampler.sample(prompts, args.new_tokens, seed=0), args.device, 0, 2)
    plain_seconds, _, plain_gib = measure(plain, args.device, 0, 1)
    work = flops.generate(tokens)
    result = {
        "plain_generate": figures_of(plain_seconds, tokens, work, peak, plain_gib),
        "static_sampler": {**figures_of(fast_seconds, tokens, work, peak, fast_gib), "warmup_s": round(warmup_s, 1)},
        "compiled": sampler.compile,
        "dtype": str(dtype).removeprefix("torch."),
    }
    result["speedup"] = round(statistics.median(plain_seconds) / statistics.median(fast_seconds), 2)
    return result


# -- the run ---------------------------------------------------------------------------------------------------------


def parse(argv: list[str] | None = None) -> Any:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_device = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--device", choices=["cuda", "cpu"], default=default_device)
    parser.add_argument("--short", action="store_true", help="fewer timed steps and new tokens: a smoke run")
    parser.add_argument("--compile", choices=["off", "on", "both"], default=None, help="IPA step variants (cuda: both)")
    parser.add_argument(
        "--gradient-checkpointing", choices=["off", "on", "both"], default="both", help="IPA step variants"
    )
    parser.add_argument("--no-compile-sampler", dest="compile_sampler", action="store_false", default=None)
    parser.add_argument("--no-flash", action="store_true", help="sdpa with block masks even where flash_attn is")
    parser.add_argument("--fp32", dest="bf16", action="store_false", default=None, help="no bf16 autocast (cpu: none)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak of the device, TFLOP/s")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads in cpu mode (tiny ops: 1 is fastest)")
    parser.add_argument("--out", default=None, help=f"output directory (default {runner.RESULTS})")
    args = parser.parse_args(argv)
    args.shape = SHAPES[args.device]
    if args.short:
        args.shape = dataclasses.replace(args.shape, steps=2, warmup=1)
    args.new_tokens = max(1, args.shape.new_tokens // (4 if args.short else 1))
    args.compile = args.compile or ("both" if args.device == "cuda" else "off")
    args.compile_sampler = args.device == "cuda" if args.compile_sampler is None else args.compile_sampler
    args.bf16 = args.device == "cuda" if args.bf16 is None else args.bf16
    return args


def run(args: Any) -> dict:
    started = time.perf_counter()
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    model = build_model(args.shape, args.device)
    flops = Flops.of(model)
    peak = peak_tflops(args.device, args.peak_tflops)
    batch = fixed_batch(args.shape)
    figures: dict[str, Any] = {"setup": setup_figures(model, batch, args, flops, peak)}
    print("plain HF forward+backward ...", flush=True)
    figures["plain"] = plain_hf(model, batch, args, flops, peak)
    if flash_available(args.device) and not args.no_flash:
        try:
            use_attention(model, "flash_attention_2")
        except (ImportError, ValueError) as error:  # flash_attn present but unusable (version, GPU)
            print(f"flash-attention-2 unusable, packing with sdpa masks: {error}", flush=True)
    figures["setup"]["ipa_attention"] = attention_implementation(model)
    ipa = IPARun(model, batch, args)
    print("IPA learner step ...", flush=True)
    figures["pi_old"] = ipa.pi_old()
    figures.update(ipa_variants(model, ipa, args, flops, peak))
    figures["loss"] = {"values": [round(v, 6) for v in ipa.losses], "fell": ipa.losses[-1] < ipa.losses[0]}
    model.zero_grad(set_to_none=True)
    ipa.optimizer = None  # AdamW's state, freed before sampling
    print("generation ...", flush=True)
    figures["generation"] = generation(model, args, flops, peak)
    release(args.device)
    figures["targets"] = targets(figures, applicable=args.device == "cuda" and not args.short)
    figures["wall_s"] = round(time.perf_counter() - started, 1)
    return figures


def setup_figures(model: Any, batch: Batch, args: Any, flops: Flops, peak: float | None) -> dict:
    packed = pack_rows(batch.segments, args.shape.seq)
    return {
        "device": torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "bf16_autocast": args.bf16,
        "peak_bf16_tflops": peak,
        "params": flops.params,
        "model": {k: v for k, v in args.shape.model.items() if k != "max_position_embeddings"},
        "batch": {"rows": args.shape.rows, "seq": args.shape.seq, "segments": len(batch.segments)},
        "segment_lengths": sorted({len(s.ids) for s in batch.segments}),
        "packed_rows": int(packed.ids.shape[0]),
        "loss_tokens": sum(len(s.positions) for s in batch.segments),
        "generation": {"batch": args.shape.gen_batch, "prompt": args.shape.prompt, "new_tokens": args.new_tokens},
    }


def targets(figures: dict, applicable: bool) -> dict:
    """The issue's targets, each with the run's figure and whether it is met: None where not measured, or where the
    run is not the full CUDA shape they are set for (all but the loss)."""
    ipa = {k: v for k, v in figures.items() if k.startswith("ipa_")}
    mfus = [v["mfu"] for v in ipa.values() if v["mfu"] is not None]
    plain_peak = figures["plain"]["peak_gib"]
    ratios = [v["peak_gib"] / plain_peak for v in ipa.values() if v["peak_gib"] is not None and plain_peak]
    speedup = figures["generation"]["speedup"]
    best_mfu = max(mfus) if mfus else None
    lowest = min(ratios) if ratios else None
    return {
        "ipa_mfu_best (>= 0.45)": best_mfu,
        "ipa_peak_vs_plain_peak_lowest (<= 0.60)": round(lowest, 3) if lowest is not None else None,
        "static_sampler_vs_generate (>= 5)": speedup,
        "met": {
            "mfu": None if best_mfu is None or not applicable else best_mfu >= 0.45,
            "memory": None if lowest is None or not applicable else lowest <= 0.60,
            "generation": speedup >= 5 if applicable else None,
            "loss_fell": figures["loss"]["fell"],
        },
    }


def table(figures: dict) -> str:
    rows = [("plain HF fwd+bwd", figures["plain"])]
    rows += [(k, v) for k, v in figures.items() if k.startswith("ipa_")]
    gen = figures["generation"]
    rows += [("generate (plain)", gen["plain_generate"]), ("static sampler", gen["static_sampler"])]
    lines = [f"{'path':<34}{'tokens/s':>12}{'ms':>10}{'MFU':>8}{'peak GiB':>10}"]
    for name, f in rows:
        mfu = f"{f['mfu']:.1%}" if f["mfu"] is not None else "-"
        gib = f"{f['peak_gib']:.1f}" if f["peak_gib"] is not None else "-"
        lines.append(f"{name:<34}{f['tokens_per_s']:>12,.0f}{f['step_ms']:>10.1f}{mfu:>8}{gib:>10}")
    lines.append(f"loss on the fixed batch: {figures['loss']['values'][0]:.4f} -> {figures['loss']['values'][-1]:.4f}")
    lines.append(f"targets: {json.dumps(figures['targets'])}")
    return "\n".join(lines)


def write(name: str, figures: dict, directory: Path) -> Path:
    """`runner.write`: the JSON record (commit and machine included) and the tokens/s bars as a PNG (where matplotlib
    is); without git on the machine, the JSON alone with the commit unknown."""
    bars = {"plain": figures["plain"]["tokens_per_s"]}
    bars.update({k.removeprefix("ipa_"): v["tokens_per_s"] for k, v in figures.items() if k.startswith("ipa_")})
    bars["generate"] = figures["generation"]["plain_generate"]["tokens_per_s"]
    bars["static sampler"] = figures["generation"]["static_sampler"]["tokens_per_s"]
    title = f"learner step and sampling, {figures['setup']['device']}"
    try:
        return runner.write(name, figures, bars, "tokens/s", title, directory)
    except FileNotFoundError:  # runner.machine() runs git
        host = {"commit": None, "host": platform.node(), "python": platform.python_version()}
        path = directory / f"{name}.json"
        path.write_text(json.dumps({"benchmark": name, "machine": host, "figures": figures}, indent=2) + "\n")
        return path


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    figures = run(args)
    print(table(figures))
    name = f"gpu_learner_{args.device}" + ("_short" if args.short else "")
    print(f"wrote {write(name, figures, Path(args.out) if args.out else runner.RESULTS)}")


if __name__ == "__main__":
    main()
