"""Which lines of a project's library code its test suite runs, measured once per project image and cached.

The image has no `coverage` package, so a tiny pytest plugin (written to /tmp in the sandbox) traces the suite with
`sys.settrace`, recording lines only in files under the spec's `source_paths`; every other frame costs one dict
lookup. The result (the source files' text and their covered lines) is cached on the host under
`cache_root()/coverage`, keyed by the image's id, so a rebuilt image is traced again.

Examples:
    >>> from rock_gym.tasks.synth import build_project_image, spec_for
    >>> project = build_project_image(spec_for("inflection"))  # doctest: +SKIP
    >>> measured = project_coverage(project)  # doctest: +SKIP
    >>> sorted(measured.functions())[:2]  # doctest: +SKIP
    [('inflection/__init__.py', 'camelize'), ('inflection/__init__.py', 'dasherize')]
"""

from __future__ import annotations

import json
import os
import posixpath
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from rock_gym.sandbox import SandboxConfig
from rock_gym.tasks.synth.build import RUN_ENV, WORKDIR, ProjectImage, SuiteError, cache_root, run_suite
from rock_gym.tasks.synth.mutate import covered_functions
from rock_gym.tasks.synth.specs import ProjectSpec, normalize_name

if TYPE_CHECKING:
    from rock_gym.sandbox.sandbox import Sandbox

PLUGIN_DIR = "/tmp/rock_gym_trace"
TRACE_OUT = "/tmp/rock_gym_trace.json"
SOURCES_OUT = "/tmp/rock_gym_sources.json"
#: Bump when what the cache holds changes meaning.
CACHE_VERSION = 1

#: The pytest plugin: a global trace function that enters only frames of the traced files, whose lines it records.
TRACER = """\
import json, os, sys, threading

_ROOTS = tuple(json.loads(os.environ["ROCK_GYM_TRACE_ROOTS"]))
_lines = {}
_wanted = {}


def _in_roots(filename):
    path = os.path.abspath(filename)
    return any(path == root or path.startswith(root + os.sep) for root in _ROOTS)


def _local(frame, event, arg):
    if event == "line":
        _lines[frame.f_code.co_filename].add(frame.f_lineno)
    return _local


def _global(frame, event, arg):
    filename = frame.f_code.co_filename
    wanted = _wanted.get(filename)
    if wanted is None:
        wanted = _wanted[filename] = _in_roots(filename)
        if wanted:
            _lines.setdefault(filename, set())
    return _local if wanted else None


def pytest_configure(config):
    threading.settrace(_global)
    sys.settrace(_global)


def pytest_unconfigure(config):
    sys.settrace(None)
    threading.settrace(None)
    report = {os.path.abspath(name): sorted(lines) for name, lines in _lines.items()}
    with open(os.environ["ROCK_GYM_TRACE_OUT"], "w") as stream:
        json.dump(report, stream)
"""

#: Dumps {relative path: text} of every .py file under the given roots (argv[2:]) to argv[1], as JSON.
SOURCE_DUMP = """\
import json, os, sys
found = {}
for root in sys.argv[2:]:
    if os.path.isfile(root):
        paths = [root]
    else:
        paths = [os.path.join(d, f) for d, _, files in os.walk(root) for f in files if f.endswith(".py")]
    for path in paths:
        try:
            with open(path, encoding="utf-8") as stream:
                found[os.path.relpath(path, ".")] = stream.read()
        except UnicodeDecodeError:
            pass  # not UTF-8: left alone
with open(sys.argv[1], "w") as stream:
    json.dump(found, stream)
"""


class CoverageError(RuntimeError):
    """The traced suite run failed, or reached none of the library code."""


@dataclass
class Coverage:
    """A project's library files and the lines its suite runs in them.

    Attributes:
        files: library file path (relative to /testbed) -> text, test files excluded.
        covered: library file path -> covered line numbers.
        seconds: how long measuring took (0 when read from the cache).
        cached: read from the host cache.
    """

    files: dict[str, str]
    covered: dict[str, set[int]] = field(default_factory=dict)
    seconds: float = 0.0
    cached: bool = False

    def functions(self) -> set[tuple[str, str]]:
        """(path, qualified name) of every function with a covered line in its own body."""
        found: set[tuple[str, str]] = set()
        for path, text in self.files.items():
            found.update((path, name) for name in self.functions_in(path, text))
        return found

    def functions_in(self, path: str, text: str | None = None) -> set[str]:
        """Covered functions of one file (none when it does not parse)."""
        lines = self.covered.get(path)
        if not lines:
            return set()
        try:
            return covered_functions(text if text is not None else self.files[path], lines)
        except (SyntaxError, ValueError):
            return set()

    def to_json(self) -> dict[str, object]:
        return {
            "version": CACHE_VERSION,
            "files": self.files,
            "covered": {path: sorted(lines) for path, lines in self.covered.items()},
            "seconds": round(self.seconds, 2),
        }


