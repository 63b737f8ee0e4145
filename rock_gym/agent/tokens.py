"""Token-exact conversations: a chat template's renders, and the tokens between one sampled turn and the next.

The policy samples ids; the harness never re-tokenizes what was sampled. Between two requests it appends only what
the template writes after the sampled turn — the *delta*: the template's render of the conversation with the new
observation and the next generation prompt, minus its render of the conversation up to the sampled turn — and checks
that the result is still, as text, exactly the template's full render. When it is not (a template that re-renders
earlier turns, e.g. one that strips old reasoning or trims whitespace), the delta is refused and the caller starts a
new segment from a full render.

One subtlety is the end of the assistant turn. The template writes ``content + closing`` (``"<|im_end|>\\n"`` in
ChatML, ``"<|eot_id|>"`` in Llama 3). A completion that stopped on the end token sampled the start of ``closing``;
the rest (``"\\n"``) is the template's. A completion cut by ``length`` sampled no end token: the whole closing is
appended as template tokens, never as sampled ones (the bug where a length stop gets an end token it never sampled).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: A chat message as chat templates take it.
ChatMessage = dict[str, Any]
_PROBE = "\x00probe\x00"


class TemplateMismatch(Exception):
    """The template's full render is not the running sequence plus the delta: history was re-rendered."""


@dataclass(frozen=True)
class Delta:
    """What follows a sampled completion: its ``ids`` (not sampled) and the full render ``text`` they complete."""

    ids: list[int]
    text: str


class ChatTemplate:
    """A tokenizer's chat template over one episode's tools, rendering text and computing deltas.

    Args:
        tokenizer: a Hugging Face tokenizer with a ``chat_template``.
        tools: the OpenAI function schemas shown to the model.

    Attributes:
        closing: what the template writes after an assistant turn's content.
        end_id: the token that ends an assistant turn when sampled (the start of ``closing``), or None.
    """

    def __init__(self, tokenizer: Any, tools: Sequence[dict[str, Any]] | None = None) -> None:
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError("the policy's tokenizer has no chat_template: set one (tokenizer.chat_template = ...)")
        self.tokenizer = tokenizer
        # A fast tokenizer's Rust backend: no Python walk over the ids, and no "clean-up" of spaces on decode, which
        # would break the text round trip the deltas rely on.
        self.backend = getattr(tokenizer, "backend_tokenizer", None)
        self.tools = list(tools) if tools else None
        self._encoded: dict[str, list[int]] = {}
        self.closing = self._closing()
        self.end_id, self.end_text = self._end_token()

    def render(self, messages: Sequence[ChatMessage], generation_prompt: bool) -> str:
        """The template's text for ``messages``; with ``generation_prompt``, ready for the assistant to speak."""
        return self.tokenizer.apply_chat_template(
            list(messages), tools=self.tools, add_generation_prompt=generation_prompt, tokenize=False
        )

    def encode(self, text: str) -> list[int]:
        """Ids of template text: special tokens written as text become their ids; no BOS or EOS is added."""
        if self.backend is not None:
            return self.backend.encode(text, add_special_tokens=False).ids
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ids, special tokens kept (the inverse of `encode` on a byte-level tokenizer)."""
        if self.backend is not None:
            return self.backend.decode(list(ids), skip_special_tokens=False)
        return self.tokenizer.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def prompt(self, messages: Sequence[ChatMessage]) -> tuple[list[int], str]:
        """A full render ready for the assistant, as ids and text: the request that opens a segment.

        The last few renders' ids are kept: a context policy's final count and the segment it opens tokenize the
        same text.
        """
        text = self.render(messages, generation_prompt=True)
        ids = self._encoded.get(text)
        if ids is None:
            ids = self.encode(text)
            self._encoded[text] = ids
            while len(self._encoded) > 4:
                self._encoded.pop(next(iter(self._encoded)))
        return list(ids), text

    def content(self, completion_ids: Sequence[int], end_ids: frozenset[int] = frozenset()) -> str:
        """The assistant turn's text from its sampled ids, a final end token (the template's or in ``end_ids``)
        left out."""
        ids = list(completion_ids)
        if ids and (ids[-1] == self.end_id or ids[-1] in end_ids):
            ids = ids[:-1]
        return self.decode(ids)

    def delta(
        self, messages: Sequence[ChatMessage], running_text: str, content: str, observation: ChatMessage
    ) -> Delta:
        """The ids that follow a completion: the rest of the assistant turn, ``observation``, the generation prompt.

        Args:
            messages: the conversation the request rendered (without the new assistant turn).
            running_text: the running sequence's text: the request's render, then the completion's decoded ids.
            content: the sampled turn's text (`content`), as the conversation records it.
            observation: the message that answers the turn (role "tool" or "user").

        Raises:
            TemplateMismatch: the full render of the longer conversation does not extend the running sequence.
        """
        assistant = {"role": "assistant", "content": content}
        following = self.render([*messages, assistant, observation], generation_prompt=True)
        if not following.startswith(running_text):
            raise TemplateMismatch("the template renders the conversation differently from the running sequence")
        rest = following[len(running_text) :]
        ids = self.encode(rest)
        if self.decode(ids) != rest:
            raise TemplateMismatch("the delta's text does not survive tokenization")
        return Delta(ids, following)

    # -- what the template writes around an assistant turn ------------------------------------------------------

    def _closing(self) -> str:
        head = [{"role": "user", "content": "x"}]
        before = self.render(head, generation_prompt=True)
        after = self.render([*head, {"role": "assistant", "content": _PROBE}], generation_prompt=False)
        start = after.find(_PROBE)
        if start < 0 or not after.startswith(before):
            raise ValueError("the chat template does not write an assistant turn's content verbatim after its prompt")
        return after[start + len(_PROBE) :]

    def _end_token(self) -> tuple[int | None, str]:
        ids = self.encode(self.closing)
        if not ids or ids[0] not in set(self.tokenizer.all_special_ids):
            return None, ""
        text = self.decode(ids[:1])
        return (ids[0], text) if self.closing.startswith(text) else (None, "")
