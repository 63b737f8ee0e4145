"""Review rules for bug candidates, as pure functions over test outcomes (pytest node id -> status).

Statuses are those of `rock_gym.tasks.verify.parse_junit`: PASSED, FAILED, ERROR, SKIPPED. A test missing from an
outcome did not pass. Given the baseline (the tests that pass on the unmodified code, flaky ones already dropped):

- FAIL_TO_PASS: baseline tests that do not pass on the mutant; PASS_TO_PASS: baseline tests that still pass.
- Keep a candidate when 1 ≤ |FAIL_TO_PASS| ≤ the cap, a rerun of the mutant fails the same tests, and with the gold
  patch applied every FAIL_TO_PASS and PASS_TO_PASS test passes.

Review in stages so that cheap rejections cost one suite run: `review(baseline, mutant, None, None, cap)` answers
`pending` for a candidate worth the gold and rerun runs, then call it again with them.

>>> review({"t::a", "t::b"}, {"t::a": "FAILED", "t::b": "PASSED"}, None, None, max_fail_to_pass=5).reason
<Reason.PENDING: 'pending'>
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from rock_gym.tasks.synth.mutate import Mutation

PASSED = "PASSED"


class Reason(StrEnum):
    """Why a candidate was kept or rejected; a plain string, so `collections.Counter` tables print well."""

    ACCEPTED = "accepted"
    #: Passed the checks it was given; the gold and rerun outcomes are still to come.
    PENDING = "pending"
    #: The mutant's run reported none of the baseline tests (crash, timeout, no report).
    SUITE_ERROR = "suite_error"
    #: Every baseline test still passes: the bug breaks nothing the suite checks.
    NO_FAILURE = "no_failure"
    #: More baseline tests fail than the cap allows (e.g. the package no longer imports).
    TOO_MANY_FAILURES = "too_many_failures"
    #: A rerun of the mutant failed a different set of tests.
    FLAKY = "flaky"
    #: With the gold patch applied some FAIL_TO_PASS or PASS_TO_PASS test does not pass.
    GOLD_FAILS = "gold_fails"
    #: Same diff, or same failing tests in the same function, as a candidate accepted before.
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class Verdict:
    """The outcome of reviewing one candidate.

    Attributes:
        reason: `Reason.ACCEPTED`, `Reason.PENDING`, or why it was rejected.
        fail_to_pass: baseline tests that do not pass on the mutant, sorted.
        pass_to_pass: baseline tests that pass on the mutant, sorted.
        detail: a short human-readable note on a rejection (e.g. the tests the gold patch leaves failing).
    """

    reason: Reason
    fail_to_pass: list[str] = field(default_factory=list)
    pass_to_pass: list[str] = field(default_factory=list)
    detail: str = ""

    @property
    def accepted(self) -> bool:
        """Every check passed."""
        return self.reason is Reason.ACCEPTED

    @property
    def rejected(self) -> bool:
        """Some check failed (neither accepted nor pending)."""
        return self.reason not in (Reason.ACCEPTED, Reason.PENDING)


def split_outcomes(baseline: set[str], outcomes: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """(FAIL_TO_PASS, PASS_TO_PASS): the baseline tests that do not pass / pass in `outcomes`, each sorted.

    >>> split_outcomes({"a", "b", "c"}, {"a": "PASSED", "b": "ERROR"})
    (['b', 'c'], ['a'])
    """
    fail = sorted(test for test in baseline if outcomes.get(test) != PASSED)
    return fail, sorted(test for test in baseline if outcomes.get(test) == PASSED)


def review(
    baseline: set[str],
    mutant: Mapping[str, str],
    gold: Mapping[str, str] | None,
    rerun: Mapping[str, str] | None,
    max_fail_to_pass: int,
) -> Verdict:
    """Apply the review rules to one candidate's outcomes.

    Args:
        baseline: tests that pass on the unmodified code.
        mutant: outcomes of the suite on the mutated code.
        gold: outcomes with the gold patch applied to the mutant; None when not run yet.
        rerun: outcomes of a second run on the mutated code; None when not run yet.
        max_fail_to_pass: the most FAIL_TO_PASS tests a kept candidate may have.

    Returns:
        The first failing check in the order suite_error, no_failure, too_many_failures, flaky, gold_fails;
        else `pending` when `gold` or `rerun` is missing, else `accepted`.
    """
    fail, still = split_outcomes(baseline, mutant)
    reason, detail = _first_failure(baseline, mutant, fail, gold, rerun, max_fail_to_pass)
    return Verdict(reason, fail, still, detail)


def _first_failure(
    baseline: set[str],
    mutant: Mapping[str, str],
    fail: list[str],
    gold: Mapping[str, str] | None,
    rerun: Mapping[str, str] | None,
    cap: int,
) -> tuple[Reason, str]:
    if not baseline.intersection(mutant):
        return Reason.SUITE_ERROR, f"none of the {len(baseline)} baseline tests were reported"
    if not fail:
        return Reason.NO_FAILURE, ""
    if len(fail) > cap:
        return Reason.TOO_MANY_FAILURES, f"{len(fail)} tests fail, the cap is {cap}"
    if rerun is not None:
        again = split_outcomes(baseline, rerun)[0]
        if again != fail:
            changed = sorted(set(again).symmetric_difference(fail))
            return Reason.FLAKY, f"the rerun differs on {_names(changed)}"
    if gold is not None:
        unfixed = split_outcomes(baseline, gold)[0]
        if unfixed:
            return Reason.GOLD_FAILS, f"with the gold patch these do not pass: {_names(unfixed)}"
    if gold is None or rerun is None:
        return Reason.PENDING, ""
    return Reason.ACCEPTED, ""


def _names(tests: list[str], limit: int = 3) -> str:
    more = f" and {len(tests) - limit} more" if len(tests) > limit else ""
    return ", ".join(tests[:limit]) + more


class Deduper:
    """Remembers accepted candidates and turns later duplicates into `Reason.DUPLICATE` rejections.

    A duplicate has the same diff as an accepted candidate, or the same FAIL_TO_PASS set in the same function of
    the same file. Safe to call from several threads.

    >>> from rock_gym.tasks.synth.mutate import mutations
    >>> first = mutations("m.py", "def f(a, b):\\n    return a < b\\n", seed=0, operators=["swap_comparison"])[0]
    >>> dedupe, ok = Deduper(), Verdict(Reason.ACCEPTED, ["t::a"], [])
    >>> dedupe.check(first, ok).reason, dedupe.check(first, ok).reason
    (<Reason.ACCEPTED: 'accepted'>, <Reason.DUPLICATE: 'duplicate'>)
    """

    def __init__(self) -> None:
        self._diffs: set[str] = set()
        self._failures: set[tuple[str, str, frozenset[str]]] = set()
        self._lock = threading.Lock()

    def check(self, mutation: Mutation, verdict: Verdict) -> Verdict:
        """The verdict, or a `duplicate` rejection when an accepted candidate already covers this one.

        Only accepted verdicts are checked and remembered; others come back unchanged.
        """
        if not verdict.accepted:
            return verdict
        failures = (mutation.path, mutation.function, frozenset(verdict.fail_to_pass))
        with self._lock:
            if mutation.diff in self._diffs:
                return replace(verdict, reason=Reason.DUPLICATE, detail="same diff as an accepted candidate")
            if failures in self._failures:
                detail = f"same failing tests in {mutation.function} as an accepted candidate"
                return replace(verdict, reason=Reason.DUPLICATE, detail=detail)
            self._diffs.add(mutation.diff)
            self._failures.add(failures)
        return verdict
