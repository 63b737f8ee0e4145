"""What a parsed model turn is made of, and the errors a model is shown when its turn cannot be used."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ToolCall:
    """One call of a tool, as the model wrote it.

    Attributes:
        name: the tool's name, e.g. ``"bash"``.
        arguments: the call's arguments, decoded from the model's text.
        id: the call's id where the format carries one (OpenAI), else None.

    Examples:
        >>> ToolCall("bash", {"command": "ls"})
        ToolCall(name='bash', arguments={'command': 'ls'}, id=None)
    """

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    id: str | None = None


class FormatError(ValueError):
    """A model turn (or one call in it) that cannot be used; the message says how to fix it and is shown to the model.

    Attributes:
        message: the text to show the model.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NoToolCall(FormatError):
    """A turn with no tool call at all; an env may read such a turn as a plain-text answer."""


class ToolError(RuntimeError):
    """A well-formed call that failed while running (missing file, ambiguous edit); the message is for the model.

    Attributes:
        message: the text to show the model.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
