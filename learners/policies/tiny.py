"""Build and save a tiny chat model for tests and demos: no model hub needed, loaded like any user's model.

The tokenizer is a byte-level BPE trained with `tokenizers` on a small corpus of tool-call markup, JSON and shell
words, so any text round-trips; its chat template writes Hermes/Qwen-style turns with ``<tool_call>`` tags. The model
is a 2-layer Llama with random weights: it samples nonsense, but every code path (chat template, batched sampling,
logprobs, training) runs on CPU in milliseconds.

Examples:
    >>> from learners.policies.tiny import build_tiny_model   # doctest: +SKIP
    >>> build_tiny_model("/tmp/tiny")                          # doctest: +SKIP
    >>> HFPolicy("/tmp/tiny")                                  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from learners.policies.base import require

BOS, EOS, PAD = "<|endoftext|>", "<|im_end|>", "<|pad|>"
IM_START = "<|im_start|>"
#: Markup kept as single tokens (not special: decoding keeps them in the text).
MARKUP = ["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<tools>", "</tools>"]

#: Qwen2.5-style: tools listed in the system turn, calls in <tool_call> tags, tool results as <tool_response>.
CHAT_TEMPLATE = r"""
{%- if messages and messages[0].role == 'system' %}
    {%- set system = messages[0].content %}
    {%- set rest = messages[1:] %}
{%- else %}
    {%- set system = '' %}
    {%- set rest = messages %}
{%- endif %}
{%- if system or tools %}
    {{- '<|im_start|>system\n' + system }}
    {%- if tools %}
        {%- if system %}{{- '\n\n' }}{%- endif %}
        {{- '# Tools\n\nYou may call one or more functions.\n<tools>' }}
        {%- for tool in tools %}
            {{- '\n' + (tool | tojson) }}
        {%- endfor %}
        {{- '\n</tools>\n\nFor each call, return <tool_call>\n' }}
        {{- '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>' }}
    {%- endif %}
    {{- '<|im_end|>\n' }}
{%- endif %}
{%- for message in rest %}
    {%- if message.role == 'tool' %}
        {{- '<|im_start|>user\n<tool_response>\n' + message.content + '\n</tool_response><|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>' + message.role + '\n' + (message.content or '') }}
        {%- for call in message.tool_calls or [] %}
            {%- set f = call.function or call %}
            {{- '\n<tool_call>\n{"name": "' + f.name + '", "arguments": ' }}
            {%- if f.arguments is string %}{{- f.arguments }}{%- else %}{{- f.arguments | tojson }}{%- endif %}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}
"""


def default_corpus() -> list[str]:
    """Text the tokenizer learns from: the envs' tool schemas, calls in each format, shell and Python words."""
    from rock_gym.tools import ToolCall, get_format, tool_schemas

    calls = [
        ToolCall("bash", {"command": "ls -la /testbed && cat README.md | grep -n error"}),
        ToolCall("str_replace_editor", {"command": "view", "path": "/testbed/src/module.py"}),
        ToolCall("str_replace_editor", {"command": "str_replace", "path": "a.py", "old_str": "x", "new_str": "y"}),
        ToolCall("submit", {}),
    ]
    rendered = [get_format(name).render(calls) for name in ("hermes", "qwen3_coder", "openai")]
    words = (
        "cd ls cat grep sed awk find echo python3 pytest git diff apply status head tail wc sort uniq cut xargs "
        "def return import from class self if else for in while True False None print open read write "
        "the a to of and is fix test tests file files error issue repository function value line output"
    )
    return [json.dumps(tool_schemas()), *rendered, words, "You are an agent working in a Linux container."] * 4


def build_tokenizer(corpus: Iterable[str] | None = None, vocab_size: int = 1024):  # type: ignore[no-untyped-def]
    """A byte-level BPE `PreTrainedTokenizerFast` with chat special tokens and the Hermes-style chat template."""
    tokenizers = require("tokenizers", "hf")
    transformers = require("transformers", "hf")
    bpe = tokenizers.Tokenizer(tokenizers.models.BPE())
    bpe.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[BOS, EOS, PAD, IM_START],
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(list(corpus or default_corpus()), trainer=trainer)
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        additional_special_tokens=[IM_START],
        padding_side="left",
    )
    tokenizer.add_tokens(MARKUP)
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_tiny_model(
    path: str | Path,
    vocab_corpus: Iterable[str] | None = None,
    seed: int = 0,
    hidden_size: int = 64,
    num_layers: int = 2,
) -> Path:
    """Save a tiny random Llama and its tokenizer to ``path``; load it back with ``HFPolicy(path)``.

    Args:
        path: the directory to write (``config.json``, weights, tokenizer files).
        vocab_corpus: texts to train the tokenizer on; default: :func:`default_corpus`.
        seed: seeds the weights, so the same arguments give the same model.
        hidden_size, num_layers: the model's width and depth.

    Returns:
        ``path``.
    """
    torch = require("torch", "hf")
    transformers = require("transformers", "hf")
    path = Path(path)
    tokenizer = build_tokenizer(vocab_corpus)
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = transformers.LlamaForCausalLM(config)
    model.generation_config = transformers.GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
