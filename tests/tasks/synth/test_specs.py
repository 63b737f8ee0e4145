"""Project specs: the shipped file, lookups, and bad entries that fail naming the file, the project and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from rock_gym.tasks.synth.specs import SHIPPED_SPECS, ProjectSpec, SpecError, load_specs, spec_for

#: Issue 4's table: project -> (version, sdist sha256).
ISSUE_TABLE = {
    "boltons": ("26.2.0", "d39cfd15c1a1c3bd4d705c82252fa9edb8e4f5e8cc039f8e39afac7b1b47e92c"),
    "cachetools": ("8.0.2", "30ac523adfc118b51d2b2e7bad8a0ddb31370dfe2700c7f10ca224f36ccf81e0"),
    "humanize": ("4.17.0", "1d6a36c453dbfbb3f0b34601d2e0b4ce5d48d780305cd45714843f0068fde6ac"),
    "inflection": ("0.5.1", "1a29730d366e996aaacffb2f1f1cb9593dc38e2ddd30c91250c6dde09ea9b417"),
    "isodate": ("0.7.2", "4cd1aa0f43ca76f4a6c6c0292a85f40b35ec2e43e315b59f06e6d32171a953e6"),
    "mistune": ("3.4.0", "2eaf7952af928ca8d33b779762effc1da517b62c6ad85ec8ca957e3b07b9782a"),
    "parse": ("1.22.4", "706d458feed5a81b02768d3156e8070baf6cee7d150a3a3c0cd43101a875c3b5"),
    "python-slugify": ("9.2.0", "cee32948083476013804de1667724fb1362dacb71e47b1d5d92adf8db6ee3298"),
    "sqlparse": ("0.6.1", "ca722573f848ff2d30e40ea30f53a104b7dea7635ea9285891263eb2c58fb6e7"),
    "tomlkit": ("0.15.2", "83e32755ba1d20d9340bd069ee97e9f6232ba2346b63ffcba425de01f7e327a6"),
    "toolz": ("1.2.0", "9667a038e9d6ecba37995e26cb2f59ec6420b6ad8dd9677de59db9b956b08490"),
    "xmltodict": ("1.0.4", "6d94c9f834dd9e44514162799d344d815a3a4faec913717a9ecbfa5be1bb8e61"),
}

GOOD_ENTRY = """
[[project]]
name = "demo"
version = "1.0.0"
sdist_sha256 = "{sha}"
source_paths = ["src/demo"]
""".format(sha="a" * 64)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "projects.toml"
    path.write_text(text)
    return path


def test_shipped_specs_hold_the_issues_twelve_projects() -> None:
    specs = load_specs()
    assert {name: (spec.version, spec.sdist_sha256) for name, spec in specs.items()} == ISSUE_TABLE


def test_shipped_specs_turn_the_notes_into_fields() -> None:
    specs = load_specs()
    for name in ("cachetools", "humanize", "isodate", "mistune"):
        assert specs[name].env == {"PYTHONPATH": "src"}
        assert specs[name].source_paths == [f"src/{name}"]
    assert specs["humanize"].ignore == ["tests/test_benchmarks.py"]
    assert "freezegun==1.5.1" in specs["humanize"].test_deps
    assert specs["parse"].pytest_args == ["-o", "addopts="]
    assert specs["python-slugify"].test_deps == ["text-unidecode==1.3"]
    assert specs["inflection"].test_paths == ["test_inflection.py"]
    assert specs["toolz"].test_paths == ["toolz/tests", "toolz/sandbox/tests"]


def test_defaults_of_a_minimal_entry(tmp_path: Path) -> None:
    spec = load_specs(write(tmp_path, GOOD_ENTRY))["demo"]
    assert spec.test_paths == ["tests"]
    assert spec.test_command == "python3 -m pytest -p no:cacheprovider -q"
    assert (spec.env, spec.test_deps, spec.ignore, spec.deselect, spec.pytest_args) == ({}, [], [], [], [])
    assert spec.requirement == "demo==1.0.0"
    assert spec.image == "rock-gym/proj-demo:1.0.0"


def test_spec_for_accepts_a_name_or_a_pin() -> None:
    assert spec_for("tomlkit==0.15.2").name == "tomlkit"
    assert spec_for("tomlkit").version == "0.15.2"
    assert spec_for("Python_Slugify").name == "python-slugify"  # names compare as PyPI compares them
    assert spec_for("python-slugify").image == "rock-gym/proj-python-slugify:9.2.0"


def test_spec_for_a_version_that_is_not_pinned_names_the_pinned_one() -> None:
    with pytest.raises(SpecError, match=r"pins tomlkit==0\.15\.2, not 0\.14\.0"):
        spec_for("tomlkit==0.14.0")


def test_spec_for_an_unknown_project_lists_the_known_ones() -> None:
    with pytest.raises(SpecError, match=r"no spec for project 'nosuch'.*'tomlkit'"):
        spec_for("nosuch")


def test_spec_for_reads_another_file(tmp_path: Path) -> None:
    assert spec_for("demo==1.0.0", write(tmp_path, GOOD_ENTRY)).source_paths == ["src/demo"]


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (lambda t: t.replace('sdist_sha256 = "' + "a" * 64 + '"\n', ""), "sdist_sha256", "Field required"),
        (lambda t: t + 'test_path = ["tests"]\n', "test_path", "unknown field"),
        (lambda t: t.replace('"1.0.0"', '"latest"'), "version", "not a pinned version"),
        (lambda t: t.replace('"1.0.0"', '">=1.0"'), "version", "not a pinned version"),
        (lambda t: t.replace("a" * 64, "abc"), "sdist_sha256", "should match pattern"),
        (lambda t: t + 'test_deps = ["freezegun>=1.5"]\n', "test_deps", "not a pinned requirement"),
        (lambda t: t + 'ignore = ["../outside.py"]\n', "ignore", "relative to the project's root"),
        (lambda t: t.replace('["src/demo"]', "[]"), "source_paths", "at least 1 item"),
        (lambda t: t + 'env = { "BAD-KEY" = "1" }\n', "env", "not environment variable names"),
    ],
)
def test_a_bad_entry_names_the_file_the_project_and_the_field(
    tmp_path: Path, change: object, field: str, message: str
) -> None:
    path = write(tmp_path, change(GOOD_ENTRY))  # type: ignore[operator]
    with pytest.raises(SpecError) as caught:
        load_specs(path)
    text = str(caught.value)
    assert str(path) in text
    assert "project 'demo' (entry 1)" in text
    assert f"field {field!r}" in text
    assert message in text


def test_an_entry_without_a_name_is_named_by_its_position(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD_ENTRY + GOOD_ENTRY.replace('name = "demo"\n', ""))
    with pytest.raises(SpecError, match=r"entry 2: field 'name': Field required"):
        load_specs(path)


def test_a_project_listed_twice_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"project 'Demo' \(entry 2\) is listed twice"):
        load_specs(write(tmp_path, GOOD_ENTRY + GOOD_ENTRY.replace('"demo"', '"Demo"')))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[project]\nname=", "not valid TOML"),
        ('[project]\nname = "demo"\n', "write \\[\\[project\\]\\], not \\[project\\]"),
        ('[[projects]]\nname = "demo"\n', "unknown top-level keys \\['projects'\\]"),
    ],
)
def test_a_malformed_file_is_named(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        load_specs(write(tmp_path, text))


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read the spec file"):
        load_specs(tmp_path / "absent.toml")


def test_the_digest_follows_every_field() -> None:
    spec = spec_for("inflection")
    assert spec.digest() == ProjectSpec.model_validate(spec.model_dump()).digest()
    assert spec.digest() != spec.model_copy(update={"deselect": ["test_inflection.py::test_x"]}).digest()


def test_the_shipped_file_is_the_default() -> None:
    assert SHIPPED_SPECS.name == "projects.toml" and SHIPPED_SPECS.exists()
