"""The plugin manager: hooks fill registries per plugin, built-ins, duplicates, bad entry points, learners.make."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pluggy
import pytest

import learners
import rock_gym
from learners.base import Learner, LearnerConfig
from rock_gym.plugins import (
    BUILTIN,
    PluginError,
    PluginLoadWarning,
    PluginManager,
    UnknownNameError,
    new_plugin_manager,
)
from rock_gym.tools import ToolFormat

hookimpl = rock_gym.hookimpl


@pytest.fixture
def pm() -> PluginManager:
    """A fresh manager with the built-ins and no entry-point plugins."""
    return new_plugin_manager(entry_points=False)


# -- registration through each hook -------------------------------------------------------------------------------


def test_every_hook_registers_entries_recording_the_plugin(pm: PluginManager) -> None:
    class Plugin:
        @hookimpl
        def rock_gym_add_learners(self, registry):
            registry.add("mine", dict, description="a learner")

        @hookimpl
        def rock_gym_add_task_sources(self, registry):
            registry.add("mine", lambda: [], description="no tasks")

        @hookimpl
        def rock_gym_add_tool_formats(self, registry):
            registry.add("mine", ToolFormat(lambda text, tools=None: [], lambda calls: ""))

        @hookimpl
        def rock_gym_add_policies(self, registry):
            registry.add("mine", "collections:OrderedDict")

    pm.register(Plugin(), name="my-plugin")
    for kind in ("learners", "task_sources", "tool_formats", "policies"):
        entry = pm.registry(kind).get("mine")
        assert entry.plugin == "my-plugin"
    assert pm.learners.get("mine").description == "a learner"
    assert pm.learners.make("mine", a=1) == {"a": 1}
    assert pm.task_sources.make("mine") == []
    assert pm.policies.load("mine").__name__ == "OrderedDict"  # a "module:attr" string is imported on use


def test_a_plugin_may_implement_only_some_hooks(pm: PluginManager) -> None:
    class OnlyPolicies:
        @hookimpl
        def rock_gym_add_policies(self, registry):
            registry.add("scripted", object)

    pm.register(OnlyPolicies(), name="only-policies")
    assert pm.policies.get("scripted").plugin == "only-policies"
    assert [e.plugin for e in pm.learners] == [BUILTIN] * 3  # sft, reinforce, ipa


def test_registries_are_rebuilt_after_register_and_unregister(pm: PluginManager) -> None:
    class Plugin:
        @hookimpl
        def rock_gym_add_learners(self, registry):
            registry.add("late", dict)

    assert "late" not in pm.learners
    plugin = Plugin()
    pm.register(plugin, name="late-plugin")
    assert "late" in pm.learners
    pm.unregister(plugin)
    assert "late" not in pm.learners


def test_an_unknown_rock_gym_hook_is_rejected(pm: PluginManager) -> None:
    class Misspelled:
        @hookimpl
        def rock_gym_add_learner(self, registry):  # singular: no such spec
            pass

    with pytest.raises(pluggy.PluginValidationError, match="rock_gym_add_learner"):
        pm.register(Misspelled(), name="misspelled")


# -- the built-ins ------------------------------------------------------------------------------------------------


def test_builtins_are_an_ordinary_plugin(pm: PluginManager) -> None:
    assert pm.get_plugin(BUILTIN) is not None
    assert set(pm.learners.names()) == {"sft", "reinforce", "ipa"}
    assert set(pm.task_sources.names()) == {"load", "builtin-swe", "terminal-families"}
    assert set(pm.tool_formats.names()) == {"hermes", "qwen3_coder", "openai"}
    assert set(pm.policies.names()) == {"hf", "vllm", "openai", "expert"}
    for kind in ("learners", "task_sources", "tool_formats", "policies"):
        assert {entry.plugin for entry in pm.registry(kind)} == {BUILTIN}
    assert pm.learners.get("sft").factory == "learners.sft:SFTLearner"
    assert pm.policies.get("hf").factory == "learners.policies.hf:HFPolicy"


def test_builtin_task_sources_and_tool_formats_work(pm: PluginManager) -> None:
    tasks = pm.task_sources.make("terminal-families", ["count-matches"], seeds=range(2))
    assert [task.task_id for task in tasks] == ["count-matches-0", "count-matches-1"]
    assert pm.task_sources.make("builtin-swe")[0].instance_id.startswith("rock-gym__")
    assert pm.task_sources.make("load", [{"instance_id": "a__b-1", "problem_statement": "boom"}])[0].instance_id
    hermes = pm.tool_formats.load("hermes")
    text = hermes.render([rock_gym.tools.ToolCall("bash", {"command": "ls"})])
    assert hermes.parse(text, None)[0].arguments == {"command": "ls"}


def test_loading_the_plugins_imports_nothing_heavy() -> None:
    code = textwrap.dedent(
        """
        import sys, rock_gym
        pm = rock_gym.get_plugin_manager()
        for kind in ("learners", "task_sources", "tool_formats", "policies"):
            pm.registry(kind)
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("docker", "torch", "ray", "transformers"))
        print(heavy, [m for m in sys.modules if m.startswith("learners.")])
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[] []"


