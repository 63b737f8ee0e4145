"""Project images: a project's verified sdist unpacked at /testbed, its test deps installed, and its passing baseline.

The sdist and the test-dep wheels are downloaded on the host with pip (containers have no network) and cached under
`$XDG_CACHE_HOME/rock_gym` (default `~/.cache/rock_gym`); the sdist must match the spec's sha256, on every use.
The suite then runs twice in a sandbox from the base image; the tests that pass both times are the baseline, which is
stored in the image (`/rock_gym/baseline.json`) so that a later build reuses the image without running anything.
/testbed holds no git repository: the task setup makes the base commit.

Examples:
    >>> from rock_gym.tasks.synth import build_project_image, spec_for
    >>> project = build_project_image(spec_for("inflection"))  # doctest: +SKIP
    >>> project.image, len(project.baseline)  # doctest: +SKIP
    ('rock-gym/proj-inflection:0.5.1', 455)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rock_gym.sandbox import DEFAULT_IMAGE, SandboxConfig
from rock_gym.tasks.synth.specs import ProjectSpec, normalize_name, split_requirement
from rock_gym.tasks.verify import parse_junit

if TYPE_CHECKING:
    from rock_gym.sandbox.engines import Engine
    from rock_gym.sandbox.sandbox import Sandbox

log = logging.getLogger(__name__)

WORKDIR = "/testbed"
#: Where test-dep wheels are unpacked: Debian bookworm's python3 reads it and leaves it empty.
SITE_PACKAGES = "/usr/local/lib/python3.11/dist-packages"
#: The Python of the base image, for choosing wheels.
PYTHON_VERSION = "3.11"
BASELINE_FILE = "/rock_gym/baseline.json"
SUITE_REPORT = "/tmp/rock_gym_suite.xml"
SUITE_LOG = "/tmp/rock_gym_suite.log"
#: Environment of every suite run, also kept in the image: no bytecode (a mutated module is never shadowed by a stale
#: .pyc of the same size and mtime) and one hash seed (parametrized ids built from sets keep their order, so a test
#: has the same node id in every run).
RUN_ENV = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}
#: Bump when the baseline a build records changes meaning (node ids, statuses): older images are then rebuilt.
RECORD_VERSION = 2
PIP_TIMEOUT = 600.0


class BuildError(RuntimeError):
    """A project image could not be built; the message says why and what to change."""


class ChecksumError(BuildError):
    """A downloaded sdist does not match the spec's sha256 (the file is deleted)."""


class SuiteError(BuildError):
    """A suite run timed out or left no junit report (pytest did not get to run the tests)."""


@dataclass
class ProjectImage:
    """A project image and the tests that pass in it.

    Attributes:
        image: the image reference, e.g. `rock-gym/proj-inflection:0.5.1`.
        spec: the spec it was built from.
        baseline: pytest node ids that passed in both runs of the suite, sorted.
        dropped: node ids left out of the baseline -> why (FAILED, ERROR, SKIPPED, or `flaky: PASSED then FAILED`).
        seconds: how long this call took (a reused image takes well under a second).
        reused: the image existed with a baseline from the same spec, so nothing was built.
        suite_runs: how many times this call ran the project's suite (2 for a build, 0 when reused or loaded).
    """

    image: str
    spec: ProjectSpec
    baseline: list[str]
    dropped: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    reused: bool = False
    suite_runs: int = 0

    def record(self) -> dict[str, Any]:
        """What the image stores in BASELINE_FILE."""
        return {
            "version": RECORD_VERSION,
            "image": self.image,
            "project": self.spec.requirement,
            "spec_digest": self.spec.digest(),
            "baseline": self.baseline,
            "dropped": self.dropped,
            "build_seconds": round(self.seconds, 2),
        }