def is_test_file(spec: ProjectSpec, path: str) -> bool:
    """Whether a path is test code: under one of the spec's test paths, or a `test_*.py`/`*_test.py`/conftest."""
    name = PurePosixPath(path).name
    if name == "conftest.py" or name.startswith("test_") or name.endswith("_test.py"):
        return True
    roots = [test_path.split("::", 1)[0].rstrip("/") for test_path in spec.test_paths]
    return any(path == root or path.startswith(root + "/") for root in roots)


def project_coverage(
    project: ProjectImage,
    backend: str = "docker",
    engine_url: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Coverage:
    """The project's library files and covered lines: from the host cache, else traced in a sandbox and cached.

    Raises:
        CoverageError: the traced run left no report or covered no library line.
    """
    from rock_gym.sandbox.engines import Engine
    from rock_gym.sandbox.sandbox import Sandbox

    config = sandbox_config(project, backend, engine_url)
    image_id = str(Engine.connect(config).api.inspect_image(project.image)["Id"]).removeprefix("sha256:")
    folder = Path(cache_dir) if cache_dir is not None else cache_root() / "coverage"
    spec = project.spec
    path = folder / f"{normalize_name(spec.name)}-{spec.version}-{image_id[:16]}.json"
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored.get("version") == CACHE_VERSION:
            covered = {name: set(lines) for name, lines in stored["covered"].items()}
            return Coverage(stored["files"], covered, cached=True)
    started = time.monotonic()
    with Sandbox(config) as sandbox:
        measured = measure(sandbox, spec)
    measured.seconds = time.monotonic() - started
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(measured.to_json()))
    partial.replace(path)
    return measured


def sandbox_config(project: ProjectImage, backend: str = "docker", engine_url: str | None = None) -> SandboxConfig:
    """How the pipeline starts sandboxes from a project image (the suite's own environment, 2 GB, no disk bound)."""
    spec = project.spec
    return SandboxConfig(
        image=project.image,
        backend=backend,  # type: ignore[arg-type]
        engine_url=engine_url,
        workdir=WORKDIR,
        env={**RUN_ENV, **spec.env},
        memory="2g",
        disk=None,
        timeout=spec.timeout,
    )


def measure(sandbox: Sandbox, spec: ProjectSpec) -> Coverage:
    """Read the library files and trace one run of the suite in a started sandbox from the project image."""
    files = source_files(sandbox, spec)
    sandbox.write_file(f"{PLUGIN_DIR}/rock_gym_trace.py", TRACER)
    roots = [posixpath.join(WORKDIR, path) for path in spec.source_paths]
    python_path = ":".join(filter(None, [PLUGIN_DIR, spec.env.get("PYTHONPATH", "")]))
    traced = spec.model_copy(
        update={
            "test_command": f"{spec.test_command} -p rock_gym_trace",
            "env": {
                **spec.env,
                "PYTHONPATH": python_path,
                "ROCK_GYM_TRACE_ROOTS": json.dumps(roots),
                "ROCK_GYM_TRACE_OUT": TRACE_OUT,
            },
        }
    )
    try:
        run_suite(sandbox, traced, timeout=spec.timeout * 5)  # tracing slows the suite down
        report = json.loads(sandbox.read_file(TRACE_OUT))
    except (SuiteError, FileNotFoundError) as exc:
        raise CoverageError(f"{spec.requirement}: the traced suite run failed: {exc}") from exc
    covered = {}
    for absolute, lines in report.items():
        relative = posixpath.relpath(absolute, WORKDIR)
        if relative in files:
            covered[relative] = set(lines)
    if not any(covered.values()):
        raise CoverageError(
            f"{spec.requirement}: the suite ran no line of {spec.source_paths}: check the spec's source_paths and env"
        )
    return Coverage(files, covered)


def source_files(sandbox: Sandbox, spec: ProjectSpec) -> dict[str, str]:
    """{path relative to /testbed: text} of the library's .py files (test files left out)."""
    sandbox.write_file("/tmp/rock_gym_dump.py", SOURCE_DUMP)
    roots = " ".join(shlex.quote(path) for path in spec.source_paths)
    result = sandbox.run(f"cd {WORKDIR} && python3 /tmp/rock_gym_dump.py {SOURCES_OUT} {roots}", timeout=120)
    if not result.ok:
        raise CoverageError(f"{spec.requirement}: could not read {spec.source_paths}: {result.output[-1000:]}")
    found: dict[str, str] = json.loads(sandbox.read_file(SOURCES_OUT))
    files = {path: text for path, text in sorted(found.items()) if not is_test_file(spec, path)}
    if not files:
        raise CoverageError(f"{spec.requirement}: no library .py file under {spec.source_paths} (tests excluded)")
    return files
