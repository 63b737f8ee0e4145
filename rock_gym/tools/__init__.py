"""Tools a model calls: parsing its turns into tool calls, the tools' schemas, and the file editor.

This layer may import ``rock_gym.sandbox`` for types only; nothing here imports envs or learners.
"""

from rock_gym.tools.calls import FormatError, NoToolCall, ToolCall, ToolError
from rock_gym.tools.editor import Editor, list_dir_command
from rock_gym.tools.files import Files, MemoryFiles
from rock_gym.tools.parsers import (
    FORMATS,
    MAX_CALLS,
    ToolFormat,
    get_format,
    parse_hermes,
    parse_openai,
    parse_qwen3_coder,
    parse_tool_calls,
    render_hermes,
    render_openai,
    render_qwen3_coder,
)
from rock_gym.tools.registry import TOOLS, Tool, tool_schemas, validate_call
from rock_gym.tools.todo import render_todo

__all__ = [
    "FORMATS",
    "MAX_CALLS",
    "TOOLS",
    "Editor",
    "Files",
    "FormatError",
    "MemoryFiles",
    "NoToolCall",
    "Tool",
    "ToolCall",
    "ToolError",
    "ToolFormat",
    "get_format",
    "list_dir_command",
    "parse_hermes",
    "parse_openai",
    "parse_qwen3_coder",
    "parse_tool_calls",
    "render_hermes",
    "render_openai",
    "render_qwen3_coder",
    "render_todo",
    "tool_schemas",
    "validate_call",
]
