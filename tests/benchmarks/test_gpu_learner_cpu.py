"""The GPU learner benchmark in its CPU mode, on a bare torch + transformers install (the sandbox stack blocked), and
the static sampler it times against `generate`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

ROOT = Path(__file__).resolve().parents[2]
BENCHMARK = ROOT / "benchmarks" / "gpu_learner.py"
#: What a bare GPU machine lacks: the benchmark and the learner core must do without.
BLOCKED = ("gymnasium", "pydantic", "docker", "ray", "matplotlib", "rich")
BLOCK = f"import sys\nfor name in {BLOCKED!r}:\n    sys.modules[name] = None\n"


def run_blocked(code: str, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter, outside the repository, with the sandbox stack unimportable."""
    done = subprocess.run(
        [sys.executable, "-c", BLOCK + code, *args], capture_output=True, text=True, timeout=timeout, cwd="/"
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def test_the_learner_core_and_the_benchmark_import_without_the_sandbox_stack() -> None:
    code = f"""
import importlib.util
spec = importlib.util.spec_from_file_location("gpu_learner", {str(BENCHMARK)!r})
bench = sys.modules["gpu_learner"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
import learners.ipa.loss, learners.ipa.logprobs, learners.ipa.packing
assert bench.load_fast_generate().StaticSampler
for name in {BLOCKED!r}:
    assert sys.modules[name] is None, name
print("ok")
"""
    assert run_blocked(code).stdout.strip().endswith("ok")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_cpu_mode_measures_both_paths_and_the_loss_falls(tmp_path: Path) -> None:
    code = f"import runpy\nrunpy.run_path({str(BENCHMARK)!r}, run_name='__main__')"
    run_blocked(code, "--device", "cpu", "--out", str(tmp_path), "--peak-tflops", "0.05", timeout=280)
    record = json.loads((tmp_path / "gpu_learner_cpu.json").read_text())
    assert record["benchmark"] == "gpu_learner_cpu" and "commit" in record["machine"]
    figures = record["figures"]
    assert not (tmp_path / "gpu_learner_cpu.png").exists()  # matplotlib blocked: the JSON alone
    setup = figures["setup"]
    assert setup["packed_rows"] == setup["batch"]["rows"] and len(setup["segment_lengths"]) == 3
    ipa = {k: v for k, v in figures.items() if k.startswith("ipa_")}
    assert set(ipa) == {"ipa_eager", "ipa_eager_checkpointed"}
    for path in [figures["plain"], *ipa.values()]:
        assert path["tokens_per_s"] > 0 and path["mfu"] > 0 and path["step_ms"] > 0
    generation = figures["generation"]
    assert generation["plain_generate"]["tokens_per_s"] > 0 and generation["static_sampler"]["tokens_per_s"] > 0
    assert figures["pi_old"]["tokens_per_s"] > 0
    losses = figures["loss"]["values"]
    assert len(losses) == 2 * 3 and figures["loss"]["fell"] and losses[-1] < losses[0]
    assert figures["targets"]["met"]["loss_fell"] and figures["targets"]["met"]["generation"] is None


# -- the static sampler ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def qwen2():  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    config = transformers.Qwen2Config(
        vocab_size=512,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        initializer_range=0.2,  # peaked enough that greedy decoding does not just repeat a token
        attn_implementation="sdpa",
    )
    return transformers.Qwen2ForCausalLM(config).eval()


PROMPTS = [[5, 6, 7, 8, 9], [11, 12], [20, 21, 22, 23, 24, 25, 26, 27], [3]]


def sampler(model):  # type: ignore[no-untyped-def]
    from learners.policies.fast_generate import StaticSampler

    return StaticSampler(model, compile=False)


def recomputed(model, prompt: list[int], ids: list[int], temperature: float):  # type: ignore[no-untyped-def]
    with torch.no_grad():
        logits = model(torch.tensor([prompt + ids])).logits[0, len(prompt) - 1 : -1].float() / temperature
    return logits.log_softmax(-1).gather(-1, torch.tensor(ids)[:, None]).squeeze(-1)


def test_greedy_static_sampling_equals_generate_row_by_row(qwen2) -> None:  # type: ignore[no-untyped-def]
    ids, logprobs = sampler(qwen2).sample(PROMPTS, 10, temperature=0)
    assert ids.shape == logprobs.shape == (len(PROMPTS), 10)
    for i, prompt in enumerate(PROMPTS):
        alone = torch.tensor([prompt])
        out = qwen2.generate(alone, attention_mask=torch.ones_like(alone), max_new_tokens=10, do_sample=False)
        assert ids[i].tolist() == out[0, len(prompt) :].tolist()
        assert torch.allclose(logprobs[i], recomputed(qwen2, prompt, ids[i].tolist(), 1.0), atol=1e-4)


def test_sampled_logprobs_are_mu_and_a_seed_repeats_the_batch(qwen2) -> None:  # type: ignore[no-untyped-def]
    s = sampler(qwen2)
    ids, logprobs = s.sample(PROMPTS, 8, temperature=0.7, seed=3)
    again, _ = s.sample(PROMPTS, 8, temperature=0.7, seed=3)  # the same cache, reset
    assert torch.equal(ids, again)
    for i, prompt in enumerate(PROMPTS):
        assert torch.allclose(logprobs[i], recomputed(qwen2, prompt, ids[i].tolist(), 0.7), atol=1e-4)


def test_a_row_that_ends_is_padded_after_its_end_token(qwen2) -> None:  # type: ignore[no-untyped-def]
    s = sampler(qwen2)
    free, _ = s.sample(PROMPTS, 6, temperature=0)
    end = int(free[0, 2])
    ids, logprobs = s.sample(PROMPTS, 6, temperature=0, pad_id=0, eos_ids=[end])
    assert ids[0, :3].tolist() == free[0, :3].tolist()
    assert ids[0, 3:].tolist() == [0, 0, 0] and logprobs[0, 3:].tolist() == [0.0, 0.0, 0.0]
