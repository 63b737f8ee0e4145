"""Project images: downloads checked against the spec, a real build of inflection, suite runs in its image.

The download tests use pip (network, or pip's own cache); the container tests build into a throwaway tag and remove
it afterwards, so the cached `rock-gym/proj-inflection` image of a real pipeline run is never touched.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import rock_gym.tasks.synth.build as build_module
from rock_gym.tasks.synth.build import (
    BASELINE_FILE,
    BuildError,
    ChecksumError,
    ProjectImage,
    SuiteError,
    build_project_image,
    compare_runs,
    fetch_sdist,
    fetch_test_deps,
    load_project_image,
    run_suite,
    suite_command,
    unpack_sdist,
)
from rock_gym.tasks.synth.specs import ProjectSpec, spec_for

INFLECTION_TESTS = 455  # issue 4's survey


def make_tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


# -- pure functions ---------------------------------------------------------------------------------------------


def test_the_baseline_is_what_passed_twice() -> None:
    first = {"t::a": "PASSED", "t::b": "PASSED", "t::c": "FAILED", "t::d": "SKIPPED", "t::e": "ERROR"}
    second = {"t::a": "PASSED", "t::b": "FAILED", "t::c": "FAILED", "t::d": "SKIPPED", "t::f": "PASSED"}
    baseline, dropped = compare_runs(first, second)
    assert baseline == ["t::a"]
    assert dropped == {
        "t::b": "flaky: PASSED then FAILED",
        "t::c": "FAILED",
        "t::d": "SKIPPED",
        "t::e": "ERROR then MISSING",
        "t::f": "flaky: MISSING then PASSED",
    }


def test_the_suite_command_carries_the_specs_env_ignores_and_deselects() -> None:
    spec = spec_for("humanize").model_copy(update={"deselect": ["tests/test_time.py::test_x"]})
    command = suite_command(spec)
    assert "export PYTHONDONTWRITEBYTECODE=1 PYTHONHASHSEED=0 PYTHONPATH=src &&" in command
    assert "--ignore=tests/test_benchmarks.py" in command
    assert "--deselect=tests/test_time.py::test_x" in command
    assert "-o junit_family=xunit1" in command and command.count(" tests ") == 1
    subset = suite_command(spec, ["tests/test_number.py", "tests/test_time.py::test_y[a b]"])
    assert "tests/test_number.py 'tests/test_time.py::test_y[a b]' )" in subset


def test_pytest_args_are_shell_words() -> None:
    assert "-o addopts= --junitxml" in suite_command(spec_for("parse"))


def test_an_sdist_is_unpacked_without_its_top_directory(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "demo-1.0.tar.gz", {"demo-1.0/demo.py": b"x = 1\n", "demo-1.0/tests/t.py": b""})
    root = unpack_sdist(archive, tmp_path / "out")
    assert root.name == "demo-1.0"
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == ["demo.py", "tests", "tests/t.py"]


@pytest.mark.parametrize("member", ["../evil.py", "/etc/evil.py"])
def test_an_sdist_member_outside_its_root_is_refused(tmp_path: Path, member: str) -> None:
    archive = make_tar(tmp_path / "evil-1.0.tar.gz", {"evil-1.0/ok.py": b"", member: b"boom"})
    # tarfile's data filter refuses `..` and strips a leading `/` (the member then stays under the destination).
    with pytest.raises(BuildError, match="refusing an unsafe member|expected one top-level directory"):
        unpack_sdist(archive, tmp_path / "out")
    assert not (tmp_path / "evil.py").exists()
    assert not Path("/etc/evil.py").exists()


def test_an_sdist_with_two_top_directories_is_refused(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "two-1.0.tar.gz", {"a/x.py": b"", "b/y.py": b""})
    with pytest.raises(BuildError, match="expected one top-level directory"):
        unpack_sdist(archive, tmp_path / "out")


# -- downloads (pip) --------------------------------------------------------------------------------------------


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_an_sdist_that_does_not_match_the_spec_is_refused_and_deleted(tmp_path: Path) -> None:
    good = spec_for("inflection")
    wrong = good.model_copy(update={"sdist_sha256": "0" * 64})
    with pytest.raises(ChecksumError) as caught:
        fetch_sdist(wrong, tmp_path)
    message = str(caught.value)
    assert f"expects {'0' * 64}" in message and f"sha256 {good.sdist_sha256}" in message
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_a_cached_sdist_is_checked_again_and_replaced_when_corrupt(tmp_path: Path) -> None:
    spec = spec_for("inflection")
    path = fetch_sdist(spec, tmp_path)
    assert path.name == "inflection-0.5.1.tar.gz" and sha256(path) == spec.sdist_sha256
    assert fetch_sdist(spec, tmp_path) == path  # cached
    path.write_bytes(b"corrupted")
    assert sha256(fetch_sdist(spec, tmp_path)) == spec.sdist_sha256


def test_test_deps_are_pure_python_wheels_cached_by_pin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = spec_for("python-slugify")
    (wheel,) = fetch_test_deps(spec, tmp_path)
    assert wheel.name == "text_unidecode-1.3-py2.py3-none-any.whl"
    pip_calls: list[str] = []
    monkeypatch.setattr(build_module, "_pip_download", lambda args, what: pip_calls.append(what))
    assert fetch_test_deps(spec, tmp_path) == [wheel]
    assert pip_calls == []  # served from the cache


def test_a_compiled_test_dep_is_refused(tmp_path: Path) -> None:
    spec = spec_for("inflection").model_copy(update={"test_deps": ["PyYAML==6.0.2"]})
    with pytest.raises(BuildError, match="not a pure-Python wheel"):
        fetch_test_deps(spec, tmp_path)


# -- a real build in containers ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def docker_engine():  # type: ignore[no-untyped-def]
    from rock_gym.sandbox import SandboxConfig
    from rock_gym.sandbox.engines import Engine

    try:
        engine = Engine.connect(SandboxConfig(backend="docker"))
        engine.api.ping()
    except Exception as exc:  # noqa: BLE001
        if "docker" in os.environ.get("ROCK_GYM_REQUIRE_ENGINES", "").split(","):
            pytest.fail(f"docker engine required but unreachable: {exc}")
        pytest.skip(f"docker engine unreachable: {exc}")
    return engine


@pytest.fixture(scope="module")
def test_image(docker_engine) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A tag of this test run's own: removed afterwards, and never the pipeline's cached project image."""
    ref = f"rock-gym/proj-test-inflection:{os.getpid()}"
    yield ref
    docker_engine.remove_image(ref)


