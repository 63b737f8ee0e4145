"""The harness's train/sample identity: for every chat template and context policy, the ids a learner reads for each
turn are the ids the policy was given and sampled, every request renders exactly as the template's full render of
the context, and no request exceeds the budget."""

from __future__ import annotations

import random

import pytest

from rock_gym.agent.harness import Completion, EpisodeHarness, HarnessConfig
from rock_gym.agent.tokens import ChatTemplate
from rock_gym.envs.record import (
    Ending,
    Outcome,
    PrefixStep,
    ResetInfo,
    StepInfo,
    ToolCallRecord,
    ToolResult,
    Trajectory,
    Verification,
)

pytest.importorskip("transformers")
from tests.agent.templates import tokenizer_for  # noqa: E402

TEMPLATES = ["tiny", "qwen2.5", "llama3", "qwen3"]
POLICIES = ["keep", "elide(head=60,tail=60)", "drop", "summary", "elide+drop"]
BUDGET = 4000
TOOLS = ({"type": "function", "function": {"name": "bash", "parameters": {"type": "object"}}},)


@pytest.fixture(scope="module", params=TEMPLATES)
def tokenizer(request):  # type: ignore[no-untyped-def]
    return tokenizer_for(request.param)


class ScriptedTokenPolicy:
    """A token policy drawing from a seeded RNG: words, tool-call markup, a <think> block now and then, and either
    the end token (finish "stop") or a cut at max_new_tokens (finish "length"); it keeps what it was given."""

    def __init__(self, tokenizer, seed: int = 0) -> None:  # type: ignore[no-untyped-def]
        self.tokenizer, self.rng = tokenizer, random.Random(seed)
        self.end_id = ChatTemplate(tokenizer).end_id
        self.given: list[list[int]] = []
        self.sampled: list[Completion] = []

    def sample(self, prompts, *, max_new_tokens=16, temperature=1.0, seed=None):  # type: ignore[no-untyped-def]
        out = []
        for prompt in prompts:
            words = self.rng.choice(["<think>hm</think>", "", " "]) + self.rng.choice(["ls -la", "cat a.py  ", "ok"])
            ids = self.tokenizer(words, add_special_tokens=False)["input_ids"][:max_new_tokens]
            ids = ids + [self.rng.randrange(40, 400) for _ in range(self.rng.randrange(0, 6))]
            if self.rng.random() < 0.25 or len(ids) >= max_new_tokens:
                completion = Completion(ids[:max_new_tokens], [-0.5] * len(ids[:max_new_tokens]), "length")
            else:
                completion = Completion([*ids, self.end_id], [-0.5] * (len(ids) + 1), "stop")
            self.given.append(list(prompt))
            self.sampled.append(completion)
            out.append(completion)
        return out


def step_info(turn: int, ending: str | None = None, resolved: bool = False) -> dict:
    calls = (ToolCallRecord("bash", {"command": f"cat file{turn % 3}.py"}),)
    results = (ToolResult("bash", "x" * 10, exit_code=turn % 2),)
    verification = Verification(resolved) if ending else None
    return StepInfo("t", turn, calls, results, ending=ending, verification=verification).to_info()


def reset_info(prefix: tuple[PrefixStep, ...] = ()) -> ResetInfo:
    messages = ({"role": "system", "content": "You are an agent."}, {"role": "user", "content": "Fix the bug."})
    return ResetInfo("t", "hermes", TOOLS, messages, prefix)


def play(tokenizer, config: HarnessConfig, turns: int, prefix=(), seed: int = 0):  # type: ignore[no-untyped-def]
    policy = ScriptedTokenPolicy(tokenizer, seed)
    harness = EpisodeHarness(reset_info(prefix), config, tokenizer, seed=seed, max_turns=turns)
    template = ChatTemplate(tokenizer, TOOLS)
    rng = random.Random(seed)
    for turn in range(1, turns + 1):
        request = harness.request()
        if request is None:
            break
        assert template.decode(request.ids) == template.render(request.messages, True), "not the full render"
        (completion,) = policy.sample([request.ids], max_new_tokens=config.max_new_tokens)
        harness.take(completion)
        observation = f"output of turn {turn}\n" + "line of output text\n" * rng.randrange(5, 120)
        last = turn == turns
        if harness.observe(
            observation, 1.0 if last else 0.0, last, False, step_info(turn, "submitted" if last else None, True)
        ):
            break
    return harness.trajectory, policy


@pytest.mark.parametrize("context", POLICIES)
def test_the_ids_a_learner_reads_are_the_ids_given_and_sampled(tokenizer, context: str) -> None:  # type: ignore[no-untyped-def]
    config = HarnessConfig(max_context_tokens=BUDGET, context=context, max_new_tokens=24)
    trajectory, policy = play(tokenizer, config, turns=40)
    sampled = trajectory.sampled
    assert len(sampled) == len(policy.given) >= 3
    for chunk, given, completion in zip(sampled, policy.given, policy.sampled, strict=True):
        assert trajectory.request_ids(chunk.index) == given
        assert chunk.completion_ids == completion.ids and chunk.logprobs == completion.logprobs
        assert chunk.finish_reason == completion.finish_reason
        assert len(given) + config.max_new_tokens <= BUDGET
    assert trajectory.stats.context_tokens == [len(g) for g in policy.given]
    # A round trip through JSON keeps every id.
    again = Trajectory.from_dict(trajectory.to_dict())
    assert [again.request_ids(c.index) for c in again.sampled] == policy.given
    if context == "keep":
        assert trajectory.ending == Ending.CONTEXT and trajectory.outcome == Outcome.FAILURE
    else:
        assert trajectory.outcome == Outcome.SUCCESS, trajectory.error
        assert trajectory.stats.elided_tokens > 0 and trajectory.stats.segments > 1
        names = {part.split("(")[0] for part in context.split("+")}
        assert {s.reason.split("+")[0] for s in trajectory.segments[1:]} & names


