from rock_gym.tasks.builtin import unified_diff
from rock_gym.tasks.verify import parse_pytest_summary

LOG = """\
============================= test session starts ==============================
tests/test_core.py ..F                                                   [100%]
=========================== short test summary info ============================
PASSED tests/test_core.py::test_clamp_inside
PASSED tests/test_core.py::TestX::test_y[a-b]
FAILED tests/test_core.py::test_clamp_above[11] - assert 0 == 10
ERROR tests/test_other.py::test_setup
========================= 1 failed, 2 passed in 0.02s ==========================
"""


def test_parse_pytest_summary():
    assert parse_pytest_summary(LOG) == {
        "tests/test_core.py::test_clamp_inside": "PASSED",
        "tests/test_core.py::TestX::test_y[a-b]": "PASSED",
        "tests/test_core.py::test_clamp_above[11]": "FAILED",
        "tests/test_other.py::test_setup": "ERROR",
    }


def test_unified_diff_has_git_header_and_hunk():
    diff = unified_diff("pkg/a.py", "x = 1\ny = 2\n", "x = 1\ny = 3\n")
    assert diff.splitlines()[:3] == ["diff --git a/pkg/a.py b/pkg/a.py", "--- a/pkg/a.py", "+++ b/pkg/a.py"]
    assert "-y = 2\n+y = 3\n" in diff
