"""Problem statements for injected bugs, written from the failing behaviour like an issue report.

A statement names the failing tests, their assertion messages or exception types, and a short excerpt of one
failure. It never shows the patch, and any line of the failure text that quotes a changed line (pytest tracebacks
print the source of each frame) is left out.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass

from rock_gym.tasks.synth.mutate import Mutation

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_ERROR_LINE = re.compile(r"^E\s+(\S.*)$")
_EXCEPTION = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning|Failure|Iteration))\b")
#: Changed lines shorter than this (a bare `)` or `pass`) reveal nothing and would hide too much.
_MIN_HIDDEN = 4


@dataclass(frozen=True)
class _Template:
    title: str
    intro: str
    tests: str
    excerpt: str
    closing: str


_TEMPLATES = (
    _Template(
        "{first} fails with {error}",
        "After the latest changes, part of the test suite fails.",
        "Failing tests:",
        "Output of the first failure:",
        "These tests passed before. Please fix the code so the suite passes again (the tests are correct).",
    ),
    _Template(
        "Regression: {count} failing",
        "Running the test suite on the current checkout gives unexpected failures.",
        "The following tests fail:",
        "Here is an excerpt of the failure:",
        "The expected behaviour is what the tests check; the implementation, not the tests, needs fixing.",
    ),
    _Template(
        "Tests in {module} fail with {error}",
        "Something broke: tests that should pass now fail.",
        "What fails:",
        "Excerpt:",
        "Could you track down the cause and fix it? The tests themselves should not change.",
    ),
    _Template(
        "Wrong behaviour caught by {first}",
        "I ran the tests and some of them fail.",
        "Failures:",
        "The failure looks like this:",
        "Fix the library code so that all the tests pass.",
    ),
)


def problem_statement(
    mutation: Mutation, failures: Mapping[str, str], seed: int | str, max_tests: int = 5, max_lines: int = 10
) -> str:
    """An issue-style report of a bug from its failing tests, phrased by one of a few seeded templates.

    Lists the failing tests with their assertion message or exception line, then the tail of the longest failure.

    Args:
        mutation: the injected bug; only its changed lines are used, to keep them out of the text.
        failures: failing test id -> its failure text (a junit failure message or the full report text).
        seed: picks the template (mixed with the mutation's diff, so tasks vary under one seed).
        max_tests: the most tests listed by name; the rest are counted.
        max_lines: the most lines of the failure excerpt.

    >>> from rock_gym.tasks.synth.mutate import mutations
    >>> bug = mutations("m.py", "def f(a, b):\\n    return a < b\\n", 0, operators=["swap_comparison"])[0]
    >>> text = problem_statement(bug, {"t.py::test_f": "AssertionError: assert True is False"}, seed=0)
    >>> "t.py::test_f" in text and "a <= b" not in text
    True
    """
    template = random.Random(f"{seed}:{mutation.diff}").choice(_TEMPLATES)
    hidden = _hidden_lines(mutation)
    tests = sorted(failures)
    summaries = {test: _summary(failures[test], hidden) for test in tests}
    title = template.title.format(
        first=f"`{_short_name(tests[0])}`" if tests else "the test suite",
        error=_error_name(summaries[tests[0]] if tests else ""),
        count=f"{len(tests)} test{'s' if len(tests) != 1 else ''}",
        module=f"`{tests[0].split('::')[0]}`" if tests else "the test suite",
    )
    parts = [f"# {title}", template.intro, template.tests + "\n" + _test_list(tests, summaries, max_tests)]
    richest = max(tests, key=lambda test: len(failures[test].splitlines()), default="")
    excerpt = _excerpt(failures[richest], hidden, max_lines) if tests else ""
    if excerpt and excerpt != summaries[richest]:
        parts.append(f"{template.excerpt}\n```\n{excerpt}\n```")
    parts.append(template.closing)
    return "\n\n".join(parts) + "\n"


def _test_list(tests: list[str], summaries: Mapping[str, str], limit: int) -> str:
    if not tests:
        return "- (no test names were reported)"
    lines = [f"- `{test}`: {summaries[test]}" if summaries[test] else f"- `{test}`" for test in tests[:limit]]
    if len(tests) > limit:
        lines.append(f"- … and {len(tests) - limit} more")
    return "\n".join(lines)


def _short_name(test_id: str) -> str:
    return test_id.split("::")[-1] or test_id


def _error_name(summary: str) -> str:
    if summary.startswith("assert"):
        return "AssertionError"
    match = _EXCEPTION.match(summary)
    return match.group(1) if match else "an error"


def _normalize(line: str) -> str:
    return " ".join(line.strip().lstrip(">").split())


def _hidden_lines(mutation: Mutation) -> set[str]:
    return {norm for line in mutation.changed_lines if len(norm := _normalize(line)) >= _MIN_HIDDEN}


def _reveals(line: str, hidden: set[str]) -> bool:
    norm = _normalize(line)
    return any(text in norm for text in hidden)


def _clean_lines(text: str) -> list[str]:
    return [line.rstrip() for line in _ANSI.sub("", text).splitlines()]


def _summary(text: str, hidden: set[str], width: int = 160) -> str:
    """The assertion message or exception line: pytest's first `E` line, else the first non-empty line."""
    lines = [line for line in _clean_lines(text) if line.strip()]
    errors = [match.group(1) for line in lines if (match := _ERROR_LINE.match(line))]
    summary = (errors or lines or [""])[0].strip()
    if _reveals(summary, hidden):
        return _error_name(summary)
    return summary if len(summary) <= width else summary[: width - 1] + "…"


def _excerpt(text: str, hidden: set[str], max_lines: int, width: int = 200) -> str:
    """The last `max_lines` lines of a failure (where the error is), without lines that quote changed code."""
    lines = [line for line in _clean_lines(text) if not _reveals(line, hidden)]
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    kept = [line if len(line) <= width else line[: width - 1] + "…" for line in lines[-max_lines:]]
    return "\n".join(kept)