def cache_root() -> Path:
    """`$XDG_CACHE_HOME/rock_gym`, default `~/.cache/rock_gym`."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rock_gym"


# -- downloads ----------------------------------------------------------------------------------------------------


def fetch_sdist(spec: ProjectSpec, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The project's sdist, downloaded with pip if not cached, checked against `spec.sdist_sha256` on every call.

    A cached file that does not match is downloaded again.

    Raises:
        ChecksumError: the download does not match (it is deleted, and nothing is built from it).
        BuildError: pip could not download it.
    """
    folder = Path(cache_dir) if cache_dir is not None else cache_root() / "sdists"
    target = folder / f"{normalize_name(spec.name)}-{spec.version}"
    for cached in sorted(target.glob("*")):
        if _sha256(cached) == spec.sdist_sha256:
            return cached
        log.warning("cached %s does not match the spec's sha256: downloading it again", cached)
        cached.unlink()
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        # pip prepares metadata even for a plain download; without build isolation that is quick for setuptools
        # projects, and a project whose backend is not installed here gets an isolated build environment instead.
        args = ["--no-deps", "--no-binary=:all:", "-d", tmp, spec.requirement]
        try:
            _pip_download([*args, "--no-build-isolation"], spec.requirement)
        except BuildError:
            _pip_download(args, spec.requirement)
        downloaded = [path for path in Path(tmp).iterdir() if path.is_file()]
        if len(downloaded) != 1:
            raise BuildError(f"pip left {len(downloaded)} files for {spec.requirement}, expected one sdist")
        actual = _sha256(downloaded[0])
        if actual != spec.sdist_sha256:
            downloaded[0].unlink()
            raise ChecksumError(
                f"{downloaded[0].name} for {spec.requirement} has sha256 {actual}, but the spec expects "
                f"{spec.sdist_sha256}: the file was deleted and nothing was built from it. Check the spec's "
                "sdist_sha256 against the project's release page"
            )
        return Path(shutil.move(downloaded[0], target / downloaded[0].name))


