"""The hooks a rock_gym plugin may implement (pytest / pluggy style).

A plugin is any object (a module, a class instance) with functions marked `@rock_gym.hookimpl` and named after the
specs below. Third-party packages announce theirs in the `rock_gym` entry-point group; the built-ins register through
the same hooks. Each hook is called once per plugin with a `Registry` that records which plugin added each entry.

Specs only ever gain arguments (pluggy passes an implementation just the arguments it names), so plugins written
against an older version keep working.

Examples:
    >>> import rock_gym
    >>> class MyPlugin:
    ...     @rock_gym.hookimpl
    ...     def rock_gym_add_learners(self, registry):
    ...         registry.add("mine", "my_package.learner:MyLearner", description="my learner")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from rock_gym.plugins import Registry

hookspec = pluggy.HookspecMarker("rock_gym")


@hookspec
def rock_gym_add_learners(registry: Registry) -> None:
    """Add learners: `registry.add(name, factory, description=...)`.

    Args:
        registry: learners by name. A factory is a `learners.base.Learner` subclass (built through its
            `from_kwargs`), any callable taking keyword arguments and returning a learner, or a `"module:attr"`
            string naming one, imported only when the learner is made.
    """


@hookspec
def rock_gym_add_task_sources(registry: Registry) -> None:
    """Add task sources: callables that return a list of `rock_gym.tasks.Task`.

    Args:
        registry: task sources by name; a factory is a callable (or a `"module:attr"` string naming one) whose
            arguments select the tasks (a path, seeds, families, ...) and which returns `list[Task]`.
    """


@hookspec
def rock_gym_add_tool_formats(registry: Registry) -> None:
    """Add tool-call formats: how a model writes tool calls in its text.

    Args:
        registry: formats by name; the registered object is a `rock_gym.tools.ToolFormat` (a `parse`, `render`
            pair) or a `"module:attr"` string naming one.
    """


@hookspec
def rock_gym_add_policies(registry: Registry) -> None:
    """Add policies: what turns chat messages into model turns (an HF model, a vLLM engine, an API, a script).

    Args:
        registry: policies by name (the prefix of a `--policy NAME:ARG` option); a factory is a policy class or
            callable, or a `"module:attr"` string naming one, imported only when the policy is made.
    """
