"""Synthesis throughput: validated tasks per minute from one project whose suite runs in about a second.

    python benchmarks/synth_throughput.py --project inflection==0.5.1 --tasks 40 --workers 2

(a) `synth`: tasks accepted per minute of wall time, setup included (image reuse, coverage, worker start). Every
    accepted task has passed the review's runs: the mutant fails 1..cap baseline tests, a rerun fails the same ones,
    the gold patch makes the whole baseline pass.
(b) `validate` over the same tasks, each check in a fresh container: gold passes, no-op fails, the expert turns
    resolve it through rock/SWE-v0; tasks per minute.
(c) end to end: tasks that passed (b) per minute of (a) + (b).

The machine's load average is recorded before and after: other processes sharing the cores slow every figure.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runner import write  # noqa: E402

from rock_gym.tasks import load  # noqa: E402
from rock_gym.tasks.synth import spec_for  # noqa: E402
from rock_gym.tasks.synth.pipeline import synth  # noqa: E402
from rock_gym.tasks.synth.validate import validate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", default="inflection==0.5.1")
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-function", type=int, default=0, help="candidates per covered function; 0: all")
    parser.add_argument("--backend", default="docker")
    parser.add_argument("--out", default=None, help="output directory (default: a temporary one)")
    args = parser.parse_args()

    out = Path(args.out or tempfile.mkdtemp(prefix="rock-gym-synth-"))
    load_before = os.getloadavg()
    report = synth(
        spec_for(args.project),
        args.tasks,
        out,
        backend=args.backend,
        workers=args.workers,
        seed=args.seed,
        max_per_function=args.per_function or None,
    )
    load_mid = os.getloadavg()
    started = time.monotonic()
    checked = validate(load(out), backend=args.backend, workers=args.workers)
    validate_seconds = time.monotonic() - started
    load_after = os.getloadavg()

    synth_rate = report.tasks_per_minute
    validate_rate = 60.0 * checked.passed / validate_seconds
    end_to_end = 60.0 * checked.passed / (report.seconds + validate_seconds)
    figures = {
        "project": args.project,
        "workers": args.workers,
        "seed": args.seed,
        "synth": report.to_json(),
        "validate": {k: v for k, v in checked.to_json().items() if k != "checks"},
        "synth_tasks_per_minute": round(synth_rate, 2),
        "validate_tasks_per_minute": round(validate_rate, 2),
        "end_to_end_validated_tasks_per_minute": round(end_to_end, 2),
        "load_average_1m": {"before": load_before[0], "after_synth": load_mid[0], "after_validate": load_after[0]},
        "out_dir": str(out),
    }
    write(
        "synth_throughput",
        figures,
        {
            "synth (review-validated)": synth_rate,
            "validate (fresh containers)": validate_rate,
            "synth + validate": end_to_end,
        },
        "tasks per minute",
        f"{args.project}: tasks/min on {os.cpu_count()} cores, {args.workers} workers",
    )


if __name__ == "__main__":
    main()
