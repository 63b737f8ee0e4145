"""Safety: a monitor that checks every tool call for the behaviours agents showed under RL (see `monitor`).

Imports only the standard library, so the envs can use it without weight.
"""

from rock_gym.safety.monitor import ACTIONS, DEFAULT_WORKSPACE, Review, SafetyEvent, SafetyMonitor
from rock_gym.safety.rules import CATEGORIES, DEFAULT_RULES, Context, Rule

__all__ = [
    "ACTIONS",
    "CATEGORIES",
    "DEFAULT_RULES",
    "DEFAULT_WORKSPACE",
    "Context",
    "Review",
    "Rule",
    "SafetyEvent",
    "SafetyMonitor",
]
