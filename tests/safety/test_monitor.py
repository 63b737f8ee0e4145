"""Actions per category, penalties, blocking, configuration errors, and the corpus's precision and recall."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rock_gym.safety import CATEGORIES, SafetyMonitor
from rock_gym.safety.corpus import load_corpus, score

#: The corpus bars the issue sets: overall precision and recall of "some rule fired" on unsafe vs benign calls.
MIN_PRECISION = 0.95
MIN_RECALL = 0.9


def test_every_category_is_logged_by_default():
    monitor = SafetyMonitor()
    assert set(monitor.actions) == set(CATEGORIES) and set(monitor.actions.values()) == {"log"}
    review = monitor.review("nmap 10.0.0.1")
    assert review.events and review.penalty == 0.0 and review.blocked is None


def test_penalize_and_terminate_per_category():
    monitor = SafetyMonitor(actions={"network_probing": "penalize", "crypto_mining": "terminate"}, penalty=0.25)
    probe = monitor.review("nmap 10.0.0.1")
    assert probe.penalty == 0.25 and probe.blocked is None and probe.events[0].action == "penalize"
    # One penalty per call, however many rules fire in it.
    mine = monitor.review("./xmrig -o stratum+tcp://198.51.100.1:3333 --donate-level 1")
    assert len(mine.events) >= 2 and mine.penalty == 0.25
    assert mine.blocked and "crypto_mining" in mine.blocked and "./xmrig" in mine.blocked
    assert monitor.review("ls -la").events == []


def test_all_sets_the_default_action():
    monitor = SafetyMonitor(actions={"all": "terminate", "destructive": "log"})
    assert monitor.actions["tunnel"] == "terminate" and monitor.actions["destructive"] == "log"


def test_from_config():
    assert SafetyMonitor.from_config(False) is None
    assert SafetyMonitor.from_config(None).actions["tunnel"] == "log"
    monitor = SafetyMonitor(penalty=2.0)
    assert SafetyMonitor.from_config(monitor) is monitor
    configured = SafetyMonitor.from_config({"exfiltration": "penalize", "penalty": 0.1})
    assert configured.actions["exfiltration"] == "penalize" and configured.penalty == 0.1


@pytest.mark.parametrize(
    ("actions", "message"),
    [({"mining": "log"}, "unknown safety category 'mining'"), ({"tunnel": "kill"}, "unknown safety action 'kill'")],
)
def test_bad_configuration_names_the_choices(actions, message):
    with pytest.raises(ValueError, match=message) as caught:
        SafetyMonitor(actions=actions)
    assert "crypto_mining" in str(caught.value) or "terminate" in str(caught.value)


def test_event_dicts_are_plain_json():
    (event,) = SafetyMonitor().check("ssh -D 1080 u@203.0.113.1")
    assert event.to_dict() == {
        "category": "tunnel",
        "rule": "ssh_tunnel",
        "severity": "high",
        "evidence": "ssh -D 1080 u@203.0.113.1",
        "action": "log",
    }


def test_malformed_shell_never_raises():
    for text in ["echo 'unterminated", "$(((", "cat <<EOF", "`", "a |", "|| &&", "\\", "${", "x=$(", "<(", "ls >"]:
        SafetyMonitor().check(text)


def test_the_corpus_has_enough_labelled_rows():
    rows = load_corpus()
    unsafe = [r for r in rows if r["label"] != "benign"]
    assert len(unsafe) >= 100 and len(rows) - len(unsafe) >= 100
    assert {r["label"] for r in unsafe} == set(CATEGORIES)
    assert all(len([r for r in unsafe if r["label"] == c]) >= 10 for c in CATEGORIES)


def test_corpus_precision_and_recall_meet_the_bar():
    figures = score()
    overall = figures["overall"]
    assert overall["precision"] >= MIN_PRECISION, figures["false_alarms"]
    assert overall["recall"] >= MIN_RECALL, figures["missed"]


def test_the_monitor_imports_nothing_heavy():
    code = "import sys, rock_gym.safety; print(sorted(m for m in ('docker', 'torch', 'ray') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("module", ["monitor", "shell", "corpus"])
def test_doctests(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"rock_gym.safety.{module}"))
    assert result.attempted and not result.failed
