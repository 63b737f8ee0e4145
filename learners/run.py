"""A training run in a folder: the resolved config, metrics as JSON lines, checkpoints, plots; resumable.

``rock-gym train`` drives any registered learner through `Run`:

    runs/ipa1/config.toml         the learner's name and its resolved config (every field, defaults included)
    runs/ipa1/metrics.jsonl       one JSON line per update
    runs/ipa1/checkpoints/N/      the weights after update N (save_pretrained) and learner_state.pkl (optimizer,
                                  sampler and RNG states, the update count), when the learner has state
    runs/ipa1/metrics.png         the curves: success rate, chunk return, gradient norm, masked-chunk fraction,
                                  imitation share, loss (whichever the learner reports)

A resumed run (`Run.resume`) loads the newest checkpoint's weights and state and goes on, appending to the same
metrics: the curve continues where it stopped.

Examples:
    >>> run = Run.start("ipa", "runs/ipa1", {"policy": "hf:/models/tiny"})   # doctest: +SKIP
    >>> run.train(10)                                                                           # doctest: +SKIP
    >>> Run.resume("runs/ipa1").train(10)                     # updates 11..20                  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import math
import pickle
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import learners
from learners.base import Learner
from learners.config import EnvConfig

#: The metrics plotted, in this order, when the learner reports them.
CURVES = ("success_rate", "chunk_return", "grad_norm", "masked_fraction", "imitation_share", "loss")
STATE_FILE = "learner_state.pkl"


class Run:
    """One training run's folder and its learner."""

    def __init__(self, name: str, folder: str | Path, learner: Learner, checkpoint_every: int = 1) -> None:
        self.name, self.folder, self.learner = name, Path(folder), learner
        self.checkpoint_every = max(1, checkpoint_every)
        self.metrics_path = self.folder / "metrics.jsonl"

    # -- starting and resuming ------------------------------------------------------------------------------------

    @classmethod
    def start(cls, name: str, folder: str | Path, settings: dict[str, Any], checkpoint_every: int = 1) -> Run:
        """A new run of learner ``name`` with these config fields (EnvConfig's may be given flat)."""
        folder = Path(folder)
        if (folder / "metrics.jsonl").exists():
            raise FileExistsError(
                f"{folder} already holds a run: resume it (--resume {folder}) or choose another --out"
            )
        learner = learners.make(name, **settings)
        folder.mkdir(parents=True, exist_ok=True)
        write_config(folder / "config.toml", name, learner.config)
        return cls(name, folder, learner, checkpoint_every)

    @classmethod
    def resume(cls, folder: str | Path, config: str | Path | None = None, checkpoint_every: int = 1) -> Run:
        """The run in ``folder`` from its newest checkpoint (``config``: another config file to use instead)."""
        folder = Path(folder)
        name, settings = read_config(Path(config) if config else folder / "config.toml")
        newest = latest_checkpoint(folder)
        if newest is None:
            return cls(name, folder, learners.make(name, **settings), checkpoint_every)
        if "policy" in settings:
            settings["policy"] = f"hf:{newest}"
        learner = learners.make(name, **settings)
        state_file = newest / STATE_FILE
        if state_file.exists():
            learner.load_state_dict(pickle.loads(state_file.read_bytes()))
        return cls(name, folder, learner, checkpoint_every)

    # -- training -------------------------------------------------------------------------------------------------

    @property
    def updates_done(self) -> int:
        return int(getattr(self.learner, "updates_done", len(read_metrics(self.metrics_path))))

    def train(
        self, updates: int, on_update: Callable[[dict[str, float]], None] | None = None
    ) -> list[dict[str, float]]:
        """Run ``updates`` more updates, writing each one's metrics line, checkpoints and, at the end, the plot."""
        done = []
        try:
            for _ in range(updates):
                (metrics,) = self.learner.train(1)
                self._append(metrics)
                done.append(metrics)
                if self.updates_done % self.checkpoint_every == 0:
                    self.checkpoint()
                if on_update is not None:
                    on_update(metrics)
        finally:
            if done and self.updates_done % self.checkpoint_every:
                self.checkpoint()
            plot_metrics(self.metrics_path, self.folder / "metrics.png", title=f"{self.name} · {self.folder.name}")
        return done

    def checkpoint(self) -> Path:
        """Write the learner's weights and state under checkpoints/<update>; older checkpoints but one are removed."""
        target = self.folder / "checkpoints" / str(self.updates_done)
        self.learner.save(target)
        state = self.learner.state_dict()
        if state:
            (target / STATE_FILE).write_bytes(pickle.dumps(state))
        for old in sorted(checkpoints(self.folder), key=lambda p: int(p.name))[:-2]:
            _remove_tree(old)
        return target

    def close(self) -> None:
        self.learner.close()

    def _append(self, metrics: dict[str, float]) -> None:
        with self.metrics_path.open("a") as out:
            out.write(json.dumps({k: _json_number(v) for k, v in metrics.items()}) + "\n")


