"""Context policies: how the agent harness shrinks a conversation that no longer fits the model's token budget.

The harness keeps an episode's conversation as `Message` s: the head (the system message and the first user
message: the task), then one turn per model action (the assistant's message and the env's observation). Before each
request it counts the request's tokens; when they are over the budget it asks its `ContextPolicy` to `fit` the
messages, and ends the episode (ending ``"context"``) when the policy answers None.

The policies, each named as `parse_policy` reads it:

- ``keep`` (`KeepAll`): never rewrites; the episode ends when the context is full. mini-swe-agent's behaviour.
- ``elide`` (`ElideObservations`): cuts the middle out of old observations, oldest first, keeping their first and
  last characters around a marker ``[... 1234 tokens elided ...]``. SWE-agent's last-N-observations history
  processor and OpenHands' observation masking, keeping head and tail rather than masking all.
- ``drop`` (`DropOldest`): drops the oldest whole turns and leaves one note ``[N earlier turns dropped to fit the
  context]``. OpenHands' amortized-forgetting condenser: a sliding window that jumps rather than slides.
- ``summary`` (`Summary`): drops the oldest turns like ``drop``, but the note says what they did (files viewed and
  edited, commands and their exit codes, the todo list, format errors), built only from their `StepInfo`, so it is
  deterministic and costs no model call. OpenHands' summarizing condensers' structured "what was done so far".
- ``elide+drop``, ``elide+summary`` (`Compose`): the policies in order, each on the previous one's output.

What stays. The head is never removed nor rewritten: the task must stay in view. The last turn (the action and the
observation the model answers next) is never dropped; its observation is elided only when nothing else is left.
Rewritten messages are new objects: the list given to `fit` and its messages are never changed.

Roles. After the head, turns alternate assistant, observation (role ``tool``). Turns dropped or summarized are
replaced by one ``user`` note right after the head, so a request reads system, user (task), user (note), assistant,
tool, ...; a later rewrite folds that note into its own (`Message.folded` keeps the step infos it stands for), so
there is never more than one. Templates that demand strict user/assistant alternation (Mistral's) need the harness
to merge the two user messages. A turn is an assistant message and every message up to the next assistant message;
messages between the head and the first assistant message are taken for an earlier note.

Amortized rewrites. A rewrite changes tokens the model already saw: the next request cannot reuse the KV cache and
the trajectory starts a new token segment. To make rewrites rare, a policy shrinks the request to ``target * budget``
tokens (0.75 by default), not to just under the budget, so the next turns fit again without rewriting (OpenHands'
amortized forgetting). The newest ``keep_last`` observations (or turns) are left alone while that is enough; when it
is not, they are rewritten too, oldest first, but only as far as the budget.

Counting. ``count`` renders a request (chat template and generation prompt) and tokenizes it, so counting a long
history once per cut would make a fit O(n^2) in the number of turns. Instead a policy measures each piece it cuts
once, in place after the head (``count(head + piece) - count(head)``), subtracts that estimate, and counts the whole
request only when the estimate says it fits, cutting on when the estimate was optimistic. A fit of n turns counts
O(n) small pieces and the whole request about twice; its answer is always checked by a real count.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from rock_gym.envs.record import StepInfo, ToolCallRecord, ToolResult


@dataclass
class Message:
    """One chat message of the harness's conversation.

    Attributes:
        role: ``"system"``, ``"user"``, ``"assistant"`` or ``"tool"``.
        content: the text.
        turn: the model turn it belongs to (an action and its observation); None for the head and notes.
        step: on observations, the env's step info (tool calls and results), which summaries are built from.
        folded: on a note that replaced turns, the step infos of those turns, so a later rewrite can fold them again.
    """

    role: str
    content: str
    turn: int | None = None
    step: StepInfo | None = None
    folded: tuple[StepInfo, ...] = ()

    def as_chat(self) -> dict[str, str]:
        """The message as a chat template reads it.

        >>> Message("tool", "ok", turn=3).as_chat()
        {'role': 'tool', 'content': 'ok'}
        """
        return {"role": self.role, "content": self.content}


#: The tokens of the request these messages render to (the harness: chat template with the generation prompt).
Count = Callable[[list[Message]], int]


@dataclass
class Fitted:
    """A policy's answer: the messages to send, the tokens its rewrite removed, and which policy rewrote."""

    messages: list[Message]
    cut_tokens: int
    reason: str


