"""The learning benchmark's short mode, as CI runs it: expert → SFT → IPA and REINFORCE on the same env-step budget,
and initialized resampling on a family the warm start never saw, in real sandboxes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.container, pytest.mark.slow, pytest.mark.timeout(900)]
SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "learning.py"


def test_the_short_learning_run_writes_its_curves_and_resampling_succeeds_where_plain_rollouts_do_not(tmp_path) -> None:  # type: ignore[no-untyped-def]
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--short", "--out", str(tmp_path)], capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "learning_short.json").read_text())
    figures = report.get("figures", report)
    final = figures["final"]
    for method in ("ipa", "reinforce"):
        assert final[method]["episodes"] > 0 and 0.0 <= final[method]["success_rate"] <= 1.0
        assert final[method]["env_steps"][0] > 0
    budgets = [final[m]["env_steps"][0] for m in ("ipa", "reinforce")]
    assert max(budgets) - min(budgets) <= 0.25 * max(budgets)  # the same env-step budget, to within an update
    assert (tmp_path / "learning_short.png").exists() and (tmp_path / "learning_short_resampling.png").exists()
    # On the family the warm start never saw, plain rollouts succeed nowhere; starts after expert prefixes do.
    modes = {run["mode"]: run["success_by_start"] for run in figures["resampling"]}
    assert sum(s for s, _ in modes["none"].values()) == 0
    resampled = [s for mode in ("parallel", "rollback") for k, (s, _) in modes[mode].items() if int(k) > 0]
    assert sum(resampled) > 0, modes
