"""Project specs: which real project to turn into tasks, and how to run its tests. One TOML entry per project.

A spec file holds `[[project]]` tables; the shipped one (`projects.toml`, beside this module) covers twelve small
pure-Python projects. To add a project, write one entry; no code changes:

```toml
[[project]]
name = "humanize"                 # PyPI name (required)
version = "4.17.0"                # pinned, canonical PEP 440 version (required)
sdist_sha256 = "1d6a36c4...6ac"   # sha256 of the sdist on PyPI (required): the download is refused otherwise
source_paths = ["src/humanize"]   # library code, relative to the sdist's root: files or directories (required);
                                  # bugs are injected only here, never under test_paths (tests may live inside)
test_paths = ["tests"]            # what pytest is given: directories, files or node ids (default ["tests"])
env = { PYTHONPATH = "src" }      # environment of every test run (default none)
test_deps = ["freezegun==1.5.1", "python-dateutil==2.9.0.post0", "six==1.17.0"]
                                  # test-only dependencies, each pinned `name==version` and with its own
                                  # dependencies listed too: pure-Python wheels, downloaded on the host and
                                  # unpacked into the image (containers have no network)
ignore = ["tests/test_benchmarks.py"]  # paths pytest must not collect (--ignore=...)
deselect = []                     # node ids pytest must not run (--deselect=...)
pytest_args = ["-o", "addopts="]  # extra pytest arguments, one list item per shell word
test_command = "python3 -m pytest -p no:cacheprovider -q"  # the default; runs in /testbed
timeout = 600                     # seconds one run of the whole suite may take (default 600)
```

The image runs Debian bookworm's python3 (3.11) and python3-pytest (7.2): a project whose tests need a newer pytest
or a compiled dependency does not fit.

Examples:
    >>> spec = spec_for("tomlkit==0.15.2")
    >>> spec.test_paths, spec.image
    (['tests'], 'rock-gym/proj-tomlkit:0.15.2')
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rock_gym.tasks.model import TaskError

#: The spec file shipped with rock_gym.
SHIPPED_SPECS = Path(__file__).with_name("projects.toml")
DEFAULT_TEST_COMMAND = "python3 -m pytest -p no:cacheprovider -q"
#: Repository of the project images; the tag is the project's version.
IMAGE_REPOSITORY = "rock-gym/proj-{name}"

# PEP 440's canonical public version (the form PyPI shows): 1.2, 2.0rc1, 2.9.0.post0, 1!2.0.dev3.
_VERSION = re.compile(
    r"^([1-9]\d*!)?(0|[1-9]\d*)(\.(0|[1-9]\d*))*((a|b|rc)(0|[1-9]\d*))?(\.post(0|[1-9]\d*))?"
    r"(\.dev(0|[1-9]\d*))?$"
)
# PEP 508 distribution names.
_NAME = re.compile(r"^([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9])$")
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SpecError(TaskError):
    """A project spec that cannot be read or looked up; the message names the file, the project and the field."""


def normalize_name(name: str) -> str:
    """A project name as PyPI compares them (PEP 503).

    >>> normalize_name("Python_Slugify")
    'python-slugify'
    """
    return re.sub(r"[-_.]+", "-", name).lower()


def check_version(version: str) -> str:
    """`version` if it is a canonical PEP 440 version, else ValueError saying what a pinned version looks like."""
    if not _VERSION.match(version):
        raise ValueError(f"{version!r} is not a pinned version: write a canonical PEP 440 one such as 1.2.3 or 2.0rc1")
    return version


def split_requirement(requirement: str) -> tuple[str, str]:
    """`(name, version)` of a pinned `name==version` requirement; ValueError otherwise.

    >>> split_requirement("python-dateutil==2.9.0.post0")
    ('python-dateutil', '2.9.0.post0')
    """
    name, sep, version = (part.strip() for part in requirement.partition("=="))
    if not sep or not _NAME.match(name):
        raise ValueError(f"{requirement!r} is not a pinned requirement: write name==version, e.g. freezegun==1.5.1")
    return name, check_version(version)


class ProjectSpec(BaseModel):
    """How to fetch one project's sdist and run its test suite (see the module docstring for the file format)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="PyPI name.")
    version: str = Field(description="Pinned canonical PEP 440 version.")
    sdist_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the sdist (64 lowercase hex digits).")
    source_paths: list[str] = Field(min_length=1, description="Library code (files or dirs) under the sdist root.")
    test_paths: list[str] = Field(default_factory=lambda: ["tests"], min_length=1, description="pytest targets.")
    env: dict[str, str] = Field(default_factory=dict, description="Environment of every test run.")
    test_deps: list[str] = Field(default_factory=list, description="Pinned test-only wheels (name==version).")
    ignore: list[str] = Field(default_factory=list, description="Paths pytest must not collect (--ignore).")
    deselect: list[str] = Field(default_factory=list, description="Node ids pytest must not run (--deselect).")
    pytest_args: list[str] = Field(default_factory=list, description="Extra pytest arguments, one per shell word.")
    test_command: str = Field(DEFAULT_TEST_COMMAND, min_length=1, description="pytest command, run in /testbed.")
    timeout: float = Field(600.0, gt=0, description="Seconds one run of the whole suite may take.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"{value!r} is not a PyPI project name")
        return value

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        return check_version(value)

    @field_validator("test_deps")
    @classmethod
    def _pinned(cls, value: list[str]) -> list[str]:
        for requirement in value:
            split_requirement(requirement)
        return value

    @field_validator("source_paths", "test_paths", "ignore")
    @classmethod
    def _relative(cls, value: list[str]) -> list[str]:
        for path in value:
            file_part = path.split("::", 1)[0]
            if not file_part or PurePosixPath(file_part).is_absolute() or ".." in PurePosixPath(file_part).parts:
                raise ValueError(f"{path!r} must be a path relative to the project's root, without '..'")
        return value

    @field_validator("env")
    @classmethod
    def _env_keys(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [key for key in value if not _ENV_KEY.match(key)]
        if bad:
            raise ValueError(f"not environment variable names: {bad}")
        return value

    @property
    def requirement(self) -> str:
        """`name==version`."""
        return f"{self.name}=={self.version}"

    @property
    def image(self) -> str:
        """The project image's reference, e.g. `rock-gym/proj-tomlkit:0.15.2`."""
        tag = re.sub(r"[^A-Za-z0-9_.-]", "_", self.version)
        return f"{IMAGE_REPOSITORY.format(name=normalize_name(self.name))}:{tag}"

    def digest(self) -> str:
        """sha256 of the spec's fields: an image built from another digest is stale."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()


def load_specs(path: str | Path | None = None) -> dict[str, ProjectSpec]:
    """Read a spec file's `[[project]]` entries, keyed by name (default: the shipped `projects.toml`).

    Raises:
        SpecError: the file is missing or not TOML, or an entry is bad; naming the file, the project and the field.
    """
    source = Path(path) if path is not None else SHIPPED_SPECS
    try:
        document = tomllib.loads(source.read_text())
    except OSError as exc:
        raise SpecError(f"{source}: cannot read the spec file: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{source}: not valid TOML: {exc}") from exc
    unknown = sorted(set(document) - {"project"})
    if unknown:
        raise SpecError(f"{source}: unknown top-level keys {unknown}: write each project as a [[project]] table")
    entries = document.get("project", [])
    if not isinstance(entries, list):
        raise SpecError(f"{source}: `project` must be an array of tables: write [[project]], not [project]")
    specs: dict[str, ProjectSpec] = {}
    for index, entry in enumerate(entries, start=1):
        spec = _parse_entry(source, index, entry)
        if any(normalize_name(known) == normalize_name(spec.name) for known in specs):
            raise SpecError(f"{source}: project {spec.name!r} (entry {index}) is listed twice")
        specs[spec.name] = spec
    return specs


def spec_for(project: str, path: str | Path | None = None) -> ProjectSpec:
    """The spec of `project`, given as `name` or `name==version` (names compare as PyPI does).

    Raises:
        SpecError: no such project in the file, or the file pins another version.
    """
    name, sep, version = (part.strip() for part in project.partition("=="))
    specs = load_specs(path)
    source = Path(path) if path is not None else SHIPPED_SPECS
    found = [spec for spec in specs.values() if normalize_name(spec.name) == normalize_name(name)]
    if not found:
        raise SpecError(
            f"no spec for project {name!r} in {source}: known projects are {sorted(specs)}; "
            "add a [[project]] entry (see rock_gym.tasks.synth.specs) and pass its file"
        )
    spec = found[0]
    if sep and version != spec.version:
        raise SpecError(
            f"{source} pins {spec.name}=={spec.version}, not {version}: ask for {spec.requirement}, or change the "
            "entry's version and sdist_sha256"
        )
    return spec


def _parse_entry(source: Path, index: int, entry: Any) -> ProjectSpec:
    if not isinstance(entry, dict):
        raise SpecError(f"{source}: entry {index} is not a table")
    label = f"project {entry['name']!r} (entry {index})" if isinstance(entry.get("name"), str) else f"entry {index}"
    try:
        return ProjectSpec.model_validate(entry)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]) or "?"
            message = "unknown field" if error["type"] == "extra_forbidden" else error["msg"]
            problems.append(f"field {field!r}: {message}")
        raise SpecError(f"{source}: {label}: " + "; ".join(problems)) from exc