class ContextPolicy(Protocol):
    """What the harness asks when a request is over its token budget."""

    name: str

    def fit(self, messages: list[Message], budget: int, count: Count) -> Fitted | None:
        """Messages whose count is <= budget, rewriting history as little as the policy allows; None when it
        cannot."""
        ...


# -- the conversation as policies see it -------------------------------------------------------------------------


@dataclass
class History:
    """A conversation split into its head, an earlier note (if any) and its turns."""

    head: list[Message]
    notes: list[Message]
    turns: list[list[Message]]

    @classmethod
    def split(cls, messages: Sequence[Message]) -> History:
        """Head: a leading system message, then the first user message. Turns start at each assistant message.

        >>> h = History.split([Message("system", "s"), Message("user", "task"), Message("assistant", "a"),
        ...                    Message("tool", "o"), Message("assistant", "b"), Message("tool", "p")])
        >>> len(h.head), len(h.notes), [[m.content for m in t] for t in h.turns]
        (2, 0, [['a', 'o'], ['b', 'p']])
        """
        start = 1 if messages and messages[0].role == "system" else 0
        if start < len(messages) and messages[start].role == "user":
            start += 1
        first = next((i for i in range(start, len(messages)) if messages[i].role == "assistant"), len(messages))
        turns: list[list[Message]] = []
        for message in messages[first:]:
            if message.role == "assistant" or not turns:
                turns.append([])
            turns[-1].append(message)
        return cls(list(messages[:start]), list(messages[start:first]), turns)

    def folded(self, k: int, note: Message) -> list[Message]:
        """The conversation with its note and first ``k`` turns replaced by ``note``."""
        return [*self.head, note, *(m for turn in self.turns[k:] for m in turn)]

    def steps(self, k: int) -> tuple[StepInfo, ...]:
        """The step infos an earlier note stands for, then those of the first ``k`` turns (a blank one where a turn
        has none, so the turn is still counted)."""
        earlier = tuple(step for note in self.notes for step in note.folded)
        return earlier + tuple(_turn_step(turn) for turn in self.turns[:k])


def _turn_step(turn: list[Message]) -> StepInfo:
    return next((m.step for m in turn if m.step is not None), StepInfo(turn=turn[0].turn or 0))


class _Pieces:
    """Token costs of pieces of a request, each counted once, in place after the head."""

    def __init__(self, head: list[Message], count: Count) -> None:
        self.head, self.count = head, count

    def messages(self, pieces: list[Message]) -> int:
        """What ``pieces`` add to the request after the head."""
        return self.count(self.head + pieces) - self._head_tokens

    def text(self, text: str) -> int:
        """The tokens of ``text`` itself, without the message around it."""
        return self.count([*self.head, Message("user", text)]) - self._empty_message_tokens

    @functools.cached_property
    def _head_tokens(self) -> int:
        return self.count(self.head)

    @functools.cached_property
    def _empty_message_tokens(self) -> int:
        return self.count([*self.head, Message("user", "")])


class _Tally:
    """A running token count of a rewrite: estimated after each cut, checked by a real count when it seems done."""

    def __init__(self, tokens: int, goal: int, count: Count) -> None:
        self.tokens, self.goal, self.count = tokens, goal, count
        self.exact = True

    def cut(self, saved: int) -> None:
        self.tokens -= saved
        self.exact = False

    def done(self, messages: list[Message]) -> bool:
        """Whether ``messages`` fit the goal: by the estimate first, and then by one real count."""
        if self.tokens > self.goal:
            return False
        return self.recount(messages) <= self.goal

    def recount(self, messages: list[Message]) -> int:
        if not self.exact:
            self.tokens, self.exact = self.count(messages), True
        return self.tokens


# -- the policies ------------------------------------------------------------------------------------------------


