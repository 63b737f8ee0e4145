"""The examples in the policies' docstrings run."""

from __future__ import annotations

import doctest

import pytest

from learners.policies import base, expert, vllm


@pytest.mark.parametrize("module", [base, expert, vllm], ids=lambda module: module.__name__)
def test_docstring_examples(module) -> None:  # type: ignore[no-untyped-def]
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
