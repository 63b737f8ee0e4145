"""Registers the rock/* environments with lazy "module:Class" entry points: nothing heavy is imported here."""

from gymnasium.envs.registration import register, registry

ENV_IDS = ("rock/SWE-v0", "rock/Terminal-v0")


def register_envs() -> None:
    """Register every rock/* id (idempotent)."""
    if "rock/SWE-v0" not in registry:
        register(
            id="rock/SWE-v0",
            entry_point="rock_gym.envs.swe:SWEEnv",
            vector_entry_point="rock_gym.envs.vector:SWEVectorEnv",
            nondeterministic=True,  # commands see wall-clock time, and info carries their durations
            disable_env_checker=True,
        )
    if "rock/Terminal-v0" not in registry:
        register(
            id="rock/Terminal-v0",
            entry_point="rock_gym.envs.terminal:TerminalEnv",
            vector_entry_point="rock_gym.envs.vector:TerminalVectorEnv",
            nondeterministic=True,
            disable_env_checker=True,
        )


register_envs()
