"""Deterministic, seeded bug injection: small AST-located edits to a module's source text, SWE-smith style.

An operator looks at one node inside a function body and yields span replacements (`Edit`s) located with the node's
positions. A `Mutation` applies one edit to the text, so everything outside the span stays byte-identical, as in a
real bug, and carries the bug patch (`diff`) and its reverse (`gold_patch`) in `git diff` format.

>>> found = mutations("m.py", "def lower(a, b):\\n    return a < b\\n", seed=0)
>>> sorted(m.after.splitlines()[1] for m in found if m.operator == "swap_comparison")
['    return a <= b']
"""

from __future__ import annotations

import ast
import bisect
import difflib
import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

#: A diff may change at most this many lines on either side; larger edits are not "a line or three".
MAX_CHANGED_LINES = 3

_FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef
_Located = ast.expr | ast.stmt
_BOM = "\ufeff"
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")  # how the parser splits lines (not on form feeds)
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_COMMENT = re.compile(r"#[^\r\n]*")
_NOT = re.compile(r"not\b\s*")
_HUNK = re.compile(r"-(\d+)(,\d+)? \+(\d+)(,\d+)?")
#: Fields never walked: type annotations and decorators are not the function's behaviour.
_SKIP_FIELDS = frozenset({"annotation", "returns", "type_comment", "decorator_list"})
_LOG_METHODS = frozenset({"debug", "info", "warning", "warn", "error", "exception", "critical", "log"})
_PRIMARY = (ast.Name, ast.Attribute, ast.Call, ast.Subscript, ast.Constant)


def _end_line(node: _Located) -> int:
    return node.end_lineno or node.lineno  # always set on a parsed tree; None only on hand-built nodes


@dataclass(frozen=True)
class Edit:
    """Replace `text[start:end]` (character offsets) with `replacement`; `line` is the 1-based line of `start`."""

    start: int
    end: int
    replacement: str
    line: int


@dataclass(frozen=True)
class Mutation:
    """One injected bug in one file.

    Attributes:
        path: the file's path relative to the repository root, with forward slashes.
        function: qualified name of the function that holds the bug, e.g. `Parser.parse` or `f.<locals>.g`.
        operator: the operator's name, a key of `OPERATORS`.
        line: 1-based line of the edit in the original file.
        before: the file's original text.
        after: the mutated text.
        diff: the bug patch (`before` to `after`), accepted by `git apply` in the repository root.
        gold_patch: the reverse patch, which fixes the bug.
    """

    path: str
    function: str
    operator: str
    line: int
    before: str
    after: str
    diff: str
    gold_patch: str

    @property
    def changed_lines(self) -> list[str]:
        """The text of every line the diff removes or adds, without the `-`/`+` prefix."""
        return [
            line[1:]
            for line in self.diff.splitlines()
            if line[:1] in "+-" and not line.startswith(("--- a/", "+++ b/"))
        ]


