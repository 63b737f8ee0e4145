"""The layout tells the architecture: each layer imports only layers below it (or its own floor)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: module prefix -> floor; data flows task -> sandbox -> env -> policy -> learner, one way.
FLOORS = {
    "rock_gym.sandbox": 1,
    "rock_gym.safety": 1,
    "rock_gym.tools": 2,
    "rock_gym.tasks": 2,
    "rock_gym.plugins": 2,
    "rock_gym.hookspecs": 2,
    "rock_gym.envs": 3,
    "rock_gym.agent": 4,
    "learners": 5,
    "rock_gym.cli": 6,
    "rock_gym": 6,  # the package root registers the envs
}


def floor(module: str) -> int | None:
    best = max(
        (prefix for prefix in FLOORS if module == prefix or module.startswith(prefix + ".")), key=len, default=None
    )
    return FLOORS[best] if best else None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [f"{node.module}.{alias.name}" for alias in node.names]  # a name may be a submodule
    return found


SOURCES = sorted([*ROOT.glob("rock_gym/**/*.py"), *ROOT.glob("learners/**/*.py")])


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_imports_a_layer_above_it(path):
    own = floor(module_name(path))
    assert own is not None, f"{path} is on no floor: add its package to FLOORS"
    upward = [name for name in imports(path) if (floor(name) or 0) > own]
    assert not upward, f"{module_name(path)} (floor {own}) imports from above: {upward}"