def test_get_plugin_manager_is_shared_and_exported_from_the_root() -> None:
    assert rock_gym.get_plugin_manager() is rock_gym.get_plugin_manager()
    assert rock_gym.hookimpl is rock_gym.plugins.hookimpl


# -- duplicates and bad names -------------------------------------------------------------------------------------


def test_a_name_taken_by_a_builtin_is_an_error_naming_both_plugins(pm: PluginManager) -> None:
    class Plugin:
        @hookimpl
        def rock_gym_add_learners(self, registry):
            registry.add("reinforce", dict)

    pm.register(Plugin(), name="rock_gym_reinforce")
    with pytest.raises(
        PluginError, match="learner 'reinforce' registered by both 'rock_gym.builtin' and 'rock_gym_reinforce'"
    ):
        pm.learners  # noqa: B018


def test_a_name_taken_by_two_third_party_plugins_is_an_error(pm: PluginManager) -> None:
    class First:
        @hookimpl
        def rock_gym_add_tool_formats(self, registry):
            registry.add("xml", "json:dumps")

    class Second:
        @hookimpl
        def rock_gym_add_tool_formats(self, registry):
            registry.add("xml", "json:loads")

    pm.register(First(), name="first")
    pm.register(Second(), name="second")
    with pytest.raises(PluginError, match="tool format 'xml' registered by both 'first' and 'second'"):
        pm.tool_formats  # noqa: B018
    assert "sft" in pm.learners  # other registries are unaffected


@pytest.mark.parametrize("name", ["", "has space", "hf:path", None])
def test_a_bad_name_is_rejected_naming_the_plugin(pm: PluginManager, name: object) -> None:
    class Plugin:
        @hookimpl
        def rock_gym_add_policies(self, registry):
            registry.add(name, object)

    pm.register(Plugin(), name="bad-names")
    with pytest.raises(PluginError, match="policy name .*from plugin 'bad-names'"):
        pm.policies  # noqa: B018


# -- entry points -------------------------------------------------------------------------------------------------


def write_distribution(root: Path, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    """An installed-looking distribution `tmp-plugins` in `root`: a dist-info with entry points, plus modules."""
    info = root / "tmp_plugins-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tmp-plugins\nVersion: 0.1\n")
    lines = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[rock_gym]\n{lines}")
    for name, source in modules.items():
        (root / f"{name}.py").write_text(textwrap.dedent(source))


GOOD = """
    import rock_gym

    @rock_gym.hookimpl
    def rock_gym_add_learners(registry):
        registry.add("tmp-good", dict, description="from a module plugin")
"""
BROKEN = "raise RuntimeError('boom: this plugin cannot be imported')\n"
MISSPELLED = """
    import rock_gym

    @rock_gym.hookimpl
    def rock_gym_add_nothing(registry):
        pass
"""


@pytest.fixture
def tmp_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    entry_points = {
        "tmp_broken": "tmp_broken_plugin",
        "tmp_misspelled": "tmp_misspelled_plugin",
        "tmp_good": "tmp_good_plugin",
    }
    modules = {"tmp_broken_plugin": BROKEN, "tmp_misspelled_plugin": MISSPELLED, "tmp_good_plugin": GOOD}
    write_distribution(tmp_path, entry_points, modules)
    monkeypatch.syspath_prepend(str(tmp_path))
    for module in modules:
        monkeypatch.delitem(sys.modules, module, raising=False)
    return tmp_path