# -- config files ---------------------------------------------------------------------------------------------------


def write_config(path: Path, name: str, config: Any) -> None:
    """The learner's name and its resolved config as TOML (None fields listed under ``none``: TOML has no null)."""
    import tomli_w

    fields = dataclasses.asdict(config)
    env = fields.pop("env", {})
    if not isinstance(env.get("tasks"), (str, type(None))):
        raise ValueError("tasks given as objects cannot be written to config.toml: give a JSONL file or task dirs")
    none = [k for k, v in fields.items() if v is None] + [f"env.{k}" for k, v in env.items() if v is None]
    document = {
        "learner": name,
        "none": none,
        "config": {k: v for k, v in fields.items() if v is not None},
        "env": {k: v for k, v in env.items() if v is not None},
    }
    path.write_text(tomli_w.dumps(document))


def read_config(path: Path) -> tuple[str, dict[str, Any]]:
    """The learner's name and its config fields (with ``env`` as an `EnvConfig`) from a run's config.toml."""
    document = tomllib.loads(path.read_text())
    if "learner" not in document:
        raise ValueError(f"{path} has no 'learner' key: is it a rock-gym run's config.toml?")
    settings = dict(document.get("config", {}))
    env = dict(document.get("env", {}))
    for name in document.get("none", []):
        if name.startswith("env."):
            env[name[4:]] = None
        else:
            settings[name] = None
    settings["env"] = EnvConfig.coerce(env)
    return str(document["learner"]), settings


# -- metrics and checkpoints ------------------------------------------------------------------------------------------


def read_metrics(path: Path) -> list[dict[str, float]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def checkpoints(folder: Path) -> list[Path]:
    root = folder / "checkpoints"
    return [p for p in root.iterdir() if p.is_dir() and p.name.isdigit()] if root.exists() else []


def latest_checkpoint(folder: Path) -> Path | None:
    found = checkpoints(folder)
    return max(found, key=lambda p: int(p.name)) if found else None


def plot_metrics(metrics_path: Path, png: Path, title: str = "") -> Path | None:
    """The run's curves, one panel per reported metric of `CURVES`; None where matplotlib is missing."""
    rows = read_metrics(metrics_path)
    curves = [name for name in CURVES if any(name in row for row in rows)]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    if not curves:
        return None
    fig, axes = plt.subplots(1, len(curves), figsize=(3.2 * len(curves), 2.8), squeeze=False)
    for ax, name in zip(axes[0], curves, strict=True):
        points = [(row.get("update", i + 1), row[name]) for i, row in enumerate(rows) if _finite(row.get(name))]
        ax.plot([x for x, _ in points], [y for _, y in points], marker=".")
        ax.set_title(name.replace("_", " "))
        ax.set_xlabel("update")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _json_number(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
