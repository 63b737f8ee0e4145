"""Learners, found by name through rock_gym's plugin manager (built-ins and third-party plugins alike).

Importing this package imports nothing heavy; a learner's module (and torch) loads when it is made.

Examples:
    >>> import learners
    >>> learners.make("no-such-learner")
    Traceback (most recent call last):
    ...
    rock_gym.plugins.UnknownNameError: unknown learner 'no-such-learner': known are ...
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from learners.base import Learner, LearnerConfig

if TYPE_CHECKING:
    from rock_gym.plugins import PluginManager

__all__ = ["Learner", "LearnerConfig", "make"]


def make(name: str, *, plugin_manager: PluginManager | None = None, **kwargs: Any) -> Learner:
    """Build the learner registered as `name` with these config fields.

    Args:
        name: a registered learner (`rock-gym plugins` lists them), e.g. "reinforce" or "plain-reinforce".
        plugin_manager: where to look it up (default: `rock_gym.get_plugin_manager()`).
        **kwargs: fields of the learner's config (a `Learner` subclass) or arguments of its factory.

    Raises:
        rock_gym.plugins.UnknownNameError: no learner of that name; the message lists the known ones.
        rock_gym.plugins.PluginError: the learner's module could not be imported.
    """
    if plugin_manager is None:
        from rock_gym.plugins import get_plugin_manager

        plugin_manager = get_plugin_manager()
    factory = plugin_manager.learners.load(name)
    if isinstance(factory, type) and issubclass(factory, Learner):
        return factory.from_kwargs(**kwargs)
    return factory(**kwargs)
