"""The real-project pipeline: project specs, project images with a passing baseline, injected bugs, review.

Importing this package loads pydantic only; the builder (docker) loads when one of its names is first used.
"""

from rock_gym.tasks.synth.specs import ProjectSpec, SpecError, load_specs, spec_for

__all__ = [
    "BuildError",
    "ProjectImage",
    "ProjectSpec",
    "SpecError",
    "SuiteError",
    "build_project_image",
    "fetch_sdist",
    "fetch_test_deps",
    "load_project_image",
    "load_specs",
    "run_suite",
    "spec_for",
]

_BUILD_NAMES = {
    "BuildError",
    "ProjectImage",
    "SuiteError",
    "build_project_image",
    "fetch_sdist",
    "fetch_test_deps",
    "load_project_image",
    "run_suite",
}


def __getattr__(name: str) -> object:
    if name in _BUILD_NAMES:
        from rock_gym.tasks.synth import build

        return getattr(build, name)
    raise AttributeError(f"module 'rock_gym.tasks.synth' has no attribute {name!r}")
