"""A small built-in set of self-contained SWE tasks: tiny Python projects with a real bug, for env tests.

Each task ships its project as `repo_files` (written to /testbed at reset), hidden tests as `test_files`, and a gold
`patch` made with difflib from the buggy and fixed source, so that `git apply` accepts it exactly.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from rock_gym.sandbox.config import DEFAULT_IMAGE
from rock_gym.tasks.model import SWETask, ToolCall

WORKDIR = "/testbed"
TEST_COMMAND = "python3 -m pytest -rA -p no:cacheprovider {test_files}"


def unified_diff(path: str, before: str, after: str) -> str:
    """A `git apply`-able diff of one file changed from `before` to `after`."""
    lines = difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True), f"a/{path}", f"b/{path}"
    )
    return f"diff --git a/{path} b/{path}\n" + "".join(lines)


@dataclass(frozen=True)
class _Bug:
    """One project: the buggy file, the fix as a replacement within it, the tests before and after the fix."""

    instance_id: str
    problem_statement: str
    source_path: str
    source: str
    old: str
    new: str
    support: dict[str, str]
    test_path: str
    visible_tests: str
    failing_tests: str  # appended to visible_tests to make the hidden test file
    fail_to_pass: list[str]
    pass_to_pass: list[str]

    def task(self) -> SWETask:
        fixed = self.source.replace(self.old, self.new)
        repo = {self.source_path: self.source, self.test_path: self.visible_tests, **self.support}
        return SWETask(
            instance_id=self.instance_id,
            repo=f"rock-gym/{self.instance_id.split('__')[1].rsplit('-', 1)[0]}",
            base_commit="",
            problem_statement=self.problem_statement,
            patch=unified_diff(self.source_path, self.source, fixed),
            FAIL_TO_PASS=self.fail_to_pass,
            PASS_TO_PASS=self.pass_to_pass,
            version="0.1",
            image=DEFAULT_IMAGE,
            workdir=WORKDIR,
            test_command=TEST_COMMAND,
            test_files={self.test_path: f"{self.visible_tests}\n\n{self.failing_tests}"},
            repo_files=repo,
            expert_turns=self._expert_turns(),
        )

    def _expert_turns(self) -> list[list[ToolCall]]:
        path = f"{WORKDIR}/{self.source_path}"
        editor = "str_replace_editor"
        return [
            [ToolCall(name=editor, arguments={"command": "view", "path": path})],
            [
                ToolCall(
                    name=editor,
                    arguments={"command": "str_replace", "path": path, "old_str": self.old, "new_str": self.new},
                )
            ],
            [ToolCall(name="bash", arguments={"command": f"cd {WORKDIR} && python3 -m pytest -q {self.test_path}"})],
            [ToolCall(name="submit", arguments={})],
        ]


_INIT = "\n"

_CLAMP = _Bug(
    instance_id="rock-gym__numtools-1",
    problem_statement="`numtools.clamp(value, low, high)` returns `low` for values above `high`.\n\n"
    "```python\n>>> clamp(15, 0, 10)\n0\n```\nIt should return 10: values above the range clamp to `high`.\n",
    source_path="numtools/core.py",
    source='''"""Small numeric helpers."""


def clamp(value, low, high):
    """Limit value to the closed range [low, high]."""
    if low > high:
        raise ValueError("low must not exceed high")
    if value < low:
        return low
    if value > high:
        return low
    return value


def mean(values):
    """Arithmetic mean of a non-empty sequence."""
    values = list(values)
    if not values:
        raise ValueError("mean of an empty sequence")
    return sum(values) / len(values)
''',
    old="    if value > high:\n        return low\n",
    new="    if value > high:\n        return high\n",
    support={"numtools/__init__.py": 'from numtools.core import clamp, mean\n\n__all__ = ["clamp", "mean"]\n'},
    test_path="tests/test_core.py",
    visible_tests="""import pytest

from numtools import clamp, mean


def test_clamp_inside():
    assert clamp(5, 0, 10) == 5


def test_clamp_below():
    assert clamp(-3, 0, 10) == 0


def test_mean():
    assert mean([1, 2, 3]) == 2
""",
    failing_tests="""@pytest.mark.parametrize("value", [11, 15, 1000])
def test_clamp_above(value):
    assert clamp(value, 0, 10) == 10