def test_a_plugin_that_fails_to_load_is_reported_and_the_rest_still_load(tmp_distribution: Path) -> None:
    with pytest.warns(PluginLoadWarning) as warned:
        pm = new_plugin_manager()
    failures = {failure.entry_point.name: failure for failure in pm.failures}
    assert set(failures) == {"tmp_broken", "tmp_misspelled"}
    assert failures["tmp_broken"].entry_point.value == "tmp_broken_plugin"
    assert isinstance(failures["tmp_broken"].error, RuntimeError)
    assert "rock_gym_add_nothing" in str(failures["tmp_misspelled"].error)
    messages = [str(w.message) for w in warned]
    assert any("'tmp_broken' (tmp_broken_plugin) failed to load: RuntimeError: boom" in m for m in messages)
    assert pm.learners.get("tmp-good").plugin == "tmp_good"
    assert pm.distributions["tmp_good"] == "tmp-plugins 0.1"
    assert "reinforce" in pm.learners  # the built-ins too


def test_the_cli_lists_entries_with_their_plugin_and_the_failed_plugins(tmp_distribution: Path) -> None:
    env = {**os.environ, "PYTHONPATH": f"{tmp_distribution}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env["COLUMNS"] = "200"
    done = subprocess.run(
        [sys.executable, "-m", "rock_gym.cli", "plugins"], capture_output=True, text=True, env=env, check=True
    )
    rows = {line.split("│")[2].strip(): line for line in done.stdout.splitlines() if line.count("│") >= 4}
    assert "tmp_good tmp-plugins 0.1" in rows["tmp-good"]
    assert BUILTIN in rows["hermes"] and "tool format" in rows["hermes"]
    assert "plugins that failed to load" in done.stdout
    assert "tmp_broken_plugin" in done.stdout and "RuntimeError: boom" in done.stdout


# -- learners.make ------------------------------------------------------------------------------------------------


@dataclass
class CountConfig(LearnerConfig):
    step: int = 1
    """How much each update adds."""


class Count(Learner):
    config_class = CountConfig

    def train(self, updates: int) -> list[dict[str, float]]:
        return [{"update": float(i + 1), "value": float(self.config.step * (i + 1))} for i in range(updates)]

    def save(self, path: str | Path) -> None:
        Path(path).write_text(str(self.config))


def test_make_builds_a_registered_learner_from_its_config_fields(pm: PluginManager) -> None:
    class Plugin:
        @hookimpl
        def rock_gym_add_learners(self, registry):
            registry.add("count", Count)

    pm.register(Plugin(), name="counting")
    with learners.make("count", plugin_manager=pm, step=3, seed=7) as learner:
        assert isinstance(learner, Count)
        assert learner.config == CountConfig(step=3, seed=7)
        assert learner.train(2) == [{"update": 1.0, "value": 3.0}, {"update": 2.0, "value": 6.0}]
    with pytest.raises(
        TypeError, match=r"CountConfig has no field 'stride': known are env, seed, step \(and EnvConfig's\)"
    ):
        learners.make("count", plugin_manager=pm, stride=2)


def test_make_unknown_name_lists_the_known_ones(pm: PluginManager) -> None:
    with pytest.raises(UnknownNameError, match="unknown learner 'nope': known are ipa, reinforce, sft"):
        learners.make("nope", plugin_manager=pm)
    with pytest.raises(LookupError, match="rock-gym plugins"):
        learners.make("nope", plugin_manager=pm)


def test_make_names_the_plugin_when_a_learner_cannot_be_imported(pm: PluginManager) -> None:
    class Plugin:
        @hookimpl
        def rock_gym_add_learners(self, registry):
            registry.add("ghost", "no_such_module_here:Ghost")

    pm.register(Plugin(), name="haunted")
    with pytest.raises(PluginError, match="learner 'ghost' \\(from plugin 'haunted'\\).*no_such_module_here"):
        learners.make("ghost", plugin_manager=pm)


def test_a_plugin_tool_format_is_usable_by_name():
    from rock_gym.plugins import get_plugin_manager
    from rock_gym.tools import FORMATS, ToolCall, get_format

    shouty = FORMATS["hermes"]._replace(render=lambda calls: FORMATS["hermes"].render(calls).upper())

    class Shouty:
        @hookimpl
        def rock_gym_add_tool_formats(self, registry):
            registry.add("shouty", shouty)

    pm = get_plugin_manager()
    plugin = Shouty()
    pm.register(plugin, name="shouty-plugin")
    try:
        assert get_format("shouty").render([ToolCall("bash", {"command": "ls"})]).startswith("<TOOL_CALL>")
    finally:
        pm.unregister(plugin)
    with pytest.raises(KeyError, match="unknown tool-call format 'shouty'"):
        get_format("shouty")
