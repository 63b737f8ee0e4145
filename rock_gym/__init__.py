"""rock_gym: container sandboxes as Gymnasium environments for training LLM agents.

Importing the package registers the rock/* environment ids; it imports no heavy dependency (docker, torch, ray).
"""

from typing import Any

from rock_gym.envs import ENV_IDS, register_envs

__version__ = "0.1.0"
__all__ = ["ENV_IDS", "get_plugin_manager", "hookimpl", "register_envs"]


def __getattr__(name: str) -> Any:
    # The plugin machinery (pluggy) loads on first use of `rock_gym.hookimpl` or `rock_gym.get_plugin_manager`.
    if name in ("hookimpl", "get_plugin_manager"):
        from rock_gym import plugins

        return getattr(plugins, name)
    raise AttributeError(f"module 'rock_gym' has no attribute {name!r}")
