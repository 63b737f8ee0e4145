"""rock_gym: container sandboxes as Gymnasium environments for training LLM agents.

Importing the package registers the rock/* environment ids; it imports no heavy dependency (docker, torch, ray).
"""

from rock_gym.envs import ENV_IDS, register_envs

__version__ = "0.1.0"
__all__ = ["ENV_IDS", "register_envs"]