@pytest.fixture(scope="module")
def built(test_image: str) -> ProjectImage:
    return build_project_image(spec_for("inflection"), image=test_image)


@pytest.fixture
def project_sandbox(built: ProjectImage) -> Iterator[object]:
    from rock_gym.sandbox import Sandbox, SandboxConfig

    with Sandbox(SandboxConfig(image=built.image, backend="docker", workdir="/testbed", timeout=120)) as sandbox:
        yield sandbox


@pytest.mark.container
def test_the_build_records_the_projects_passing_tests(built: ProjectImage, docker_engine) -> None:  # type: ignore[no-untyped-def]
    assert docker_engine.has_image(built.image)
    assert not built.reused and built.suite_runs == 2
    assert built.dropped == {}
    assert len(built.baseline) == INFLECTION_TESTS
    assert "test_inflection.py::test_camelize[Product-product]" in built.baseline


@pytest.mark.container
def test_a_second_build_reuses_the_image_and_its_baseline(built: ProjectImage, docker_engine) -> None:  # type: ignore[no-untyped-def]
    image_id = docker_engine.api.inspect_image(built.image)["Id"]
    again = build_project_image(built.spec, image=built.image)
    assert again.reused and again.suite_runs == 0  # the stored baseline was read back, the suite never ran
    assert docker_engine.api.inspect_image(built.image)["Id"] == image_id  # nothing was built or retagged
    assert again.baseline == built.baseline and again.dropped == built.dropped
    assert load_project_image(built.spec, image=built.image).baseline == built.baseline