class Source:
    """A module's text with the parser's positions (1-based lines, UTF-8 byte columns) mapped to str offsets."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.bom = int(text.startswith(_BOM))  # the parser never sees it (see `parse`), so columns skip it
        self.lines = _LINE.findall(text)
        self.starts: list[int] = []
        offset = 0
        for line in self.lines:
            self.starts.append(offset)
            offset += len(line)

    def offset(self, lineno: int, col: int) -> int:
        """The str offset of a parser position; `col` counts UTF-8 bytes."""
        if lineno > len(self.lines):
            return len(self.text)
        line, start = self.lines[lineno - 1], self.starts[lineno - 1]
        if lineno == 1 and self.bom:
            line, start = line[1:], 1
        if line.isascii():
            return start + col
        return start + len(line.encode()[:col].decode())

    def span(self, node: _Located) -> tuple[int, int]:
        """The str offsets of a node's source (parentheses around it excluded, as the parser records it)."""
        start = self.offset(node.lineno, node.col_offset)
        return start, self.offset(_end_line(node), node.end_col_offset or 0)

    def segment(self, node: _Located) -> str:
        """A node's source text."""
        start, end = self.span(node)
        return self.text[start:end]

    def line_of(self, offset: int) -> int:
        """The 1-based line holding a str offset."""
        return max(bisect.bisect_right(self.starts, offset), 1)

    def edit(self, start: int, end: int, replacement: str) -> Edit:
        """An `Edit` of `text[start:end]`, its line filled in."""
        return Edit(start, end, replacement, self.line_of(start))

    def token_between(self, left: _Located, right: _Located, pattern: str, replacement: str) -> Edit | None:
        """Replace the operator token matching `pattern` in the text between two operands (comments skipped)."""
        gap_start, gap_end = self.span(left)[1], self.span(right)[0]
        gap = _COMMENT.sub(lambda m: " " * len(m.group()), self.text[gap_start:gap_end])
        match = re.search(pattern, gap)
        if match is None:
            return None
        return self.edit(gap_start + match.start(), gap_start + match.end(), replacement)

    def statement_lines(self, stmt: ast.stmt) -> tuple[int, int] | None:
        """The offsets of the whole lines a statement fills, or None when it shares a line with other code."""
        start, end = self.span(stmt)
        first = self.starts[stmt.lineno - 1]
        last_line = self.lines[_end_line(stmt) - 1]
        line_end = self.starts[_end_line(stmt) - 1] + len(last_line)
        before, after = self.text[first:start], self.text[end:line_end]
        if before.strip() or not re.fullmatch(r"[ \t]*(#[^\r\n]*)?(\r\n|\r|\n)?", after):
            return None
        return first, line_end


Operator = Callable[[ast.AST, Source], Iterator[Edit]]

_CMP_SWAP: dict[type[ast.cmpop], tuple[str, str]] = {
    ast.Lt: ("<", "<="),
    ast.LtE: ("<=", "<"),
    ast.Gt: (">", ">="),
    ast.GtE: (">=", ">"),
    ast.Eq: ("==", "!="),
    ast.NotEq: ("!=", "=="),
    ast.Is: (r"\bis\b", "is not"),
    ast.IsNot: (r"\bis\s+not\b", "is"),
    ast.In: (r"\bin\b", "not in"),
    ast.NotIn: (r"\bnot\s+in\b", "in"),
}


def swap_comparison(node: ast.AST, source: Source) -> Iterator[Edit]:
    """`<`↔`<=`, `>`↔`>=`, `==`↔`!=`, `is`↔`is not`, `in`↔`not in`, one operator of a comparison chain at a time."""
    if not isinstance(node, ast.Compare):
        return
    operands = [node.left, *node.comparators]
    for index, op in enumerate(node.ops):
        pattern, replacement = _CMP_SWAP[type(op)]
        edit = source.token_between(operands[index], operands[index + 1], pattern, replacement)
        if edit is not None:
            yield edit


def swap_boolean(node: ast.AST, source: Source) -> Iterator[Edit]:
    """`and`↔`or`, one operator of a chain at a time."""
    if not isinstance(node, ast.BoolOp):
        return
    pattern, replacement = (r"\band\b", "or") if isinstance(node.op, ast.And) else (r"\bor\b", "and")
    for left, right in zip(node.values, node.values[1:], strict=False):
        edit = source.token_between(left, right, pattern, replacement)
        if edit is not None:
            yield edit


def off_by_one(node: ast.AST, source: Source) -> Iterator[Edit]:
    """A decimal integer constant n becomes n+1 or n-1 (never negative: the literal's sign is a separate node)."""
    if not (isinstance(node, ast.Constant) and type(node.value) is int):
        return
    yield from _shifted(node, source)


