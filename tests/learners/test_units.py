"""Fast tests of the learners' pure parts: info unbatching, Wilson intervals, advantages, SFT labels."""

from __future__ import annotations

import numpy as np
import pytest

from learners.evaluate import summarize, wilson_interval
from learners.reinforce import group_advantages
from rock_gym.envs.record import Chunk, Outcome, StepInfo, ToolCallRecord, ToolResult, Trajectory


def test_wilson_interval() -> None:
    assert wilson_interval(8, 10) == (0.4902, 0.9433)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(4, 4)
    assert 0.5 < low < 0.52 and high == 1.0


def test_summary_leaves_env_errors_out_of_the_rate() -> None:
    solved = Trajectory("a", reward=1.0, outcome=Outcome.SUCCESS, chunks=[Chunk(0, "x")])
    failed = Trajectory(
        "a", outcome=Outcome.FAILURE, chunks=[Chunk(0, "y", step=StepInfo(format_error="no tool call")), Chunk(1, "z")]
    )
    spoiled = Trajectory("b", outcome=Outcome.ENV_ERROR, error="the sandbox was lost")
    failed.chunks[1].step = StepInfo(safety=({"category": "crypto_mining"},))
    failed.stats.context_tokens, failed.stats.segments = [100, 300], 2
    report = summarize("rock/Terminal-v0", "expert", [solved, failed, spoiled])
    assert (report.episodes, report.scored, report.successes, report.success_rate) == (3, 2, 1, 0.5)
    assert report.env_errors == 1 and report.errors == ["b: the sandbox was lost"]
    assert report.format_errors == 1 and report.safety == {"crypto_mining": 1}
    assert report.context["max_request_tokens"] == 300 and report.context["segments"] == pytest.approx(4 / 3)
    assert [(row.task_id, row.episodes, row.successes, row.mean_turns) for row in report.tasks] == [
        ("a", 2, 1, 1.5),
        ("b", 1, 0, 0.0),
    ]


def test_group_advantages() -> None:
    group = [Trajectory("a", reward=r) for r in (1.0, 0.0, 0.0, 1.0)] + [Trajectory("b", reward=1.0)]
    assert group_advantages(group) == [0.5, -0.5, -0.5, 0.5, 0.0]
    normalized = group_advantages(group, normalize_std=True)
    assert normalized[0] == pytest.approx(0.5 / np.std([1, 0, 0, 1], ddof=1), rel=1e-4)


def test_trajectory_round_trips_and_rebuilds_its_conversation() -> None:
    trajectory = Trajectory(
        "a", messages=[{"role": "user", "content": "go"}], chunks=[Chunk(0, "ls", completion_ids=[1])]
    )
    trajectory.chunks[0].observation = "[1] bash (exit 0)"
    trajectory.chunks[0].step = StepInfo(
        "a", 1, (ToolCallRecord("bash", {"command": "ls"}),), (ToolResult("bash", "a"),)
    )
    assert Trajectory.from_dict(trajectory.to_dict()) == trajectory
    assert [m["role"] for m in trajectory.conversation()] == ["user", "assistant", "tool"]


def test_sft_labels_only_assistant_turns(tiny_model) -> None:  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    from learners.sft import IGNORE, tokenize

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    conversation = [
        {"role": "system", "content": "You are an agent."},
        {"role": "user", "content": "List the files."},
        {"role": "assistant", "content": "ls -la"},
        {"role": "tool", "content": "a.py"},
        {"role": "assistant", "content": "submit"},
    ]
    example = tokenize(tokenizer, conversation, None, max_length=4096)
    pairs = zip(example.input_ids, example.labels, strict=True)
    labelled = tokenizer.decode([token for token, label in pairs if label != IGNORE])
    assert labelled == "ls -la<|im_end|>submit<|im_end|>"
    assert len(tokenize(tokenizer, conversation, None, max_length=5).input_ids) == 5


@pytest.mark.parametrize("name", ["learners.evaluate", "learners.reinforce"])
def test_docstring_examples(name: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