@pytest.mark.container
def test_the_image_holds_the_unpacked_sdist_and_its_baseline_only(project_sandbox, built: ProjectImage) -> None:  # type: ignore[no-untyped-def]
    listing = project_sandbox.run("cd /testbed && ls -a && find . -name __pycache__ -o -name .pytest_cache")
    assert "test_inflection.py" in listing.output and "setup.py" in listing.output
    assert ".git" not in listing.output.split() and "__pycache__" not in listing.output
    assert '"baseline"' in project_sandbox.read_file(BASELINE_FILE)
    # Agents' and graders' runs in the image get the build's environment.
    assert project_sandbox.run("echo $PYTHONHASHSEED $PYTHONDONTWRITEBYTECODE").output.split() == ["0", "1"]


@pytest.mark.container
def test_run_suite_on_a_subset_sees_an_injected_bug(project_sandbox, built: ProjectImage) -> None:  # type: ignore[no-untyped-def]
    spec = built.spec
    statuses = run_suite(project_sandbox, spec, ["test_inflection.py::test_camelize"])
    assert statuses and set(statuses.values()) == {"PASSED"} and set(statuses) <= set(built.baseline)
    # Same size, same second: a stale .pyc would hide this edit.
    bug = project_sandbox.run(r"sed -i 's/m.group(1).upper()/m.group(1).lower()/' inflection/__init__.py")
    assert bug.ok
    broken = run_suite(project_sandbox, spec, ["test_inflection.py::test_camelize"])
    assert set(broken) == set(statuses) and "FAILED" in broken.values()


@pytest.mark.container
def test_a_suite_that_does_not_report_or_finish_raises(project_sandbox, built: ProjectImage) -> None:  # type: ignore[no-untyped-def]
    silent = built.spec.model_copy(update={"test_command": "echo no pytest here"})
    with pytest.raises(SuiteError, match=r"(?s)left no junit report.*no pytest here"):
        run_suite(project_sandbox, silent)
    slow = built.spec.model_copy(update={"test_command": "sleep 30; python3 -m pytest"})
    with pytest.raises(SuiteError, match="did not finish within 1s"):
        run_suite(project_sandbox, slow, timeout=1)
    assert project_sandbox.run("echo still here").output.strip() == "still here"


@pytest.mark.container
def test_a_changed_spec_rebuilds_the_image(built: ProjectImage, docker_engine) -> None:  # type: ignore[no-untyped-def]
    deselected = "test_inflection.py::test_camelize_with_lower_downcases_the_first_letter"
    spec = built.spec.model_copy(update={"deselect": [deselected]})
    ref = built.image.replace("proj-test-inflection", "proj-test-inflection-changed")
    try:
        build_project_image(built.spec, image=ref)
        replaced = docker_engine.api.inspect_image(ref)["Id"]
        changed = build_project_image(spec, image=ref)
        assert not changed.reused and changed.suite_runs == 2
        assert set(built.baseline) - set(changed.baseline) == {deselected}
        assert not docker_engine.has_image(replaced)  # the stale image is not left dangling
    finally:
        docker_engine.remove_image(ref)


@pytest.mark.container
def test_a_project_where_nothing_passes_is_refused(docker_engine, test_image: str) -> None:  # type: ignore[no-untyped-def]
    spec: ProjectSpec = spec_for("inflection").model_copy(update={"pytest_args": ["-k", "no_such_test"]})
    ref = test_image.replace("proj-test-inflection", "proj-test-inflection-empty")
    with pytest.raises(BuildError, match="no test passed on the unmodified code"):
        build_project_image(spec, image=ref)
    assert not docker_engine.has_image(ref)
