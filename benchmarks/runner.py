"""The one runner behind every benchmark: time things, record the machine and commit, write JSON and a PNG."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent.parent / "results"


def timed(action: Callable[[], Any]) -> float:
    """Seconds one call of `action` takes."""
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def summary_ms(seconds: list[float]) -> dict[str, float]:
    """Median, p90, mean and count of a list of durations, in milliseconds."""
    ms = sorted(s * 1000 for s in seconds)
    p90 = ms[min(len(ms) - 1, int(round(0.9 * (len(ms) - 1))))]
    return {
        "median_ms": round(statistics.median(ms), 3),
        "p90_ms": round(p90, 3),
        "mean_ms": round(statistics.fmean(ms), 3),
        "n": len(ms),
    }


def machine() -> dict[str, Any]:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent
    ).stdout.strip()
    return {
        "commit": commit or None,
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def pyplot() -> Any:
    """matplotlib's pyplot on the file-only backend, or None (with a word) where matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no PNG (pip install 'rock-gym[bench]')")
        return None
    return plt


def write(
    name: str,
    figures: dict[str, Any],
    bars: dict[str, float],
    ylabel: str,
    title: str,
    directory: Path = RESULTS,
) -> Path:
    """Print the figures as JSON, save them to DIRECTORY/NAME.json (results/ by default), and draw `bars` to
    DIRECTORY/NAME.png."""
    directory.mkdir(parents=True, exist_ok=True)
    record = {"benchmark": name, "machine": machine(), "figures": figures}
    text = json.dumps(record, indent=2)
    print(text)
    path = directory / f"{name}.json"
    path.write_text(text + "\n")
    plt = pyplot()
    if plt is None:
        return path
    fig, ax = plt.subplots(figsize=(max(6, len(bars) * 1.3), 4))
    ax.bar(list(bars), list(bars.values()), color="#4C72B0")
    ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    for i, value in enumerate(bars.values()):
        ax.annotate(f"{value:.3g}", (i, value), ha="center", va="bottom", fontsize=8)
    plt.xticks(rotation=20, ha="right", fontsize=8)
    fig.tight_layout()
    fig.savefig(directory / f"{name}.png", dpi=120)
    plt.close(fig)
    return path


def runtime_of(engine: Any, container_id: str) -> str | None:
    """The OCI runtime a container really got (a runtime asked for but not registered may fall back to the default).

    Podman's Docker API says only "oci" there: its own /libpod inspect names the runtime, or the runtime's path.
    """
    if engine.backend == "podman":
        response = engine.api.get(f"{engine.api.base_url}/v4.0.0/libpod/containers/{container_id}/json", timeout=30)
        if response.ok and response.json().get("OCIRuntime"):
            return os.path.basename(response.json()["OCIRuntime"])
    return engine.api.inspect_container(container_id)["HostConfig"].get("Runtime")