def fetch_test_deps(spec: ProjectSpec, cache_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Pure-Python wheels of `spec.test_deps` (no dependencies resolved: the spec lists them all), cached.

    Raises:
        BuildError: pip found no wheel for one, or only a compiled one (it could not be unpacked into the image).
    """
    folder = Path(cache_dir) if cache_dir is not None else cache_root() / "wheels"
    folder.mkdir(parents=True, exist_ok=True)
    wheels = {requirement: _cached_wheel(folder, requirement) for requirement in spec.test_deps}
    missing = [requirement for requirement, wheel in wheels.items() if wheel is None]
    if missing:
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            _pip_download(
                ["--no-deps", "--only-binary=:all:", "--python-version", PYTHON_VERSION, "-d", tmp, *missing],
                ", ".join(missing),
            )
            for path in Path(tmp).glob("*.whl"):
                if not path.name.endswith("-none-any.whl"):
                    raise BuildError(
                        f"{path.name} is not a pure-Python wheel: test deps are unpacked into the image, so pin a "
                        f"version with a py3-none-any wheel (needed by {spec.requirement})"
                    )
                shutil.move(path, folder / path.name)
        wheels = {requirement: _cached_wheel(folder, requirement) for requirement in spec.test_deps}
    absent = [requirement for requirement, wheel in wheels.items() if wheel is None]
    if absent:
        raise BuildError(f"pip downloaded no wheel for {absent} (test deps of {spec.requirement})")
    return [wheel for wheel in wheels.values() if wheel is not None]


def _cached_wheel(folder: Path, requirement: str) -> Path | None:
    name, version = split_requirement(requirement)
    # Wheel file names spell the project with underscores (PEP 427), in any case.
    stem = f"{re.sub(r'[-_.]+', '_', name)}-{version}-".lower()
    found = [path for path in folder.glob("*.whl") if path.name.lower().startswith(stem)]
    return sorted(found)[0] if found else None


def _pip_download(args: list[str], what: str) -> None:
    command = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--quiet", *args]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BuildError(f"pip did not download {what} within {PIP_TIMEOUT:.0f}s") from exc
    if result.returncode != 0:
        raise BuildError(f"pip could not download {what}:\n{(result.stdout + result.stderr)[-2000:]}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def unpack_sdist(archive: Path, destination: Path) -> Path:
    """Extract an sdist (.tar.gz or .zip) under `destination` and return its single top-level directory.

    Members that would land outside `destination` (absolute paths, `..`, links out) are refused.
    """
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as bundle:
            for name in bundle.namelist():
                if name.startswith("/") or ".." in Path(name).parts:
                    raise BuildError(f"{archive.name}: refusing member {name!r} outside the archive's root")
            bundle.extractall(destination)
    else:
        with tarfile.open(archive) as bundle:
            try:
                bundle.extractall(destination, filter="data")
            except tarfile.FilterError as exc:
                raise BuildError(f"{archive.name}: refusing an unsafe member: {exc}") from exc
    roots = list(destination.iterdir())
    if len(roots) != 1 or not roots[0].is_dir():
        raise BuildError(f"{archive.name}: expected one top-level directory, found {sorted(p.name for p in roots)}")
    return roots[0]


# -- suite runs -----------------------------------------------------------------------------------------------------


def suite_command(spec: ProjectSpec, targets: list[str] | None = None) -> str:
    """The shell command that runs the spec's suite (or `targets`) in /testbed (with RUN_ENV), writing a junit report
    and a log."""
    env = {**RUN_ENV, **spec.env}
    exports = " ".join(f"{key}={shlex.quote(value)}" for key, value in env.items())
    args = [
        *spec.pytest_args,
        *(f"--ignore={path}" for path in spec.ignore),
        *(f"--deselect={test_id}" for test_id in spec.deselect),
        f"--junitxml={SUITE_REPORT}",
        "-o",
        "junit_family=xunit1",
        *(targets or spec.test_paths),
    ]
    return f"( cd {WORKDIR} && export {exports} && {spec.test_command} {shlex.join(args)} ) > {SUITE_LOG} 2>&1"


def run_suite(
    sandbox: Sandbox, spec: ProjectSpec, test_ids: list[str] | None = None, timeout: float | None = None
) -> dict[str, str]:
    """Run the suite (or some test files or node ids) in /testbed and return node id -> status from its report.

    Statuses are PASSED, FAILED, ERROR or SKIPPED. A test that did not run (its module failed to import, say) is
    absent: compare against the baseline, not against the report alone.

    Raises:
        SuiteError: the run took longer than `timeout` (default: the spec's), or left no junit report.
    """
    limit = timeout or spec.timeout
    sandbox.run(f"rm -f {SUITE_REPORT} {SUITE_LOG}")
    result = sandbox.run(suite_command(spec, test_ids), timeout=limit)
    if result.timed_out:
        raise SuiteError(
            f"{spec.requirement}: the tests did not finish within {limit:.0f}s: raise the spec's timeout or deselect "
            "the slow tests"
        )
    try:
        report = str(sandbox.read_file(SUITE_REPORT))
    except FileNotFoundError:
        raise SuiteError(
            f"{spec.requirement}: the test command (exit {result.exit_code}) left no junit report; the end of its "
            f"output:\n{_log_tail(sandbox)}"
        ) from None
    return parse_junit(report)


def _log_tail(sandbox: Sandbox, size: int = 3000) -> str:
    try:
        return str(sandbox.read_file(SUITE_LOG))[-size:]
    except FileNotFoundError:
        return "(no log)"


def compare_runs(first: dict[str, str], second: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """The tests that passed in both runs, and every other test with the reason it is left out.

    >>> compare_runs({"t::a": "PASSED", "t::b": "PASSED", "t::c": "FAILED"}, {"t::a": "PASSED", "t::b": "FAILED"})
    (['t::a'], {'t::b': 'flaky: PASSED then FAILED', 't::c': 'FAILED then MISSING'})
    """
    baseline, dropped = [], {}
    for test_id in sorted(first.keys() | second.keys()):
        before, after = first.get(test_id, "MISSING"), second.get(test_id, "MISSING")
        if before == after == "PASSED":
            baseline.append(test_id)
        elif before == after:
            dropped[test_id] = before
        else:
            flaky = "PASSED" in (before, after)
            dropped[test_id] = f"{'flaky: ' if flaky else ''}{before} then {after}"
    return baseline, dropped


# -- images -----------------------------------------------------------------------------------------------------------


def build_project_image(
    spec: ProjectSpec,
    backend: str = "docker",
    engine_url: str | None = None,
    *,
    base_image: str = DEFAULT_IMAGE,
    cache_dir: str | os.PathLike[str] | None = None,
    rebuild: bool = False,
    image: str | None = None,
) -> ProjectImage:
    """The project's image with its passing baseline: reused when it exists from the same spec, else built.

    Args:
        spec: the project.
        backend, engine_url: the engine that builds and keeps the image.
        base_image: image with python3 and pytest to build on.
        cache_dir: where downloads are cached (default: `cache_root()`; sdists and wheels in subfolders).
        rebuild: build even when a current image exists.
        image: the reference to build (default `spec.image`, e.g. `rock-gym/proj-inflection:0.5.1`).

    Raises:
        ChecksumError: the sdist does not match the spec's sha256.
        SuiteError: the suite timed out or did not run.
        BuildError: no test passes on the unmodified code, or a download or install failed.
    """
    from rock_gym.sandbox.engines import Engine

    started = time.monotonic()
    ref = image or spec.image
    config = SandboxConfig(
        image=base_image,
        backend=backend,  # type: ignore[arg-type]
        engine_url=engine_url,
        workdir=WORKDIR,
        env={**RUN_ENV, **spec.env},
        memory="2g",
        timeout=spec.timeout,
    )
    engine = Engine.connect(config)
    stale = _image_id(engine, ref)
    if not rebuild and stale is not None:
        stored = _stored_record(engine, config.model_copy(update={"image": ref}))
        if stored is not None and (stored.get("version"), stored.get("spec_digest")) == (RECORD_VERSION, spec.digest()):
            return ProjectImage(
                ref, spec, stored["baseline"], stored["dropped"], time.monotonic() - started, reused=True
            )
        log.info("%s exists but was built from another spec or rock_gym version: rebuilding it", ref)
    cache = Path(cache_dir) if cache_dir is not None else cache_root()
    sdist = fetch_sdist(spec, cache / "sdists")
    wheels = fetch_test_deps(spec, cache / "wheels")
    project = ProjectImage(ref, spec, baseline=[])
    with tempfile.TemporaryDirectory() as tmp:
        root = unpack_sdist(sdist, Path(tmp) / "sdist")
        for wheel in wheels:
            (Path(tmp) / "wheels").mkdir(exist_ok=True)
            shutil.copy(wheel, Path(tmp) / "wheels" / wheel.name)
        _build(config, spec, project, root, Path(tmp) / "wheels" if wheels else None, started)
    if stale is not None and stale != _image_id(engine, ref):
        _remove_unused(engine, stale)
    return project


def _image_id(engine: Engine, ref: str) -> str | None:
    import docker.errors

    try:
        return str(engine.api.inspect_image(ref)["Id"])
    except docker.errors.NotFound:
        return None


def _remove_unused(engine: Engine, image_id: str) -> None:
    """Remove the image a rebuild replaced, unless a container still uses it (then `rock-gym gc` may later)."""
    import docker.errors

    try:
        engine.api.remove_image(image_id, force=False)
    except docker.errors.APIError as exc:
        log.info("kept the replaced image %s: %s", image_id[:19], exc)


def _build(
    config: SandboxConfig, spec: ProjectSpec, project: ProjectImage, root: Path, wheels: Path | None, started: float
) -> None:
    from rock_gym.sandbox.sandbox import Sandbox

    with Sandbox(config) as sandbox:
        sandbox.upload(root, WORKDIR)
        if wheels is not None:
            sandbox.upload(wheels, "/tmp/rock_gym_wheels")
            _check(
                sandbox,
                spec,
                f'for w in /tmp/rock_gym_wheels/*.whl; do python3 -m zipfile -e "$w" {SITE_PACKAGES} || exit 1; done'
                " && rm -rf /tmp/rock_gym_wheels",
                "installing the test deps",
            )
        first = run_suite(sandbox, spec)
        second = run_suite(sandbox, spec)
        project.suite_runs += 2
        project.baseline, project.dropped = compare_runs(first, second)
        if not project.baseline:
            raise BuildError(
                f"{spec.requirement}: no test passed on the unmodified code ({len(project.dropped)} failed or "
                f"errored); the end of pytest's output:\n{_log_tail(sandbox)}\nFix the spec's env, test_deps or "
                "pytest_args"
            )
        project.seconds = time.monotonic() - started
        _check(
            sandbox,
            spec,
            f"find {WORKDIR} -name __pycache__ -type d -prune -exec rm -rf {{}} + ; "
            f"rm -rf {WORKDIR}/.pytest_cache {SUITE_REPORT} {SUITE_LOG}",
            "cleaning /testbed",
        )
        sandbox.write_file(BASELINE_FILE, json.dumps(project.record(), indent=1))
        repository, _, tag = project.image.rpartition(":")
        sandbox.snapshot(tag=tag, repository=repository)
    log.info(
        "%s: %d tests in the baseline, %d dropped, %.0fs",
        project.image,
        len(project.baseline),
        len(project.dropped),
        project.seconds,
    )


def _check(sandbox: Sandbox, spec: ProjectSpec, command: str, what: str) -> None:
    result = sandbox.run(command, timeout=300)
    if not result.ok:
        raise BuildError(f"{spec.requirement}: {what} failed (exit {result.exit_code}):\n{result.output[-2000:]}")


def _stored_record(engine: Engine, config: SandboxConfig) -> dict[str, Any] | None:
    """The baseline record inside an image, read from a created (never started) container; None if absent."""
    container = engine.create(config)
    try:
        archive = engine.get_archive(container, BASELINE_FILE)
        member = archive.next()
        stream = archive.extractfile(member) if member is not None else None
        return json.loads(stream.read()) if stream is not None else None
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    finally:
        engine.remove(container)


def load_project_image(
    spec: ProjectSpec, backend: str = "docker", engine_url: str | None = None, image: str | None = None
) -> ProjectImage:
    """The project's existing image (default `spec.image`) and its stored baseline, without building anything.

    Raises:
        BuildError: the image is missing or holds no baseline: build it with `build_project_image`.
    """
    from rock_gym.sandbox.engines import Engine

    ref = image or spec.image
    config = SandboxConfig(image=ref, backend=backend, engine_url=engine_url)  # type: ignore[arg-type]
    engine = Engine.connect(config)
    stored = _stored_record(engine, config) if engine.has_image(ref) else None
    if stored is None:
        raise BuildError(f"no project image {ref} with a baseline: build it with build_project_image(spec)")
    return ProjectImage(ref, spec, stored["baseline"], stored["dropped"], stored.get("build_seconds", 0.0))
