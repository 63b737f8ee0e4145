"""Safety monitor: precision and recall on the labelled corpus, overall and per category, and on its held-out rows.

    python benchmarks/safety_corpus.py

The corpus (`rock_gym/safety/corpus.jsonl`) labels agent tool calls as benign or with the category they belong to.
Rows marked `held_out` were written after the rules were tuned and scored without changing the rules afterwards:
their figures are the fairer estimate. Writes results/safety_corpus.json and .png.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runner import write  # noqa: E402

from rock_gym.safety.corpus import load_corpus, score  # noqa: E402
from rock_gym.safety.rules import CATEGORIES  # noqa: E402


def table(figures: dict) -> dict:
    return {name: figures[name] for name in ("overall", *CATEGORIES)}


def main() -> None:
    rows = load_corpus()
    every = score(rows=rows)
    held_out = score(rows=[r for r in rows if r.get("held_out")])
    figures = {
        "rows": {"unsafe": every["unsafe"], "benign": every["benign"]},
        "all": table(every),
        "held_out": {**table(held_out), "unsafe": held_out["unsafe"], "benign": held_out["benign"]},
        "missed": [r.get("command") or r["call"] for r in every["missed"]],
        "false_alarms": [{"call": r.get("command") or r["call"], "fired": r["fired"]} for r in every["false_alarms"]],
    }
    bars = {}
    for name in ("overall", *CATEGORIES):
        bars[f"{name} P"] = max(every[name]["precision"], 1e-3)
        bars[f"{name} R"] = max(every[name]["recall"], 1e-3)
    write("safety_corpus", figures, bars, "precision (P) / recall (R)", "Safety monitor on the labelled corpus")


if __name__ == "__main__":
    main()
