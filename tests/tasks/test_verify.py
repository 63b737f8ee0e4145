import subprocess
import sys

import pytest

from rock_gym.tasks.builtin import unified_diff
from rock_gym.tasks.verify import parse_junit

SAMPLE = """\
import pytest

def test_passes():
    assert True

@pytest.mark.parametrize("x", [1, 11])
def test_param(x):
    assert x < 10

class TestGroup:
    def test_in_class(self):
        assert "a" in "abc"

@pytest.fixture
def broken():
    raise RuntimeError("setup fails")

def test_setup_error(broken):
    pass

@pytest.mark.skip(reason="not today")
def test_skipped():
    pass
"""


def junit_report(project) -> str:
    """Run real pytest over `project`/tests and return its junit XML report (xunit1, as verification asks)."""
    report = project / "junit.xml"
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests", f"--junitxml={report}"]
    subprocess.run([*command, "-o", "junit_family=xunit1"], cwd=project, capture_output=True, check=False)
    return report.read_text()


def test_parse_junit_reads_a_real_pytest_report(tmp_path):
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_sample.py").write_text(SAMPLE)
    assert parse_junit(junit_report(tmp_path)) == {
        "tests/test_sample.py::test_passes": "PASSED",
        "tests/test_sample.py::test_param[1]": "PASSED",
        "tests/test_sample.py::test_param[11]": "FAILED",
        "tests/test_sample.py::TestGroup::test_in_class": "PASSED",
        "tests/test_sample.py::test_setup_error": "ERROR",
        "tests/test_sample.py::test_skipped": "SKIPPED",
    }


def test_parse_junit_rejects_garbage():
    with pytest.raises(Exception, match="syntax|token"):
        parse_junit("not xml")


def test_unified_diff_has_git_header_and_hunk():
    diff = unified_diff("pkg/a.py", "x = 1\ny = 2\n", "x = 1\ny = 3\n")
    assert diff.splitlines()[:3] == ["diff --git a/pkg/a.py b/pkg/a.py", "--- a/pkg/a.py", "+++ b/pkg/a.py"]
    assert "-y = 2\n+y = 3\n" in diff


def test_parse_junit_keeps_inherited_tests_apart(tmp_path):
    # The same test method inherited by classes in two files: junit's `file` names the mixin's file for both.
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "__init__.py").write_text("")
    (tmp_path / "tests" / "mixin.py").write_text("class Shared:\n    def test_shared(self):\n        assert self.ok\n")
    (tmp_path / "tests" / "test_a.py").write_text(
        "from tests.mixin import Shared\n\nclass TestA(Shared):\n    ok = True\n"
    )
    (tmp_path / "tests" / "test_b.py").write_text(
        "from tests.mixin import Shared\n\nclass TestB(Shared):\n    ok = False\n"
    )
    assert parse_junit(junit_report(tmp_path)) == {
        "tests/test_a.py::TestA::test_shared": "PASSED",
        "tests/test_b.py::TestB::test_shared": "FAILED",
    }
