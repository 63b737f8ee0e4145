"""The plugin manager: built-ins and the `rock_gym` entry-point group fill four registries through the same hooks.

Each hook of `rock_gym.hookspecs` is called plugin by plugin (in registration order, built-ins first), so every
entry records the plugin that added it, and a name added twice is an error naming both plugins. A plugin whose
entry point fails to load is kept as a `PluginFailure` (and warned about); the others still load.

Examples:
    >>> pm = new_plugin_manager(entry_points=False)
    >>> pm.learners.get("reinforce").plugin
    'rock_gym.builtin'
    >>> sorted(pm.tool_formats.names())
    ['hermes', 'openai', 'qwen3_coder']
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pluggy

from rock_gym import hookspecs

hookimpl = pluggy.HookimplMarker("rock_gym")

ENTRY_POINT_GROUP = "rock_gym"
BUILTIN = "rock_gym.builtin"

#: Registry kind -> (hook that fills it, the word used for one entry in messages).
KINDS: dict[str, tuple[str, str]] = {
    "learners": ("rock_gym_add_learners", "learner"),
    "task_sources": ("rock_gym_add_task_sources", "task source"),
    "tool_formats": ("rock_gym_add_tool_formats", "tool format"),
    "policies": ("rock_gym_add_policies", "policy"),
}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")


class PluginError(Exception):
    """A registration is invalid (bad or duplicate name) or a registered entry cannot be loaded."""


class UnknownNameError(PluginError, LookupError):
    """No entry of that name; the message lists the known ones."""


class PluginLoadWarning(UserWarning):
    """A plugin of the `rock_gym` entry-point group failed to load; the others were loaded."""


@dataclass(frozen=True)
class PluginFailure:
    """An entry point whose plugin could not be imported or registered.

    Attributes:
        entry_point: the entry point, e.g. `EntryPoint(name='broken', value='broken_pkg', group='rock_gym')`.
        error: what loading it raised.
    """

    entry_point: importlib.metadata.EntryPoint
    error: BaseException

    def __str__(self) -> str:
        ep = self.entry_point
        return f"rock_gym plugin {ep.name!r} ({ep.value}) failed to load: {type(self.error).__name__}: {self.error}"


@dataclass(frozen=True)
class Entry:
    """One registered learner, task source, tool format or policy.

    Attributes:
        kind: "learner", "task source", "tool format" or "policy".
        name: the name it is made by.
        factory: what was registered: an object, or a `"module:attr"` string imported by `load()`.
        plugin: the name of the plugin that added it.
        description: one line for `rock-gym plugins`.
    """

    kind: str
    name: str
    factory: Any
    plugin: str
    description: str = ""

    def load(self) -> Any:
        """The registered object, importing a `"module:attr"` string now."""
        if not isinstance(self.factory, str):
            return self.factory
        module, _, attr = self.factory.partition(":")
        try:
            return functools.reduce(getattr, attr.split(".") if attr else [], importlib.import_module(module))
        except (ImportError, AttributeError) as exc:
            raise PluginError(
                f"{self.kind} {self.name!r} (from plugin {self.plugin!r}) could not be loaded from "
                f"{self.factory!r}: {type(exc).__name__}: {exc}"
            ) from exc


class Registry:
    """Entries of one kind by name, each recording the plugin that added it.

    Examples:
        >>> registry = Registry("learner")
        >>> registry.add("noop", dict, description="does nothing")
        >>> registry.make("noop", updates=1)
        {'updates': 1}
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry] = {}
        self._plugin = "(direct)"

    def add(self, name: str, factory: Any, *, description: str = "") -> None:
        """Register `factory` under `name` for the plugin being called.

        Raises:
            PluginError: the name is not a plain identifier, or another plugin (or this one) already added it.
        """
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise PluginError(
                f"{self.kind} name {name!r} (from plugin {self._plugin!r}) must be letters, digits, '_', '-' or '.'"
            )
        if name in self._entries:
            first = self._entries[name].plugin
            raise PluginError(f"{self.kind} {name!r} registered by both {first!r} and {self._plugin!r}")
        self._entries[name] = Entry(self.kind, name, factory, self._plugin, description)

    def get(self, name: str) -> Entry:
        """The entry called `name`; `UnknownNameError` lists the known names."""
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}: known are {known} (see `rock-gym plugins`)"
            ) from None

    def load(self, name: str) -> Any:
        """The object registered as `name`, imported if it was given as a string."""
        return self.get(name).load()

    def make(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call the factory registered as `name` with these arguments."""
        return self.load(name)(*args, **kwargs)

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {sorted(self._entries)})"

    @contextmanager
    def adding_for(self, plugin: str) -> Iterator[Registry]:
        """Record entries added inside the block as coming from `plugin`."""
        previous, self._plugin = self._plugin, plugin
        try:
            yield self
        finally:
            self._plugin = previous


class PluginManager(pluggy.PluginManager):
    """pluggy's manager with rock_gym's specs, load failures, and the four registries (rebuilt after changes)."""

    def __init__(self) -> None:
        super().__init__(ENTRY_POINT_GROUP)
        self.add_hookspecs(hookspecs)
        self.failures: list[PluginFailure] = []
        self.distributions: dict[str, str] = {}  # plugin name -> "dist-name version" for entry-point plugins
        self._registries: dict[str, Registry] = {}

    def register(self, plugin: Any, name: str | None = None) -> str | None:
        """Register `plugin`; unlike plain pluggy, a `@hookimpl` matching no spec (a misspelling) is an error."""
        self._registries.clear()
        registered = super().register(plugin, name)
        unknown = [
            caller.name
            for caller in self.get_hookcallers(plugin) or []
            if not caller.has_spec()
            for impl in caller.get_hookimpls()
            if impl.plugin is plugin and not impl.optionalhook
        ]
        if unknown:
            self.unregister(plugin)
            known = ", ".join(spec for spec, _ in KINDS.values())
            raise pluggy.PluginValidationError(
                plugin, f"plugin {registered!r} implements unknown hooks {', '.join(unknown)}: known are {known}"
            )
        return registered

    def unregister(self, plugin: Any | None = None, name: str | None = None) -> Any | None:
        self._registries.clear()
        return super().unregister(plugin, name)

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        """Register the plugin of every entry point in `group`; a failing one is recorded, warned about, skipped."""
        for ep in importlib.metadata.entry_points(group=group):
            if self.is_blocked(ep.name):
                continue
            try:
                plugin = ep.load()
                if self.is_registered(plugin):
                    continue
                self.register(plugin, name=ep.name)
            except Exception as exc:  # noqa: BLE001 - any error in a third-party import must not stop the others
                self.failures.append(PluginFailure(ep, exc))
                warnings.warn(str(self.failures[-1]), PluginLoadWarning, stacklevel=2)
                continue
            if ep.dist is not None:
                self.distributions[ep.name] = f"{ep.dist.name} {ep.dist.version}"

    def registry(self, kind: str) -> Registry:
        """The registry of `kind` ("learners", "task_sources", "tool_formats" or "policies"), built on first use."""
        if kind not in self._registries:
            self._registries[kind] = self._collect(kind)
        return self._registries[kind]

    @property
    def learners(self) -> Registry:
        return self.registry("learners")

    @property
    def task_sources(self) -> Registry:
        return self.registry("task_sources")

    @property
    def tool_formats(self) -> Registry:
        return self.registry("tool_formats")

    @property
    def policies(self) -> Registry:
        return self.registry("policies")

    def _collect(self, kind: str) -> Registry:
        hook_name, word = KINDS[kind]
        registry = Registry(word)
        for impl in getattr(self.hook, hook_name).get_hookimpls():
            others = [plugin for plugin in self.get_plugins() if plugin is not impl.plugin]
            with registry.adding_for(impl.plugin_name):
                self.subset_hook_caller(hook_name, others)(registry=registry)
        return registry


class Builtins:
    """rock_gym's own learners, task sources, tool formats and policies: a plugin like any other.

    Everything heavy is named by a `"module:attr"` string, so registering imports nothing.
    """

    @hookimpl
    def rock_gym_add_learners(self, registry: Registry) -> None:
        registry.add("sft", "learners.sft:SFTLearner", description="behaviour cloning on model turns of trajectories")
        registry.add(
            "reinforce",
            "learners.reinforce:ReinforceLearner",
            description="token-level policy gradient with a group baseline (GRPO-style)",
        )
        registry.add(
            "ipa",
            "learners.ipa.learner:IPALearner",
            description="chunk-level RL with initialized resampling and an imitation fallback (the paper's IPA)",
        )

    @hookimpl
    def rock_gym_add_task_sources(self, registry: Registry) -> None:
        registry.add("load", "rock_gym.tasks:load", description="Harbor task dirs, JSONL files, SWE-bench rows")
        registry.add("builtin-swe", "rock_gym.tasks:builtin_swe_tasks", description="the built-in SWE tasks")
        registry.add(
            "terminal-families", "rock_gym.tasks:terminal_tasks", description="seeded procedural terminal tasks"
        )

    @hookimpl
    def rock_gym_add_tool_formats(self, registry: Registry) -> None:
        from rock_gym.tools.parsers import FORMATS

        for name, fmt in FORMATS.items():
            registry.add(name, fmt, description=_FORMAT_NOTES.get(name, ""))

    @hookimpl
    def rock_gym_add_policies(self, registry: Registry) -> None:
        for name, cls, note in _POLICIES:
            registry.add(name, f"learners.policies.{name}:{cls}", description=note)


_FORMAT_NOTES = {
    "hermes": "<tool_call>{json}</tool_call> blocks (Hermes, Qwen2.5)",
    "qwen3_coder": "<function=NAME><parameter=KEY> XML (Qwen3-Coder)",
    "openai": "a JSON list of OpenAI tool_calls",
}
_POLICIES = (
    ("hf", "HFPolicy", "transformers model from a path (hf:PATH), CPU or GPU"),
    ("vllm", "VLLMPolicy", "vLLM engine on GPU, with weight updates (vllm:PATH)"),
    ("openai", "OpenAIPolicy", "any OpenAI-compatible chat endpoint (openai:URL)"),
    ("expert", "ExpertPolicy", "replays the task's reference solution"),
)


def new_plugin_manager(*, builtins: bool = True, entry_points: bool = True) -> PluginManager:
    """A new manager with the specs, the built-ins (unless `builtins=False`) and the entry-point plugins.

    Tests use this for a fresh manager; everything else shares `get_plugin_manager()`.
    """
    pm = PluginManager()
    if builtins:
        pm.register(Builtins(), name=BUILTIN)
    if entry_points:
        pm.load_entry_points()
    return pm


@functools.cache
def get_plugin_manager() -> PluginManager:
    """The process-wide manager (built on first call; `get_plugin_manager.cache_clear()` rebuilds it)."""
    return new_plugin_manager()
