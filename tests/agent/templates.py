"""Chat templates built in tests: the tiny model's (ChatML with Hermes tool calls), a Qwen2.5-style one, a
Llama-3-style one, and a Qwen3-style one that strips earlier turns' reasoning (it re-renders history)."""

from __future__ import annotations

from typing import Any

from learners.policies.tiny import CHAT_TEMPLATE as TINY_TEMPLATE
from learners.policies.tiny import build_tokenizer

#: Qwen2.5's shape: a default system prompt, tools in the system turn, consecutive tool results grouped into one
#: user turn of <tool_response> blocks.
QWEN25_TEMPLATE = r"""
{%- if messages[0].role == 'system' %}{%- set system = messages[0].content %}{%- set rest = messages[1:] %}
{%- else %}{%- set system = 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' %}
{%- set rest = messages %}{%- endif %}
{{- '<|im_start|>system\n' + system }}
{%- if tools %}{{- '\n\n# Tools\n\n<tools>' }}{%- for tool in tools %}{{- '\n' + (tool | tojson) }}{%- endfor %}
{{- '\n</tools>' }}{%- endif %}
{{- '<|im_end|>\n' }}
{%- for message in rest %}
  {%- if message.role == 'tool' %}
    {%- if loop.first or rest[loop.index0 - 1].role != 'tool' %}{{- '<|im_start|>user' }}{%- endif %}
    {{- '\n<tool_response>\n' + message.content + '\n</tool_response>' }}
    {%- if loop.last or rest[loop.index0 + 1].role != 'tool' %}{{- '<|im_end|>\n' }}{%- endif %}
  {%- else %}
    {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' }}
  {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}
"""

#: Llama 3's shape: a BOS, header tokens, content trimmed, tool results under the `ipython` role.
LLAMA3_TEMPLATE = r"""
{{- bos_token }}
{%- for message in messages %}
  {%- set role = 'ipython' if message.role == 'tool' else message.role %}
  {{- '<|start_header_id|>' + role + '<|end_header_id|>\n\n' }}
  {%- if loop.first and tools %}{{- 'Tools: ' + (tools | tojson) + '\n\n' }}{%- endif %}
  {{- (message.content | trim) + '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{%- endif %}
"""

#: Qwen3's habit: earlier assistant turns lose their <think> blocks, the last one keeps it.
QWEN3_TEMPLATE = r"""
{%- for message in messages %}
  {%- set content = message.content %}
  {%- if message.role == 'assistant' and not loop.last and '</think>' in content %}
    {%- set content = content.split('</think>')[-1].lstrip('\n') %}
  {%- endif %}
  {%- set role = 'user' if message.role == 'tool' else message.role %}
  {{- '<|im_start|>' + role + '\n' + content + '<|im_end|>\n' }}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}
"""

LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]


def tokenizer_for(name: str) -> Any:
    """A byte-level BPE tokenizer with the named template: "tiny", "qwen2.5", "llama3" or "qwen3"."""
    tokenizer = build_tokenizer()
    if name == "llama3":
        tokenizer.add_special_tokens({"additional_special_tokens": LLAMA3_SPECIALS, "bos_token": "<|begin_of_text|>"})
        tokenizer.eos_token = "<|eot_id|>"
    tokenizer.add_tokens(["<think>", "</think>"])
    tokenizer.chat_template = {
        "tiny": TINY_TEMPLATE,
        "qwen2.5": QWEN25_TEMPLATE,
        "llama3": LLAMA3_TEMPLATE,
        "qwen3": QWEN3_TEMPLATE,
    }[name]
    return tokenizer