def off_by_one_slice(node: ast.AST, source: Source) -> Iterator[Edit]:
    """A slice bound that is a name, attribute, call or subscript gets `+ 1` or `- 1` (constants: `off_by_one`)."""
    if not isinstance(node, ast.Slice):
        return
    for bound in (node.lower, node.upper):
        if isinstance(bound, (ast.Name, ast.Attribute, ast.Call, ast.Subscript)):
            end = source.span(bound)[1]
            yield source.edit(end, end, " + 1")
            yield source.edit(end, end, " - 1")


def negate_condition(node: ast.AST, source: Source) -> Iterator[Edit]:
    """The test of an `if`, `elif`, `while` or conditional expression: `x` → `not x`, `not x` → `x`."""
    if not isinstance(node, (ast.If, ast.While, ast.IfExp)):
        return
    test = node.test
    start, end = source.span(test)
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        match = _NOT.match(source.text, start)
        if match is not None:
            yield source.edit(start, match.end(), "")
    elif isinstance(test, _PRIMARY):
        yield source.edit(start, start, "not ")
    else:
        yield source.edit(start, end, f"not ({source.text[start:end]})")


def remove_statement(node: ast.AST, source: Source) -> Iterator[Edit]:
    """Drop an assignment or a call statement that fills its own lines; a block's only statement becomes `pass`."""
    for block in _blocks(node):
        for stmt in block:
            if not _removable(stmt):
                continue
            lines = source.statement_lines(stmt)
            if lines is None:
                continue
            if len(block) > 1:
                yield source.edit(*lines, "")
            elif not isinstance(node, _FunctionNode):
                yield source.edit(*lines, _pass_line(source, stmt))


def swap_arguments(node: ast.AST, source: Source) -> Iterator[Edit]:
    """Two adjacent positional arguments of a call trade places (comments and line breaks between them stay)."""
    if not isinstance(node, ast.Call):
        return
    for left, right in zip(node.args, node.args[1:], strict=False):
        if isinstance(left, ast.Starred) or isinstance(right, ast.Starred):
            continue
        (start, left_end), (right_start, end) = source.span(left), source.span(right)
        left_text, right_text = source.text[start:left_end], source.text[right_start:end]
        if left_text != right_text:
            yield source.edit(start, end, right_text + source.text[left_end:right_start] + left_text)


def wrong_return(node: ast.AST, source: Source) -> Iterator[Edit]:
    """`return x` → `return None`; `return True` ↔ `return False`."""
    if not isinstance(node, ast.Return) or node.value is None:
        return
    value = node.value
    if isinstance(value, ast.Constant) and isinstance(value.value, bool):
        yield source.edit(*source.span(value), str(not value.value))
    elif not (isinstance(value, ast.Constant) and value.value is None):
        yield source.edit(*source.span(value), "None")


def change_default(node: ast.AST, source: Source) -> Iterator[Edit]:
    """A parameter's constant default changes: `True`↔`False`, a decimal integer ±1."""
    if not isinstance(node, _FunctionNode):
        return
    for default in [*node.args.defaults, *node.args.kw_defaults]:
        if not isinstance(default, ast.Constant):
            continue
        if isinstance(default.value, bool):
            yield source.edit(*source.span(default), str(not default.value))
        elif type(default.value) is int:
            yield from _shifted(default, source)


#: Every operator by name, in the order candidates are enumerated.
OPERATORS: dict[str, Operator] = {
    "swap_comparison": swap_comparison,
    "swap_boolean": swap_boolean,
    "off_by_one": off_by_one,
    "off_by_one_slice": off_by_one_slice,
    "negate_condition": negate_condition,
    "remove_statement": remove_statement,
    "swap_arguments": swap_arguments,
    "wrong_return": wrong_return,
    "change_default": change_default,
}