class Rewriter(ABC):
    """A context policy that shrinks history cut by cut.

    `shrink` does its best even when it cannot reach its goal, so `Compose` can hand what is left to the next
    policy; `fit` runs it in two passes: older history down to ``target * budget``, then, only when that was not
    enough, the newest ``keep_last`` too, down to the budget.
    """

    name: str = ""
    target: float = 0.75

    def fit(self, messages: list[Message], budget: int, count: Count) -> Fitted | None:
        """See `ContextPolicy.fit`."""
        return _fit_in_order([self], self.name, messages, budget, count)

    @abstractmethod
    def shrink(
        self, messages: list[Message], goal: int, tokens: int, count: Count, recent: bool
    ) -> tuple[list[Message], int]:
        """Cut until ``messages`` (``tokens`` long) count at most ``goal``, or nothing is left to cut.

        Args:
            recent: may cut into the newest ``keep_last`` too.

        Returns:
            The messages (the very list given when nothing was cut) and their real count.
        """


def _fit_in_order(
    policies: Sequence[Rewriter], name: str, messages: list[Message], budget: int, count: Count
) -> Fitted | None:
    """Run ``policies`` in order, each on the previous one's output: first each down to its ``target * budget``
    sparing the newest history, then, while still over the budget, each into the newest history too. The reason
    names the policies that rewrote, in their order; ``name`` when the messages fit as they were."""
    before = tokens = count(messages)
    if tokens <= budget:
        return Fitted(messages, 0, name)
    rewrote: set[str] = set()
    for recent in (False, True):
        for policy in policies:
            goal = budget if recent else math.floor(policy.target * budget)
            if tokens <= goal:
                continue
            shrunk, tokens = policy.shrink(messages, goal, tokens, count, recent)
            if shrunk is not messages:
                messages = shrunk
                rewrote.add(policy.name)
        if tokens <= budget:
            return Fitted(messages, before - tokens, "+".join(p.name for p in policies if p.name in rewrote))
    return None


def _check_target(target: float) -> float:
    if not 0 < target <= 1:
        raise ValueError(
            f"target must be in (0, 1], the share of the budget a rewrite shrinks to (e.g. 0.75), got {target}"
        )
    return target


def _check_count(name: str, value: int, least: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"{name} must be a whole number >= {least}, got {value!r}")
    return value


class KeepAll(Rewriter):
    """Never rewrites history: `fit` answers the messages unchanged when they fit, else None.

    >>> KeepAll().fit([Message("user", "a b c")], 2, lambda ms: sum(len(m.content.split()) for m in ms)) is None
    True
    """

    name = "keep"
    target = 1.0

    def shrink(
        self, messages: list[Message], goal: int, tokens: int, count: Count, recent: bool
    ) -> tuple[list[Message], int]:
        return messages, tokens


class ElideObservations(Rewriter):
    """Cuts the middle out of old observations, oldest first, until the request fits.

    Args:
        keep_last: the newest observations left whole while eliding older ones is enough.
        head: characters kept from an observation's start (ending at a line break when one is near).
        tail: characters kept from its end (starting at a line break when one is near).
        target: the share of the budget to shrink to, so rewrites stay rare.

    Characters, not tokens: they need no tokenizer to cut, and what the marker counts is measured with ``count``.
    """

    name = "elide"

    def __init__(self, keep_last: int = 2, head: int = 600, tail: int = 600, target: float = 0.75) -> None:
        self.keep_last = _check_count("keep_last", keep_last)
        self.head, self.tail = _check_count("head", head), _check_count("tail", tail)
        self.target = _check_target(target)

    def shrink(
        self, messages: list[Message], goal: int, tokens: int, count: Count, recent: bool
    ) -> tuple[list[Message], int]:
        history = History.split(messages)
        first = len(history.head) + len(history.notes)
        places = [i for i in range(first, len(messages)) if messages[i].role != "assistant"]
        if not recent and self.keep_last:
            places = places[: -self.keep_last]
        if not places:
            return messages, tokens
        pieces, tally, out = _Pieces(history.head, count), _Tally(tokens, goal, count), list(messages)
        marker = pieces.text(f"\n{elision_marker(10**6)}\n")  # a 7-digit count: never less than a real marker's
        changed = False
        for i in places:
            cut = self.elide(out[i].content, pieces.text)
            if cut is None:
                continue
            out[i], changed = dataclasses.replace(out[i], content=cut[0]), True
            tally.cut(cut[1] - marker)
            if tally.done(out):
                return out, tally.tokens
        return (out, tally.recount(out)) if changed else (messages, tokens)

    def elide(self, text: str, count_text: Callable[[str], int]) -> tuple[str, int] | None:
        """``text`` with its middle replaced by a marker, and the tokens cut; None when too short to gain.

        >>> text = "\\n".join(f"line {i}" for i in range(40))
        >>> elided, cut = ElideObservations(head=20, tail=20).elide(text, lambda t: len(t.split()))
        >>> print(elided)
        line 0
        line 1
        [... 72 tokens elided ...]
        line 38
        line 39
        >>> cut
        72
        """
        if len(text) - self.head - self.tail < _MIN_ELIDED_CHARS:
            return None
        start, end = _head_end(text, self.head), _tail_start(text, self.tail)
        tokens = count_text(text[start:end])
        return f"{text[:start]}\n{elision_marker(tokens)}\n{text[end:]}", tokens


