"""ExpertPolicy replays reference turns that the env's own parser reads back."""

from __future__ import annotations

import pytest

from learners.policies import ExpertPolicy
from rock_gym.tasks import builtin_swe_tasks, terminal_tasks
from rock_gym.tools import get_format

TASKS = [*builtin_swe_tasks(), *terminal_tasks(seeds=[0])]


def as_dicts(calls) -> list[dict]:  # type: ignore[no-untyped-def]
    return [{"name": call.name, "arguments": dict(call.arguments)} for call in calls]


@pytest.mark.parametrize("tool_format", ["hermes", "qwen3_coder", "openai"])
@pytest.mark.parametrize("task", TASKS, ids=lambda task: task.task_id)
def test_every_reference_turn_parses_back_to_its_calls(task, tool_format: str) -> None:  # type: ignore[no-untyped-def]
    expert = ExpertPolicy(tool_format)
    parse = get_format(tool_format).parse
    for index, calls in enumerate(task.expert_turns):
        text = expert.turn_text(task.task_id, index)
        assert as_dicts(parse(text, None)) == as_dicts(calls)


def test_turn_index_follows_the_assistant_messages_in_the_conversation() -> None:
    task = builtin_swe_tasks()[0]
    expert = ExpertPolicy()
    conversation = [{"role": "system", "content": "s"}, {"role": "user", "content": "fix it"}]
    texts = []
    for _ in task.expert_turns:
        (turn,) = expert.generate([conversation], None, task_ids=[task.instance_id])
        texts.append(turn.text)
        conversation = [*conversation, {"role": "assistant", "content": turn.text}, {"role": "tool", "content": "ok"}]
    parse = get_format("hermes").parse
    assert [as_dicts(parse(text, None)) for text in texts] == [as_dicts(calls) for calls in task.expert_turns]


def test_a_batch_mixes_tasks_and_explicit_turn_indices() -> None:
    swe, terminal = builtin_swe_tasks()[0], terminal_tasks(["count-matches"], seeds=[3])[0]
    turns = ExpertPolicy(tasks=[terminal]).generate(
        [[], []], task_ids=[swe.task_id, terminal.task_id], turn_indices=[1, 0]
    )
    parse = get_format("hermes").parse
    assert as_dicts(parse(turns[0].text, None)) == as_dicts(swe.expert_turns[1])
    assert as_dicts(parse(turns[1].text, None)) == as_dicts(terminal.expert_turns[0])
    assert all(turn.completion_ids == [] and turn.logprobs == [] for turn in turns)


def test_procedural_tasks_are_found_for_any_seed() -> None:
    text = ExpertPolicy().turn_text("json-filter-1234", 0)
    expected = terminal_tasks(["json-filter"], seeds=[1234])[0].expert_turns[0]
    assert as_dicts(get_format("hermes").parse(text, None)) == as_dicts(expected)


def test_past_the_last_turn_it_submits() -> None:
    task = builtin_swe_tasks()[0]
    text = ExpertPolicy().turn_text(task.task_id, len(task.expert_turns) + 3)
    assert as_dicts(get_format("hermes").parse(text, None)) == [{"name": "submit", "arguments": {}}]


def test_without_task_ids_it_says_what_to_pass() -> None:
    with pytest.raises(ValueError, match="task_ids"):
        ExpertPolicy().generate([[{"role": "user", "content": "x"}]])


def test_unknown_task_says_how_to_give_it() -> None:
    with pytest.raises(KeyError, match="tasks=env.tasks"):
        ExpertPolicy().turn_text("nobody__nothing-1", 0)


def test_task_without_a_reference_solution_is_refused() -> None:
    task = builtin_swe_tasks()[0].model_copy(update={"instance_id": "x__y-1", "expert_turns": None})
    with pytest.raises(KeyError, match="no reference solution"):
        ExpertPolicy(tasks=[task]).turn_text("x__y-1", 0)
