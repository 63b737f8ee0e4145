"""The examples in the tools layer's docstrings run."""

from __future__ import annotations

import doctest

import pytest

from rock_gym.tools import calls, editor, files, parsers, registry, todo


@pytest.mark.parametrize("module", [calls, editor, files, parsers, registry, todo], ids=lambda module: module.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
