"""The demo's monitoring step: the later months are logged and labelled, each month is
checked and stored, the shift the data carries is found, alerts reach the command notifier,
and the report is written."""

from __future__ import annotations

import json
from pathlib import Path

import modelyard
from modelyard.demo.monitoring import INBOX, REPORT
from modelyard.demo.registry import MODEL

from .conftest import SmallDemo


def test_the_later_months_are_checked_and_the_shift_is_found(small_demo: SmallDemo) -> None:
    out = " ".join(small_demo.output.split())
    assert "10. Monitoring" in out and "One stored check per month" in out
    root = Path(small_demo.result.root)
    with modelyard.connect(project=root) as yard:
        history = yard.monitoring.history(MODEL)
        logged = yard.read_predictions(MODEL)
    assert len(history) == 6  # one check per month after validation
    assert all(h["rows"] > 0 for h in history)
    first, last = history[0], history[-1]
    assert last["drifted_share"] > first["drifted_share"]
    labelled = [h for h in history if h["metrics"]]
    assert len(labelled) == 5  # the last month has not settled yet
    assert all("rmse" in h["metrics"] for h in labelled)  # measured, month by month
    from datetime import datetime

    end_us = int(datetime.fromisoformat(last["window"]["end"]).timestamp() * 1e6)
    assert sum(h["rows"] for h in history) == int((logged["at_us"] < end_us).sum())
    report = root / REPORT
    assert report.is_file() and "<svg" in report.read_text()


def test_alerts_fired_and_reached_the_command_notifier(small_demo: SmallDemo) -> None:
    root = Path(small_demo.result.root)
    with modelyard.connect(project=root) as yard:
        alerts = yard.monitoring.alerts(MODEL, limit=None)
    assert alerts, "the shift should fire at least one rule"
    assert all(a.deliveries and all(d["ok"] for d in a.deliveries) for a in alerts)
    filed = [json.loads(line) for line in (root / INBOX).read_text().splitlines()]
    assert sorted(a["message"] for a in filed) == sorted(a.message for a in alerts)