def _shifted(node: ast.Constant, source: Source) -> Iterator[Edit]:
    start, end = source.span(node)
    if not _DECIMAL.fullmatch(source.text[start:end]):
        return  # hex, octal, 1_000 or 1e3: rewriting them in decimal would change more than the number
    value = int(source.text[start:end])
    yield source.edit(start, end, str(value + 1))
    if value > 0:
        yield source.edit(start, end, str(value - 1))


def _blocks(node: ast.AST) -> Iterator[list[ast.stmt]]:
    for field in ("body", "orelse", "finalbody"):
        block = getattr(node, field, None)
        if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
            yield _without_docstring(block) if isinstance(node, _FunctionNode) and field == "body" else block


def _removable(stmt: ast.stmt) -> bool:
    if isinstance(stmt, (ast.Assign, ast.AugAssign)):
        return True
    if isinstance(stmt, ast.AnnAssign):
        return stmt.value is not None
    if isinstance(stmt, ast.Expr):
        call = stmt.value.value if isinstance(stmt.value, ast.Await) else stmt.value
        return isinstance(call, ast.Call) and not _is_logging(call)
    return False


def _pass_line(source: Source, stmt: ast.stmt) -> str:
    first = source.lines[stmt.lineno - 1]
    last = source.lines[_end_line(stmt) - 1]
    indent = first[: len(first) - len(first.lstrip(" \t"))]
    return indent + "pass" + last[len(last.rstrip("\r\n")) :]


def _is_logging(node: ast.AST) -> bool:
    """`print(...)`, `log.info(...)`, `self.logger.debug(...)`, `warnings.warn(...)`."""
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    if isinstance(func, ast.Name):
        return func.id == "print"
    if not (isinstance(func, ast.Attribute) and func.attr in _LOG_METHODS):
        return False
    base = func.value
    name = base.id if isinstance(base, ast.Name) else base.attr if isinstance(base, ast.Attribute) else ""
    return "log" in name.lower() or name == "warnings"


def _without_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    first = body[0]
    is_doc = (
        isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)
    )
    return body[1:] if is_doc else body


def _opaque(node: ast.AST) -> bool:
    """Subtrees no operator enters: nested scopes (their own functions), f-strings (3.11 positions), logging."""
    return isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.JoinedStr)) or _is_logging(node)


def _walk(node: ast.AST) -> Iterator[ast.AST]:
    yield node
    for field, value in ast.iter_fields(node):
        if field in _SKIP_FIELDS:
            continue
        for child in value if isinstance(value, list) else [value]:
            if isinstance(child, ast.AST) and not _opaque(child):
                yield from _walk(child)


def _scope_nodes(func: _FunctionNode) -> Iterator[ast.AST]:
    """The function node itself (for its defaults and body), then every node of its body in source order."""
    yield func
    for stmt in _without_docstring(func.body):
        if not _opaque(stmt):
            yield from _walk(stmt)


def _functions(node: ast.AST, prefix: str = "") -> Iterator[tuple[str, _FunctionNode]]:
    """Every function below `node` with its `__qualname__`, in source order."""
    for child in ast.iter_child_nodes(node):
        yield from _named(child, prefix)


