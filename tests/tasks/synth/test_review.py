"""Review rules on crafted outcomes: nothing broken, everything broken, flaky reruns, gold that does not fix, dupes."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import replace

import pytest

from rock_gym.tasks.synth.mutate import Mutation, mutations
from rock_gym.tasks.synth.review import Deduper, Reason, Verdict, review, split_outcomes

BASELINE = {f"tests/test_m.py::test_{i}" for i in range(10)}
ALL_PASS = dict.fromkeys(BASELINE, "PASSED")


def outcomes(**failing: str) -> dict[str, str]:
    """All baseline tests passing except `test_<n>=STATUS` overrides (a `MISSING` status drops the test)."""
    result = dict(ALL_PASS)
    for name, status in failing.items():
        test_id = f"tests/test_m.py::{name}"
        if status == "MISSING":
            del result[test_id]
        else:
            result[test_id] = status
    return result


def test_a_mutant_that_breaks_nothing() -> None:
    verdict = review(BASELINE, ALL_PASS, ALL_PASS, ALL_PASS, max_fail_to_pass=5)
    assert verdict.reason is Reason.NO_FAILURE and verdict.rejected and not verdict.accepted
    assert verdict.fail_to_pass == [] and verdict.pass_to_pass == sorted(BASELINE)


def test_a_mutant_that_breaks_everything_exceeds_the_cap() -> None:
    broken = dict.fromkeys(BASELINE, "ERROR")
    verdict = review(BASELINE, broken, ALL_PASS, broken, max_fail_to_pass=5)
    assert verdict.reason is Reason.TOO_MANY_FAILURES
    assert verdict.fail_to_pass == sorted(BASELINE) and verdict.pass_to_pass == []
    assert "10 tests fail, the cap is 5" in verdict.detail


def test_the_cap_is_inclusive() -> None:
    mutant = outcomes(test_1="FAILED", test_2="FAILED")
    assert review(BASELINE, mutant, ALL_PASS, mutant, max_fail_to_pass=2).accepted
    assert review(BASELINE, mutant, ALL_PASS, mutant, max_fail_to_pass=1).reason is Reason.TOO_MANY_FAILURES


def test_accepted_with_sorted_fail_to_pass_and_pass_to_pass() -> None:
    mutant = outcomes(test_7="FAILED", test_3="ERROR")
    verdict = review(BASELINE, mutant, ALL_PASS, mutant, max_fail_to_pass=5)
    assert verdict.accepted and verdict.reason == "accepted"
    assert verdict.fail_to_pass == ["tests/test_m.py::test_3", "tests/test_m.py::test_7"]
    assert verdict.pass_to_pass == sorted(BASELINE - set(verdict.fail_to_pass))


def test_skipped_or_missing_tests_did_not_pass() -> None:
    mutant = outcomes(test_1="SKIPPED", test_2="MISSING")
    assert review(BASELINE, mutant, None, None, 5).fail_to_pass == [
        "tests/test_m.py::test_1",
        "tests/test_m.py::test_2",
    ]


def test_tests_outside_the_baseline_are_ignored() -> None:
    mutant = {**ALL_PASS, "tests/test_m.py::test_flaky": "FAILED"}
    assert review(BASELINE, mutant, ALL_PASS, mutant, 5).reason is Reason.NO_FAILURE


def test_a_flaky_rerun() -> None:
    mutant, rerun = outcomes(test_1="FAILED"), outcomes(test_1="FAILED", test_4="FAILED")
    verdict = review(BASELINE, mutant, ALL_PASS, rerun, max_fail_to_pass=5)
    assert verdict.reason is Reason.FLAKY
    assert "tests/test_m.py::test_4" in verdict.detail


def test_a_gold_patch_that_does_not_fix() -> None:
    mutant = outcomes(test_1="FAILED")
    verdict = review(BASELINE, mutant, outcomes(test_1="FAILED"), mutant, max_fail_to_pass=5)
    assert verdict.reason is Reason.GOLD_FAILS


def test_a_gold_patch_that_breaks_a_pass_to_pass_test() -> None:
    mutant = outcomes(test_1="FAILED")
    verdict = review(BASELINE, mutant, outcomes(test_8="FAILED"), mutant, max_fail_to_pass=5)
    assert verdict.reason is Reason.GOLD_FAILS and "test_8" in verdict.detail


def test_a_suite_that_reported_nothing() -> None:
    assert review(BASELINE, {}, None, None, 5).reason is Reason.SUITE_ERROR
    assert review(BASELINE, {"tests/test_m.py": "ERROR"}, None, None, 5).reason is Reason.SUITE_ERROR


def test_staged_review_is_pending_until_gold_and_rerun() -> None:
    mutant = outcomes(test_1="FAILED")
    for gold, rerun in ((None, None), (ALL_PASS, None), (None, mutant)):
        verdict = review(BASELINE, mutant, gold, rerun, 5)
        assert verdict.reason is Reason.PENDING and not verdict.accepted and not verdict.rejected
    assert review(BASELINE, mutant, outcomes(test_1="FAILED"), None, 5).reason is Reason.GOLD_FAILS


def test_split_outcomes() -> None:
    assert split_outcomes({"b", "a", "c"}, {"a": "PASSED", "b": "FAILED"}) == (["b", "c"], ["a"])


def test_reasons_count_as_strings() -> None:
    counts = Counter(
        review(BASELINE, m, ALL_PASS, m, 5).reason for m in (ALL_PASS, ALL_PASS, outcomes(test_1="FAILED"))
    )
    assert counts == {"no_failure": 2, "accepted": 1}
    assert {str(reason) for reason in Reason} >= {"no_failure", "too_many_failures", "flaky", "gold_fails"}


@pytest.fixture
def bugs() -> list[Mutation]:
    source = "def f(a, b):\n    if a < b:\n        return a\n    return b\n\ndef g(a):\n    return a > 1\n"
    return mutations("pkg/m.py", source, seed=0, max_per_function=None, operators=["swap_comparison"])


def accepted(*tests: str) -> Verdict:
    return Verdict(Reason.ACCEPTED, sorted(tests), [])


def test_duplicates(bugs: list[Mutation]) -> None:
    in_f, in_g = (next(m for m in bugs if m.function == name) for name in ("f", "g"))
    other_f = replace(in_f, diff=in_f.diff + " ")  # another diff in the same function
    dedupe = Deduper()
    assert dedupe.check(in_f, accepted("t::a")).accepted
    same_diff = dedupe.check(in_f, accepted("t::b"))
    assert same_diff.reason is Reason.DUPLICATE and "same diff" in same_diff.detail
    same_failures = dedupe.check(other_f, accepted("t::a"))
    assert same_failures.reason is Reason.DUPLICATE and "same failing tests in f" in same_failures.detail
    assert dedupe.check(other_f, accepted("t::a", "t::b")).accepted  # other failures
    assert dedupe.check(in_g, accepted("t::a")).accepted  # same failures, other function


def test_rejected_verdicts_pass_through_and_are_not_remembered(bugs: list[Mutation]) -> None:
    dedupe = Deduper()
    flaky = Verdict(Reason.FLAKY, ["t::a"], [])
    assert dedupe.check(bugs[0], flaky) is flaky
    assert dedupe.check(bugs[0], accepted("t::a")).accepted


def test_deduper_keeps_one_of_many_threads(bugs: list[Mutation]) -> None:
    dedupe, results = Deduper(), []
    threads = [
        threading.Thread(target=lambda: results.append(dedupe.check(bugs[0], accepted("t::a")))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Counter(v.reason for v in results) == {"accepted": 1, "duplicate": 7}