""",
    fail_to_pass=[
        "tests/test_core.py::test_clamp_above[11]",
        "tests/test_core.py::test_clamp_above[15]",
        "tests/test_core.py::test_clamp_above[1000]",
    ],
    pass_to_pass=[
        "tests/test_core.py::test_clamp_inside",
        "tests/test_core.py::test_clamp_below",
        "tests/test_core.py::test_mean",
    ],
)

_SLUGIFY = _Bug(
    instance_id="rock-gym__textkit-2",
    problem_statement="`textkit.slugify` leaves runs of dashes and dashes at the ends: "
    "`slugify('  Hello,  World! ')` gives `'--hello---world--'` instead of `'hello-world'`.\n",
    source_path="textkit/slug.py",
    source='''"""URL slugs."""

import re


def slugify(text):
    """Lower-case `text` and join its words with single dashes."""
    text = text.lower()
    return re.sub(r"[^a-z0-9]", "-", text)
''',
    old='    return re.sub(r"[^a-z0-9]", "-", text)\n',
    new='    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")\n',
    support={"textkit/__init__.py": _INIT},
    test_path="tests/test_slug.py",
    visible_tests="""from textkit.slug import slugify


def test_single_word():
    assert slugify("Hello") == "hello"
""",
    failing_tests="""def test_collapses_separators():
    assert slugify("  Hello,  World! ") == "hello-world"


class TestDigits:
    def test_keeps_digits(self):
        assert slugify("Route 66") == "route-66"
""",
    fail_to_pass=["tests/test_slug.py::test_collapses_separators"],
    pass_to_pass=["tests/test_slug.py::test_single_word", "tests/test_slug.py::TestDigits::test_keeps_digits"],
)

_INTERVALS = _Bug(
    instance_id="rock-gym__spans-3",
    problem_statement="`spans.merge` does not merge intervals that touch: `merge([(1, 3), (3, 5)])` returns "
    "`[(1, 3), (3, 5)]` but touching closed intervals should merge into `[(1, 5)]`.\n",
    source_path="spans/merge.py",
    source='''"""Closed integer intervals."""


def merge(intervals):
    """Merge overlapping closed intervals; returns a sorted list of (start, end)."""
    merged = []
    for start, end in sorted(intervals):
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged
''',
    old="        if merged and start < merged[-1][1]:\n",
    new="        if merged and start <= merged[-1][1]:\n",
    support={"spans/__init__.py": _INIT},
    test_path="tests/test_merge.py",
    visible_tests="""from spans.merge import merge


def test_overlapping():
    assert merge([(5, 8), (1, 6)]) == [(1, 8)]


def test_disjoint():
    assert merge([(1, 2), (4, 5)]) == [(1, 2), (4, 5)]
""",
    failing_tests="""def test_touching():
    assert merge([(3, 5), (1, 3)]) == [(1, 5)]


def test_chain_of_touching():
    assert merge([(1, 2), (2, 3), (3, 4)]) == [(1, 4)]
""",
    fail_to_pass=["tests/test_merge.py::test_touching", "tests/test_merge.py::test_chain_of_touching"],
    pass_to_pass=["tests/test_merge.py::test_overlapping", "tests/test_merge.py::test_disjoint"],
)

_CART = _Bug(
    instance_id="rock-gym__shop-4",
    problem_statement="`Cart.total()` ignores a percentage discount larger than 9: a 25% discount on 200.00 gives "
    "199.75 instead of 150.00. `discount` is a percentage (0-100), not a fraction.\n",
    source_path="shop/cart.py",
    source='''"""A shopping cart."""


class Cart:
    def __init__(self, discount=0):
        self.items = []
        self.discount = discount  # percent, 0-100

    def add(self, name, price, quantity=1):
        self.items.append((name, price, quantity))

    def subtotal(self):
        return sum(price * quantity for _, price, quantity in self.items)

    def total(self):
        return round(self.subtotal() * (1 - self.discount / 10000), 2)
''',
    old="        return round(self.subtotal() * (1 - self.discount / 10000), 2)\n",
    new="        return round(self.subtotal() * (1 - self.discount / 100), 2)\n",
    support={"shop/__init__.py": _INIT},
    test_path="tests/test_cart.py",
    visible_tests="""from shop.cart import Cart


def test_subtotal():
    cart = Cart()
    cart.add("pen", 2.5, 4)
    assert cart.subtotal() == 10.0


def test_total_without_discount():
    cart = Cart()
    cart.add("book", 12.0)
    assert cart.total() == 12.0
""",
    failing_tests="""def test_total_with_discount():
    cart = Cart(discount=25)
    cart.add("lamp", 100.0, 2)
    assert cart.total() == 150.0
""",
    fail_to_pass=["tests/test_cart.py::test_total_with_discount"],
    pass_to_pass=["tests/test_cart.py::test_subtotal", "tests/test_cart.py::test_total_without_discount"],
)

_BUGS = (_CLAMP, _SLUGIFY, _INTERVALS, _CART)


def builtin_swe_tasks() -> list[SWETask]:
    """The built-in SWE tasks (fresh objects on each call).

    >>> [task.instance_id for task in builtin_swe_tasks()][:2]
    ['rock-gym__numtools-1', 'rock-gym__textkit-2']
    """
    return [bug.task() for bug in _BUGS]