def _named(node: ast.AST, prefix: str) -> Iterator[tuple[str, _FunctionNode]]:
    """`node` itself when it is a function, then the functions below it."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        name = prefix + node.name
        yield name, node
        yield from _functions(node, name + ".<locals>.")
    elif isinstance(node, ast.ClassDef):
        yield from _functions(node, prefix + node.name + ".")
    else:
        yield from _functions(node, prefix)


@dataclass(frozen=True)
class _Candidate:
    function: str
    operator: str
    edit: Edit
    #: First (decorators included) and last line of the function: enough to check that the mutant parses.
    scope: tuple[int, int]


def _candidates(
    tree: ast.Module, source: Source, functions: set[str] | None, operators: dict[str, Operator]
) -> dict[str, list[_Candidate]]:
    """Candidate edits per function, in source order, operators in `operators` order; duplicates dropped."""
    found: dict[str, list[_Candidate]] = defaultdict(list)
    seen: set[Edit] = set()
    for qualname, func in _functions(tree):
        if func.name == "__repr__" or (functions is not None and qualname not in functions):
            continue
        scope = (min([func.lineno, *(d.lineno for d in func.decorator_list)]), _end_line(func))
        for node in _scope_nodes(func):
            for name, operator in operators.items():
                for edit in operator(node, source):
                    if edit not in seen:
                        seen.add(edit)
                        found[qualname].append(_Candidate(qualname, name, edit, scope))
    return found


def _interleaved(candidates: list[_Candidate], rng: random.Random) -> list[_Candidate]:
    """A seeded shuffle that then takes one candidate of each operator in turn, so a sample mixes operators."""
    shuffled = list(candidates)
    rng.shuffle(shuffled)
    rank: Counter[str] = Counter()
    keyed = []
    for candidate in shuffled:
        keyed.append((rank[candidate.operator], candidate))
        rank[candidate.operator] += 1
    return [candidate for _, candidate in sorted(keyed, key=lambda pair: pair[0])]


def _split_lines(text: str) -> list[str]:
    """Lines as git sees them: split after each `\\n` only."""
    return re.findall(r"[^\n]*\n|[^\n]+\Z", text)


def unified_diff(path: str, before: str, after: str) -> str:
    """A `git diff` style patch from `before` to `after` of `path`, for `git apply` in the repository root.

    >>> print(unified_diff("m.py", "x = 1\\n", "x = 2\\n"), end="")
    diff --git a/m.py b/m.py
    --- a/m.py
    +++ b/m.py
    @@ -1 +1 @@
    -x = 1
    +x = 2
    """
    return _diff(path, before, after, 0, len(before), len(after))


def _diff(path: str, before: str, after: str, start: int, end_before: int, end_after: int) -> str:
    """`unified_diff` of the windows `before[start:end_before]` and `after[start:end_after]`.

    The windows must start at a line start, hold every change and 3 lines of context around it (or reach the file's
    ends); hunk headers are shifted to whole-file line numbers.
    """
    old, new = _split_lines(before[start:end_before]), _split_lines(after[start:end_after])
    shift = before.count("\n", 0, start)
    out = [f"diff --git a/{path} b/{path}\n", f"--- a/{path}\n", f"+++ b/{path}\n"]
    for line in list(difflib.unified_diff(old, new, n=3))[2:]:
        if line.startswith("@@"):
            line = _HUNK.sub(lambda m: f"-{int(m[1]) + shift}{m[2] or ''} +{int(m[3]) + shift}{m[4] or ''}", line, 1)
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def _window(text: str, start: int, end: int, context: int = 3) -> tuple[int, int]:
    """Offsets from the start of the line `context` lines above `start` to the end of the line `context` below `end`."""
    low = text.rfind("\n", 0, start) + 1
    for _ in range(context):
        if low == 0:
            break
        low = text.rfind("\n", 0, low - 1) + 1
    high = end
    for _ in range(context + 1):
        newline = text.find("\n", high)
        if newline == -1:
            return low, len(text)
        high = newline + 1
    return low, high


def _changed_counts(diff: str) -> tuple[int, int]:
    lines = diff.splitlines()[3:]  # past the diff --git, ---, +++ headers
    return sum(line.startswith("-") for line in lines), sum(line.startswith("+") for line in lines)


def _mutation(path: str, source: Source, candidate: _Candidate) -> Mutation | None:
    """Apply a candidate; None unless the result differs, parses, and changes at most `MAX_CHANGED_LINES` lines."""
    edit, before = candidate.edit, source.text
    after = before[: edit.start] + edit.replacement + before[edit.end :]
    if after == before:
        return None
    growth = len(after) - len(before)
    if not _parses(source, candidate.scope, after, growth):
        return None
    low, high = _window(before, edit.start, edit.end)
    diff = _diff(path, before, after, low, high, high + growth)
    if max(_changed_counts(diff)) > MAX_CHANGED_LINES:
        return None
    gold = _diff(path, after, before, low, high + growth, high)
    return Mutation(path, candidate.function, candidate.operator, edit.line, before, after, diff, gold)


def _parses(source: Source, scope: tuple[int, int], after: str, growth: int) -> bool:
    """Whether the mutated function parses: the rest of the module is unchanged, so that is enough (and fast)."""
    first, last = scope
    end = source.starts[last] if last < len(source.starts) else len(source.text)
    segment = after[source.starts[first - 1] : end + growth].removeprefix(_BOM)
    if segment[:1] in (" ", "\t"):
        segment = "if 1:\n" + segment  # a method or nested function: its block, indented as it is
    try:
        ast.parse(segment)
    except (SyntaxError, ValueError):
        return False
    return True


def parse(source_text: str) -> ast.Module:
    """`ast.parse` that also takes text read with a UTF-8 byte-order mark (the parser refuses U+FEFF in a str)."""
    return ast.parse(source_text.removeprefix(_BOM))


def mutations(
    path: str,
    source_text: str,
    seed: int | str,
    functions: Iterable[str] | None = None,
    max_per_function: int | None = 3,
    operators: Iterable[str] | None = None,
) -> list[Mutation]:
    """Seeded bug candidates for one file: up to `max_per_function` valid mutations per function, shuffled.

    Candidates are enumerated in a fixed order (functions in source order, then nodes, then operators); the seed
    (mixed with `path`) picks among them, so the same arguments always give the same list. Each function's picks
    mix operators. Docstrings, annotations, decorators, f-strings, `__repr__` and logging or print calls are
    never mutated. A file that does not parse gives no mutations.

    Args:
        path: the file's path relative to the repository root (used in the patches).
        source_text: the file's text.
        seed: the sampling seed.
        functions: restrict to these qualified names (e.g. the functions the test suite covers).
        max_per_function: the most mutations kept per function; None keeps every valid one.
        operators: restrict to these operator names (keys of `OPERATORS`).

    Raises:
        KeyError: an unknown operator name.
    """
    try:
        tree = parse(source_text)
    except (SyntaxError, ValueError):
        return []
    chosen_ops = OPERATORS if operators is None else {name: OPERATORS[name] for name in operators}
    source = Source(source_text)
    wanted = None if functions is None else set(functions)
    chosen: list[Mutation] = []
    for qualname, candidates in _candidates(tree, source, wanted, chosen_ops).items():
        kept = 0
        # a generator per function: restricting `functions` does not change the picks in the others
        for candidate in _interleaved(candidates, random.Random(f"{seed}:{path}:{qualname}")):
            if max_per_function is not None and kept >= max_per_function:
                break
            mutation = _mutation(path, source, candidate)
            if mutation is not None:
                chosen.append(mutation)
                kept += 1
    random.Random(f"{seed}:{path}").shuffle(chosen)
    return chosen


def covered_functions(source_text: str, covered_lines: set[int]) -> set[str]:
    """Qualified names of the functions with at least one covered line in their own body.

    A nested function's body counts for the nested function only; its `def` line counts for the enclosing one.

    >>> sorted(covered_functions("class A:\\n    def f(self):\\n        return 1\\n", {3}))
    ['A.f']
    """
    tree = parse(source_text)
    return {name for name, func in _functions(tree) if _own_lines(func) & covered_lines}


def _own_lines(func: _FunctionNode) -> set[int]:
    lines: set[int] = set()
    for stmt in func.body:
        lines.update(range(stmt.lineno, _end_line(stmt) + 1))
    for node in ast.walk(func):
        if node is not func and isinstance(node, _FunctionNode):
            for stmt in node.body:
                lines.difference_update(range(stmt.lineno, _end_line(stmt) + 1))
    return lines