def test_a_length_stop_gets_its_closing_as_template_tokens_not_sampled(tokenizer) -> None:  # type: ignore[no-untyped-def]
    trajectory, _ = play(tokenizer, HarnessConfig(max_new_tokens=24), turns=30, seed=3)
    template = ChatTemplate(tokenizer, TOOLS)
    stops = [c for c in trajectory.sampled if c.finish_reason == "length" and c.observation_ids]
    assert stops, "no length stop in the sample"
    for chunk in stops:
        assert template.end_id not in chunk.completion_ids
        assert chunk.observation_ids[:1] == template.encode(template.closing)[:1]
    packed = trajectory.segment_tokens(stops[0].segment)
    owned = [i for i, o in zip(packed.ids, packed.owner, strict=True) if o == stops[0].index]
    assert owned == stops[0].completion_ids


def test_a_template_that_rewrites_history_starts_a_new_segment() -> None:
    tokenizer = tokenizer_for("qwen3")
    trajectory, _ = play(tokenizer, HarnessConfig(max_new_tokens=24), turns=30, seed=1)
    reasons = [s.reason for s in trajectory.segments]
    assert reasons[0] == "start" and "template" in reasons[1:]
    # Every segment still gives back the exact requests.
    assert all(c.segment < len(trajectory.segments) for c in trajectory.chunks)


def test_a_turn_that_cannot_fit_ends_the_episode_as_a_context_failure(tokenizer) -> None:  # type: ignore[no-untyped-def]
    trajectory, policy = play(tokenizer, HarnessConfig(max_context_tokens=30, max_new_tokens=24), turns=5)
    assert policy.given == [] and trajectory.ending == "context" and trajectory.outcome == Outcome.FAILURE
    assert trajectory.truncated and trajectory.scored


def test_replayed_prefix_chunks_come_first_with_the_expert_text_tokenized(tokenizer) -> None:  # type: ignore[no-untyped-def]
    prefix = tuple(
        PrefixStep(f"expert turn {i}", f"observation {i}", StepInfo.from_info(step_info(i + 1))) for i in range(2)
    )
    trajectory, policy = play(tokenizer, HarnessConfig(max_new_tokens=24), turns=3, prefix=prefix)
    template = ChatTemplate(tokenizer, TOOLS)
    replayed = trajectory.chunks[:2]
    assert [c.replayed for c in trajectory.chunks[:3]] == [True, True, False] and trajectory.start == 2
    assert [c.action for c in replayed] == ["expert turn 0", "expert turn 1"]
    assert replayed[0].completion_ids == template.encode("expert turn 0") + [template.end_id]
    assert replayed[0].logprobs == [] and [c.observation for c in replayed] == ["observation 0", "observation 1"]
    assert trajectory.request_ids(2) == policy.given[0]
    assert "observation 1" in template.decode(policy.given[0])


def test_loop_warnings_and_reminders_are_appended_to_what_the_model_sees(tokenizer) -> None:  # type: ignore[no-untyped-def]
    config = HarnessConfig(max_new_tokens=24, loop_repeats=3, remind_every=2, nudge_at=1)
    harness = EpisodeHarness(reset_info(), config, tokenizer, max_turns=5)
    template = ChatTemplate(tokenizer, TOOLS)
    same = StepInfo("t", 0, (ToolCallRecord("bash", {"command": "ls"}),), (ToolResult("bash", "a", exit_code=0),))
    for turn in range(1, 5):
        request = harness.request()
        harness.take(Completion(template.encode("ls") + [template.end_id]))
        step = StepInfo(same.task_id, turn, same.tool_calls, same.tool_results, todo=("fix the bug",))
        assert not harness.observe("a", 0.0, False, False, step.to_info())
        assert template.decode(harness.request().ids) == template.render(harness.request().messages, True)
    chunks = harness.trajectory.chunks
    assert chunks[0].sent_observation is None  # turn 1: nothing to add
    assert chunks[1].sent_observation == "a\n\n[Reminder] Your task: Fix the bug.\nYour todo list:\n- fix the bug"
    assert chunks[2].sent_observation.startswith("a\n\n[Loop warning] You made the same call 3 turns in a row")
    assert chunks[3].sent_observation.endswith("[Reminder] 1 turn left: finish your work and submit.")
    stats = harness.trajectory.stats
    assert stats.loops >= 1 and stats.reminders >= 2 and request is not None


def test_a_loop_can_end_the_episode_as_a_failure(tokenizer) -> None:  # type: ignore[no-untyped-def]
    harness = EpisodeHarness(reset_info(), HarnessConfig(loop_repeats=2, end_on_loop=True), tokenizer)
    template = ChatTemplate(tokenizer, TOOLS)
    step = StepInfo("t", 1, (ToolCallRecord("bash", {"command": "ls"}),), (ToolResult("bash", "a", exit_code=1),))
    done = False
    for _ in range(3):
        if harness.request() is None:
            break
        harness.take(Completion(template.encode("ls") + [template.end_id]))
        done = harness.observe("a", 0.0, False, False, step.to_info())
    assert done and harness.trajectory.ending == Ending.LOOP and harness.trajectory.outcome == Outcome.FAILURE
