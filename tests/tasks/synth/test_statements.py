"""Problem statements: failing tests named, failure excerpt short, the changed line's text never shown."""

from __future__ import annotations

import random
import textwrap
from pathlib import Path

import pytest

from rock_gym.tasks.synth.mutate import Mutation, mutations
from rock_gym.tasks.synth.statements import problem_statement

SOURCE = """def slug(text, sep="-"):
    words = text.lower().split()
    return sep.join(words)


def clip(items, limit):
    if len(items) > limit:
        return items[:limit]
    return items
"""

TRACEBACK = """def test_slug():
>       assert slug("A B") == "a_b"
E       AssertionError: assert 'a-b' == 'a_b'
E         - a_b
E         + a-b

tests/test_m.py:5: AssertionError
"""


def traceback_quoting(mutation: Mutation) -> str:
    """A pytest long traceback whose library frame prints the mutated line, before and after."""
    quoted = "\n".join(f">       {line.strip()}" for line in mutation.changed_lines)
    return (
        f"{TRACEBACK}\n    def helper():\n{quoted}\nE       ValueError: boom\n\npkg/m.py:{mutation.line}: ValueError\n"
    )


@pytest.fixture
def bug() -> Mutation:
    found = mutations("pkg/m.py", SOURCE, seed=0, max_per_function=None, operators=["swap_comparison"])
    return next(m for m in found if m.function == "clip")


FAILURES = {
    "tests/test_m.py::test_clip_short": "AssertionError: assert [1, 2] == [1, 2, 3]",
    "tests/test_m.py::TestClip::test_exact": TRACEBACK,
}


def test_names_the_failing_tests_and_their_errors(bug: Mutation) -> None:
    text = problem_statement(bug, FAILURES, seed=0)
    assert "`tests/test_m.py::test_clip_short`: AssertionError: assert [1, 2] == [1, 2, 3]" in text
    assert "`tests/test_m.py::TestClip::test_exact`: AssertionError: assert 'a-b' == 'a_b'" in text
    assert "tests/test_m.py:5: AssertionError" in text  # the excerpt of the first failure


@pytest.mark.parametrize("seed", range(12))
def test_never_shows_the_changed_lines_or_the_patch(bug: Mutation, seed: int) -> None:
    failures = {**FAILURES, "tests/test_m.py::TestClip::test_exact": traceback_quoting(bug)}
    text = problem_statement(bug, failures, seed=seed)
    assert "len(items) > limit" not in text and "len(items) >= limit" not in text
    assert "@@" not in text and "diff --git" not in text
    assert "ValueError: boom" in text


def test_a_summary_that_quotes_the_changed_line_keeps_only_the_error_type() -> None:
    (bug,) = mutations("m.py", "def f(a):\n    assert a.size < 10\n", 0, operators=["swap_comparison"])
    text = problem_statement(bug, {"t.py::test_f": "AssertionError: assert a.size < 10"}, seed=0)
    assert "a.size < 10" not in text and "a.size <= 10" not in text
    assert "`t.py::test_f`: AssertionError" in text


def test_the_excerpt_is_short(bug: Mutation) -> None:
    long_failure = "\n".join(f"line {i}" for i in range(100)) + "\nE   KeyError: 'x'"
    text = problem_statement(bug, {"t.py::test_a": long_failure}, seed=0, max_lines=10)
    assert "line 91" in text and "line 90" not in text and "KeyError: 'x'" in text
    assert len(text.splitlines()) < 30


def test_many_failing_tests_are_counted(bug: Mutation) -> None:
    failures = {f"t.py::test_{i:02}": "AssertionError" for i in range(9)}
    text = problem_statement(bug, failures, seed=0, max_tests=5)
    assert "t.py::test_04" in text and "t.py::test_05" not in text and "… and 4 more" in text


def test_seeded_templates_vary_and_repeat(bug: Mutation) -> None:
    texts = {seed: problem_statement(bug, FAILURES, seed=seed) for seed in range(20)}
    assert len({text.splitlines()[0] for text in texts.values()}) >= 3
    assert all(problem_statement(bug, FAILURES, seed=seed) == text for seed, text in texts.items())


def test_ansi_colours_are_stripped(bug: Mutation) -> None:
    text = problem_statement(bug, {"t.py::test_a": "\x1b[31mE   ValueError: bad\x1b[0m"}, seed=0)
    assert "\x1b" not in text and "ValueError: bad" in text


def test_no_failure_text(bug: Mutation) -> None:
    text = problem_statement(bug, {"t.py::test_a": ""}, seed=0)
    assert "`t.py::test_a`" in text and "```" not in text
    assert problem_statement(bug, {}, seed=0)


def test_real_module_mutants_never_leak(tmp_path: Path) -> None:
    source = Path(textwrap.__file__).read_text()
    found = mutations("textwrap.py", source, seed=1, max_per_function=None)
    for mutation in random.Random(0).sample(found, 40):
        text = problem_statement(mutation, {"tests/test_t.py::test_x": traceback_quoting(mutation)}, seed=0)
        shown = {line.lstrip(">E ").strip() for line in text.splitlines()}
        for line in mutation.changed_lines:
            changed = line.strip()
            assert changed not in shown, (mutation.diff, text)
            if len(changed) >= 8:  # a short line (`pass`, `i += 1`) may appear in prose
                assert changed not in text, (mutation.diff, text)
