"""Bug injection: each operator on small samples, locality of every edit, patches that `git apply` takes, seeds."""

from __future__ import annotations

import ast
import difflib
import random
import re
import shlex
import subprocess
import textwrap
from pathlib import Path

import pytest

from rock_gym.tasks.synth.mutate import OPERATORS, Mutation, covered_functions, mutations, parse, unified_diff


def _lines(text: str) -> list[bytes]:
    """Lines as the parser counts them (`Mutation.line` is a parser line): after `\\r\\n`, `\\r` or `\\n`."""
    return [line.encode() for line in re.findall(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z", text)]


def assert_local(mutation: Mutation) -> ast.Module:
    """The mutant parses and differs; 1-3 lines changed from `line` on, every other line byte-identical."""
    tree = parse(mutation.after)  # the whole module: `mutations` parses only the mutated function
    assert mutation.after != mutation.before
    before, after = _lines(mutation.before), _lines(mutation.after)
    head = 0
    while before[head] == after[head]:
        head += 1
    tail = 0
    while tail < min(len(before), len(after)) - head and before[-1 - tail] == after[-1 - tail]:
        tail += 1
    old, new = before[head : len(before) - tail], after[head : len(after) - tail]
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    changes = [op for op in matcher.get_opcodes() if op[0] != "equal"]  # the rest is byte-identical
    removed, added = sum(i2 - i1 for _, i1, i2, _, _ in changes), sum(j2 - j1 for *_, j1, j2 in changes)
    assert removed + added >= 1 and removed <= 3 and added <= 3, mutation.diff
    assert head >= mutation.line - 1, mutation.diff
    assert mutation.diff.count("\n@@ ") == 1
    return tree


def mutated(body: str, operator: str, header: str = "def f(a, b, c):") -> set[str]:
    """The function bodies (dedented, stripped) an operator makes of `body`."""
    source = f"{header}\n{textwrap.indent(textwrap.dedent(body).strip(), '    ')}\n"
    found = mutations("pkg/m.py", source, seed=0, max_per_function=None, operators=[operator])
    for mutation in found:
        assert_local(mutation)
        assert mutation.operator == operator and mutation.function == "f"
    return {textwrap.dedent(m.after.split("\n", 1)[1]).strip() for m in found}


@pytest.mark.parametrize(
    ("operator", "body", "expected"),
    [
        ("swap_comparison", "return a < b", {"return a <= b"}),
        ("swap_comparison", "return a >= b", {"return a > b"}),
        ("swap_comparison", "return a == b != c", {"return a != b != c", "return a == b == c"}),
        ("swap_comparison", "return a is not None", {"return a is None"}),
        ("swap_comparison", "return (a)is(b)", {"return (a)is not(b)"}),
        ("swap_comparison", "return a in b", {"return a not in b"}),
        ("swap_comparison", "return a not  in b", {"return a in b"}),
        ("swap_comparison", "return (a  # x < y\n        > b)", {"return (a  # x < y\n        >= b)"}),
        ("swap_boolean", "return a and b or c", {"return a or b or c", "return a and b and c"}),
        ("swap_boolean", "return (a or b) and c", {"return (a and b) and c", "return (a or b) or c"}),
        ("off_by_one", "return a[2] + b[0]", {"return a[3] + b[0]", "return a[1] + b[0]", "return a[2] + b[1]"}),
        ("off_by_one", "return a[-1]", {"return a[-2]", "return a[-0]"}),
        ("off_by_one", "return 0x10 + 1_000 + 2.5 + True", set()),
        (
            "off_by_one_slice",
            "return a[b:c.d]",
            {"return a[b + 1:c.d]", "return a[b - 1:c.d]", "return a[b:c.d + 1]", "return a[b:c.d - 1]"},
        ),
        ("off_by_one_slice", "return a[1:b - 1]", set()),
        ("negate_condition", "if a:\n    b()", {"if not a:\n    b()"}),
        ("negate_condition", "if not a:\n    b()", {"if a:\n    b()"}),
        ("negate_condition", "if not(a):\n    b()", {"if (a):\n    b()"}),
        ("negate_condition", "while a < b:\n    b()", {"while not (a < b):\n    b()"}),
        ("negate_condition", "return a if b else c", {"return a if not b else c"}),
        (
            "negate_condition",
            "if a:\n    b()\nelif c:\n    b()",
            {"if not a:\n    b()\nelif c:\n    b()", "if a:\n    b()\nelif not c:\n    b()"},
        ),
        ("remove_statement", "x = a\nb(x)\nreturn x", {"b(x)\nreturn x", "x = a\nreturn x"}),
        ("remove_statement", "if a:\n    c += 1  # count", {"if a:\n    pass"}),
        ("remove_statement", "b()", set()),
        ("remove_statement", "x = 1; y = 2\nreturn x", set()),
        ("remove_statement", "print(a)\nlog.info(a)\nself.logger.debug(a)\nreturn a", set()),
        ("remove_statement", "x: int\ny: int = 2\nreturn a", {"x: int\nreturn a"}),
        ("swap_arguments", "return g(a, b, c=1)", {"return g(b, a, c=1)"}),
        ("swap_arguments", "return g(a, a)", set()),
        ("swap_arguments", "return g(*a, b)", set()),
        ("swap_arguments", "return g((a), b + 1)", {"return g((b + 1), a)"}),
        ("swap_arguments", "return g(\n    a,  # first\n    b)", {"return g(\n    b,  # first\n    a)"}),
        ("wrong_return", "return a + b", {"return None"}),
        ("wrong_return", "return True", {"return False"}),
        ("wrong_return", "return None", set()),
        ("wrong_return", "return", set()),
    ],
)
def test_operator(operator: str, body: str, expected: set[str]) -> None:
    assert mutated(body, operator) == expected


def test_change_default() -> None:
    header = "def f(a, b=True, *, c=3, d=None, e='x'):"
    found = mutations("m.py", f"{header}\n    return a\n", 0, max_per_function=None, operators=["change_default"])
    assert {m.after.split("\n")[0] for m in found} == {
        "def f(a, b=False, *, c=3, d=None, e='x'):",
        "def f(a, b=True, *, c=4, d=None, e='x'):",
        "def f(a, b=True, *, c=2, d=None, e='x'):",
    }


def test_every_operator_is_exercised() -> None:
    assert set(OPERATORS) == {
        "swap_comparison",
        "swap_boolean",
        "off_by_one",
        "off_by_one_slice",
        "negate_condition",
        "remove_statement",
        "swap_arguments",
        "wrong_return",
        "change_default",
    }


SKIPPED = '''
class A:
    """Class doc 1."""

    def __repr__(self):
        return f"A({self.x < 1})"

    def f(self, x: Annotated[int, 2]) -> Literal[3]:
        """Return 4 items."""
        y: Literal[5] = x
        log.info("%d", 6)
        print(7 < x)
        return f"{x[8]}"

@deco(9)
def g():
    pass
'''


def test_docstrings_annotations_repr_fstrings_logging_and_decorators_are_skipped() -> None:
    found = mutations("m.py", SKIPPED, seed=0, max_per_function=None)
    assert sorted((m.function, m.operator) for m in found) == [("A.f", "remove_statement"), ("A.f", "wrong_return")]
    removal = next(m for m in found if m.operator == "remove_statement")
    assert removal.changed_lines == ["        y: Literal[5] = x"]


def test_non_ascii_source_uses_character_offsets() -> None:
    source = 'def f(s):\n    t = "héllo ✓ 𝄞"; return s == "ü" and len(s) < 3  # ñ\n'
    found = mutations("m.py", source, seed=0, max_per_function=None)
    afters = {m.after.splitlines()[1] for m in found}
    assert '    t = "héllo ✓ 𝄞"; return s != "ü" and len(s) < 3  # ñ' in afters
    assert '    t = "héllo ✓ 𝄞"; return s == "ü" or len(s) < 3  # ñ' in afters
    assert '    t = "héllo ✓ 𝄞"; return s == "ü" and len(s) < 4  # ñ' in afters
    assert '    t = "héllo ✓ 𝄞"; return s == "ü" and len(s) <= 3  # ñ' in afters
    for mutation in found:
        assert_local(mutation)


def test_multi_line_spans() -> None:
    source = "def f(a, b):\n    if (a and\n            b < 2):\n        return 1\n    return 2\n"
    found = mutations("m.py", source, seed=0, max_per_function=None, operators=["negate_condition"])
    assert [m.after for m in found] == [
        "def f(a, b):\n    if (not (a and\n            b < 2)):\n        return 1\n    return 2\n"
    ]
    assert_local(found[0])


def test_long_spans_are_dropped() -> None:
    source = "def f(a):\n    return [\n        1,\n        2,\n        3,\n    ]\n"
    found = mutations("m.py", source, seed=0, max_per_function=None, operators=["wrong_return"])
    assert found == []


def test_qualified_names_and_function_filter() -> None:
    source = (
        "class A:\n    def m(self, x):\n        return x < 1\n"
        "def outer(x):\n    def inner(y):\n        return y > 1\n    return inner(x) == 2\n"
    )
    names = {m.function for m in mutations("m.py", source, 0, max_per_function=None)}
    assert names == {"A.m", "outer", "outer.<locals>.inner"}
    only = mutations("m.py", source, 0, functions={"outer.<locals>.inner"}, max_per_function=None)
    assert only and {m.function for m in only} == {"outer.<locals>.inner"}


def test_covered_functions() -> None:
    source = (
        "class A:\n    def m(self, x):\n        return x < 1\n"
        "def outer(x):\n    def inner(y):\n        return y > 1\n    return inner(x) == 2\n"
    )
    assert covered_functions(source, {3}) == {"A.m"}
    assert covered_functions(source, {5}) == {"outer"}  # the nested def line runs in outer
    assert covered_functions(source, {6}) == {"outer.<locals>.inner"}
    assert covered_functions(source, {2, 4}) == set()  # def lines run at import
    assert covered_functions(source, {3, 6, 7}) == {"A.m", "outer", "outer.<locals>.inner"}


def test_same_seed_same_list_and_caps() -> None:
    source = Path(textwrap.__file__).read_text()
    first = mutations("textwrap.py", source, seed=7)
    again = mutations("textwrap.py", source, seed=7)
    assert [m.diff for m in first] == [m.diff for m in again]
    assert [m.diff for m in first] != [m.diff for m in mutations("textwrap.py", source, seed=8)]
    per_function: dict[str, int] = {}
    for mutation in mutations("textwrap.py", source, seed=7, max_per_function=2):
        per_function[mutation.function] = per_function.get(mutation.function, 0) + 1
    assert max(per_function.values()) == 2


def test_a_function_filter_keeps_the_picks_in_the_other_functions() -> None:
    source = Path(textwrap.__file__).read_text()
    everything = mutations("textwrap.py", source, seed=3)
    only = mutations("textwrap.py", source, seed=3, functions={"dedent", "TextWrapper._wrap_chunks"})
    assert {m.diff for m in only} == {
        m.diff for m in everything if m.function in {"dedent", "TextWrapper._wrap_chunks"}
    }


def test_picks_mix_operators() -> None:
    body = "\n".join(f"    x{i} = a < {i}" for i in range(2, 12))
    found = mutations("m.py", f"def f(a):\n{body}\n    return x2\n", seed=0, max_per_function=3)
    assert len({m.operator for m in found}) == 3


def test_unparsable_source_and_unknown_operator() -> None:
    assert mutations("m.py", "def f(:\n", seed=0) == []
    with pytest.raises(KeyError):
        mutations("m.py", "def f():\n    return 1\n", seed=0, operators=["nope"])


def test_changed_lines() -> None:
    (mutation,) = mutations("m.py", "def f(a):\n    return a < 1\n", 0, operators=["swap_comparison"])
    assert mutation.changed_lines == ["    return a < 1", "    return a <= 1"]


def test_diff_without_trailing_newline_has_the_git_marker() -> None:
    diff = unified_diff("m.py", "x = 1", "x = 2")
    assert diff.endswith("-x = 1\n\\ No newline at end of file\n+x = 2\n\\ No newline at end of file\n")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    return tmp_path


def assert_applies(repo: Path, mutation: Mutation) -> None:
    """`git apply` takes the bug patch onto `before` giving `after`, and the gold patch reverts it."""
    target = repo / mutation.path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(mutation.before.encode())
    for patch, expected in ((mutation.diff, mutation.after), (mutation.gold_patch, mutation.before)):
        subprocess.run(["git", "apply", "-"], cwd=repo, input=patch.encode(), check=True, capture_output=True)
        assert target.read_bytes() == expected.encode()


@pytest.mark.parametrize(
    "source",
    [
        "def f(a, b):\n    if a < b:\n        return a\n    return b\n",
        "def f(a, b):\r\n    if a < b:\r\n        return a\r\n    return b\r\n",
        "def f(a, b):\n    x = a\n    return g(a, x)",
        'def f(s):\n    t = "héllo ✓"\n    return s[:len(t)] == "ü"  # ñ\n',
        "\ufeffdef f(a, b='é'):\n    return a < b\n",
        "def f(a, b):\r    x = 'é'\r    return a < b\r",
    ],
    ids=["lf", "crlf", "no-final-newline", "non-ascii", "byte-order-mark", "cr"],
)
def test_patches_apply_with_git(repo: Path, source: str) -> None:
    found = mutations("pkg/sub/m.py", source, seed=0, max_per_function=None)
    assert found
    for mutation in found:
        assert_local(mutation)
        assert_applies(repo, mutation)


@pytest.mark.parametrize("module", [textwrap, shlex], ids=lambda m: m.__name__)
def test_real_modules(repo: Path, module: object) -> None:
    """Every mutant of a real stdlib module parses and changes only its span; a sample applies with git."""
    source = Path(module.__file__).read_text()  # type: ignore[attr-defined]
    found = mutations(f"lib/{Path(module.__file__).name}", source, seed=0, max_per_function=None)  # type: ignore[attr-defined]
    assert len(found) > 100
    assert len({m.operator for m in found}) >= 7
    for mutation in found:
        assert_local(mutation)
    original = ast.dump(ast.parse(source))
    for mutation in random.Random(0).sample(found, 25):
        assert ast.dump(ast.parse(mutation.after)) != original
        assert_applies(repo, mutation)