#: Fewer characters than this are not worth a marker (and an elided observation is never elided again).
_MIN_ELIDED_CHARS = 100


def elision_marker(tokens: int) -> str:
    """The marker that stands for an elided middle.

    >>> elision_marker(1234)
    '[... 1234 tokens elided ...]'
    """
    return f"[... {tokens} tokens elided ...]"


def _head_end(text: str, head: int) -> int:
    """Where the kept start ends: at the last line break in the second half of ``head`` characters, if any."""
    newline = text.rfind("\n", head // 2, head)
    return newline if newline >= 0 else head


def _tail_start(text: str, tail: int) -> int:
    """Where the kept end starts: after the first line break in the first half of its ``tail`` characters."""
    start = len(text) - tail
    newline = text.find("\n", start, start + tail // 2)
    return newline + 1 if newline >= 0 else start


class _Fold(Rewriter):
    """Replaces the oldest turns by one note (`DropOldest`, `Summary`)."""

    def __init__(self, keep_last: int = 2, target: float = 0.75) -> None:
        self.keep_last = _check_count("keep_last", keep_last)
        self.target = _check_target(target)

    @abstractmethod
    def note(self, steps: tuple[StepInfo, ...]) -> str:
        """The note that stands for the turns of ``steps``."""

    def shrink(
        self, messages: list[Message], goal: int, tokens: int, count: Count, recent: bool
    ) -> tuple[list[Message], int]:
        history = History.split(messages)
        foldable = len(history.turns) - (1 if recent else max(self.keep_last, 1))  # the last turn always stays
        if foldable <= 0:
            return messages, tokens
        pieces, tally = _Pieces(history.head, count), _Tally(tokens, goal, count)
        tally.cut(pieces.messages(history.notes) if history.notes else 0)
        note_tokens = 0  # measured when the turns cut so far seem enough, and reused as an estimate after that
        for k in range(1, foldable + 1):
            tally.cut(pieces.messages(history.turns[k - 1]))
            if tally.tokens + note_tokens > goal and k < foldable:
                continue
            note = self._note(history, k)
            note_tokens = pieces.messages([note])
            tally.cut(-note_tokens)
            out = history.folded(k, note)
            if tally.done(out) or k == foldable:
                return out, tally.recount(out)
            tally.cut(note_tokens)  # the real count includes the note: estimate on without it
        raise AssertionError("unreachable: the last fold always returns")

    def _note(self, history: History, k: int) -> Message:
        steps = history.steps(k)
        return Message("user", self.note(steps), folded=steps)


class DropOldest(_Fold):
    """Drops the oldest whole turns, leaving one note of how many, until the request fits.

    Args:
        keep_last: the newest turns kept while dropping older ones is enough (the last turn is always kept).
        target: the share of the budget to shrink to, so rewrites stay rare.
    """

    name = "drop"

    def note(self, steps: tuple[StepInfo, ...]) -> str:
        """How many turns were dropped.

        >>> DropOldest().note((StepInfo(), StepInfo()))
        '[2 earlier turns dropped to fit the context]'
        """
        return f"[{_turns(len(steps))} dropped to fit the context]"


class Summary(_Fold):
    """Replaces the oldest turns by a summary of what they did, built only from their step infos.

    Args:
        keep_last: the newest turns kept while summarizing older ones is enough (the last turn is always kept).
        target: the share of the budget to shrink to, so rewrites stay rare.
        max_items: the most files or commands listed per kind (the newest), so the summary stays short.
    """

    name = "summary"

    def __init__(self, keep_last: int = 2, target: float = 0.75, max_items: int = 20) -> None:
        super().__init__(keep_last, target)
        self.max_items = _check_count("max_items", max_items, least=1)

    def note(self, steps: tuple[StepInfo, ...]) -> str:
        return summarize(steps, self.max_items)


class Compose:
    """Policies applied in order, each on the previous one's output (see `_fit_in_order`); the reason of a fit
    joins the names of those that rewrote.

    >>> Compose([ElideObservations(), DropOldest()]).name
    'elide+drop'
    """

    def __init__(self, policies: Sequence[Rewriter]) -> None:
        if not policies:
            raise ValueError("Compose needs at least one policy, e.g. Compose([ElideObservations(), DropOldest()])")
        self.policies = list(policies)
        self.name = "+".join(policy.name for policy in self.policies)

    def fit(self, messages: list[Message], budget: int, count: Count) -> Fitted | None:
        """See `ContextPolicy.fit`."""
        return _fit_in_order(self.policies, self.name, messages, budget, count)


# -- summaries ---------------------------------------------------------------------------------------------------

#: Longest command shown in a summary, in characters.
_COMMAND_CHARS = 100


def summarize(steps: Sequence[StepInfo], max_items: int = 20) -> str:
    """What the turns of ``steps`` did: files viewed and edited, commands with exit codes, the latest todo list,
    other calls and format errors. Same steps, same text.

    >>> from rock_gym.envs.record import ToolCallRecord as Call, ToolResult as Result
    >>> steps = [StepInfo(turn=1, tool_calls=(Call("bash", {"command": "pytest -q"}),),
    ...                   tool_results=(Result("bash", "1 failed", exit_code=1),)),
    ...          StepInfo(turn=2, tool_calls=(Call("str_replace_editor", {"command": "str_replace", "path": "a.py"}),),
    ...                   tool_results=(Result("str_replace_editor", "ok"),))]
    >>> print(summarize(steps))
    [Summary of 2 earlier turns (turns 1-2), removed to fit the context]
    Files edited: a.py (str_replace)
    Commands run (exit code):
    - pytest -q -> 1
    """
    work = _Work()
    for step in steps:
        for call, result in _paired(step):
            work.add(call, result)
    lines = [_summary_title(steps)]
    lines += _listed("Files viewed", list(work.viewed), max_items)
    lines += _listed("Files edited", [f"{path} ({_operations(ops)})" for path, ops in work.edited.items()], max_items)
    lines += _commands(work.commands, max_items)
    if work.others:
        lines.append("Other calls: " + ", ".join(f"{name} x{n}" for name, n in work.others.items()))
    lines += _todo(steps)
    errors = sum(1 for step in steps if step.format_error)
    if errors:
        lines.append(f"Format errors: {_turns(errors)} had tool calls that could not be parsed")
    return "\n".join(lines if len(lines) > 1 else [*lines, "No tool calls were made."])


@dataclass
class _Work:
    """What turns did, gathered call by call for a summary (dicts keep first-seen order)."""

    viewed: dict[str, None] = field(default_factory=dict)
    edited: dict[str, list[str]] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    others: dict[str, int] = field(default_factory=dict)

    def add(self, call: ToolCallRecord, result: ToolResult | None) -> None:
        arguments = call.arguments
        if call.name == "str_replace_editor" and arguments.get("command") == "view":
            self.viewed[str(arguments.get("path"))] = None
        elif call.name == "str_replace_editor":
            failed = " failed" if result is not None and result.error else ""
            self.edited.setdefault(str(arguments.get("path")), []).append(f"{arguments.get('command')}{failed}")
        elif call.name == "bash":
            self.commands.append(f"- {_short(str(arguments.get('command', '')))} -> {_exit(result)}")
        else:
            self.others[call.name] = self.others.get(call.name, 0) + 1


def _paired(step: StepInfo) -> Iterable[tuple[ToolCallRecord, ToolResult | None]]:
    results = list(step.tool_results)
    return ((call, results[i] if i < len(results) else None) for i, call in enumerate(step.tool_calls))


def _summary_title(steps: Sequence[StepInfo]) -> str:
    numbers = [step.turn for step in steps if step.turn]
    span = f" (turns {min(numbers)}-{max(numbers)})" if numbers else ""
    return f"[Summary of {_turns(len(steps))}{span}, removed to fit the context]"


def _turns(n: int) -> str:
    return f"{n} earlier turn{'' if n == 1 else 's'}"


def _short(command: str) -> str:
    """A command on one line, cut to `_COMMAND_CHARS`."""
    line = " ".join(command.split())
    return line if len(line) <= _COMMAND_CHARS else line[: _COMMAND_CHARS - 3] + "..."


def _exit(result: ToolResult | None) -> str:
    if result is None:
        return "not run"
    if result.timed_out:
        return "timed out"
    if result.exit_code is None:
        return "error" if result.error else "done"
    return str(result.exit_code)


def _operations(operations: list[str]) -> str:
    """``["str_replace", "str_replace", "insert"]`` -> ``"str_replace x2, insert"``, in first-seen order."""
    counts = {op: operations.count(op) for op in dict.fromkeys(operations)}
    return ", ".join(op if n == 1 else f"{op} x{n}" for op, n in counts.items())


def _listed(title: str, items: list[str], max_items: int) -> list[str]:
    if not items:
        return []
    left_out = len(items) - max_items
    more = f" (and {left_out} earlier)" if left_out > 0 else ""
    return [f"{title}: {', '.join(items[-max_items:])}{more}"]


def _commands(commands: list[str], max_items: int) -> list[str]:
    if not commands:
        return []
    left_out = len(commands) - max_items
    return [
        "Commands run (exit code):",
        *([f"- ({left_out} earlier commands not shown)"] if left_out > 0 else []),
        *commands[-max_items:],
    ]


def _todo(steps: Sequence[StepInfo]) -> list[str]:
    latest = next((step for step in reversed(steps) if step.todo is not None), None)
    if latest is None:
        return []
    return [f"Todo list (as of turn {latest.turn}):", *(f"- {item}" for item in latest.todo or ("(empty)",))]


# -- reading a spec ----------------------------------------------------------------------------------------------

#: The policies by the name `parse_policy` reads.
POLICIES: dict[str, type[Rewriter]] = {
    "keep": KeepAll,
    "elide": ElideObservations,
    "drop": DropOldest,
    "summary": Summary,
}


def parse_policy(spec: str) -> ContextPolicy:
    """A context policy from its spec: a name, optional parameters, ``+`` between composed policies.

    >>> parse_policy("elide(keep_last=3,target=0.6)+drop").name
    'elide+drop'
    >>> parse_policy("summary(max_items=5)").max_items
    5
    """
    parts = [_parse_part(part.strip(), spec) for part in spec.split("+")]
    return parts[0] if len(parts) == 1 else Compose(parts)


def _parse_part(part: str, spec: str) -> Rewriter:
    name, _, rest = part.partition("(")
    name = name.strip()
    if name not in POLICIES:
        raise ValueError(
            f"unknown context policy {name!r} in {spec!r}: known policies are {', '.join(POLICIES)}, "
            "composed with + (e.g. elide+drop) and given parameters in parentheses (e.g. elide(keep_last=3))"
        )
    if rest and not rest.rstrip().endswith(")"):
        raise ValueError(f"{part!r} in {spec!r} has no closing parenthesis: write e.g. {name}(target=0.6)")
    arguments = rest.rstrip()[:-1] if rest else ""
    cls = POLICIES[name]
    return cls(**dict(_parse_argument(cls, name, item) for item in arguments.split(",") if item.strip()))


def _parse_argument(cls: type[Rewriter], name: str, item: str) -> tuple[str, Any]:
    defaults = {p.name: p.default for p in inspect.signature(cls).parameters.values()}
    known = ", ".join(defaults) or "no parameters"
    key, equals, text = (s.strip() for s in item.partition("="))
    if key not in defaults or not equals:
        raise ValueError(f"unknown parameter {item.strip()!r} of context policy {name!r}: it takes {known}")
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise ValueError(f"{name}({key}=...) needs a number, got {text!r}") from None
    expected = type(defaults[key])
    if isinstance(value, bool) or not isinstance(value, (int, float) if expected is float else expected):
        raise ValueError(f"{name}({key}=...) needs {'a number' if expected is float else 'a whole number'}: {text!r}")
    return key, value
