"""The demo tells the same true story on any date: its data ends just before the day it takes
as today, the features it serves live are fresh, and the story's figures hold.

Three dates years apart: the shared small demo's (2025-07-20) and two more runs here."""

from __future__ import annotations

import io
import os
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from rich.console import Console

import modelyard
from modelyard.demo import DemoConfig, DemoResult, DemoState, run_demo
from modelyard.demo.registry import ALIAS, MODEL
from modelyard.demo.retraining import PIPELINE, TRIGGER_RULE
from modelyard.demo.serving import DAYS_SINCE

from .conftest import SMALL, SmallDemo, keeping_state

#: Years before and after the small demo's 2025-07-20; a month's last day, a leap year.
DATES = (date(2019, 2, 28), date(2024, 3, 1))


def _clean_environment(monkeypatch: pytest.MonkeyPatch, base: Path) -> None:
    for key in list(os.environ):
        if key.startswith("MODELYARD_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(base / "xdg-config"))


@pytest.mark.slow
@pytest.mark.parametrize("today", DATES, ids=str)
def test_the_story_holds_on_any_date(today: date, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _clean_environment(monkeypatch, tmp_path)
    seen: list[DemoState] = []
    console = Console(file=io.StringIO(), width=200)
    config = DemoConfig(path=tmp_path / "d", customers=SMALL.customers, seed=SMALL.seed,
                        today=today)
    result = run_demo(config, console=console, steps=keeping_state(seen))
    _check_story(result, seen[0], console.file.getvalue(), today)  # type: ignore[attr-defined]


def test_the_small_demo_tells_the_story_of_its_date(small_demo: SmallDemo) -> None:
    assert small_demo.config.today is not None
    _check_story(small_demo.result, small_demo.state, small_demo.output,
                 small_demo.config.today)


def _check_story(result: DemoResult, state: DemoState, output: str, today: date) -> None:
    """The data ends just before ``today``; what was served live is fresh; the registry,
    serving and monitoring chapters say what happened."""
    config = state.config
    out = " ".join(output.replace("│", " ").split())  # panels wrap lines between borders
    month = pd.Timestamp(today.replace(day=1), tz="UTC")
    assert result.today == today
    assert f"Today is {today:%Y-%m-%d} (set for the demo)" in out
    assert f"ends at the start of this month, {month:%Y-%m-%d}" in out

    # the history ends shortly before today
    claims = pd.read_parquet(result.data_files["claims"])
    assert month - pd.Timedelta(days=3) <= claims["event_time"].max() < month
    assert claims["event_time"].min() >= month - pd.DateOffset(months=config.months)

    # online features were read on the demo's today, found and fresh
    lookup = state.lookup
    assert lookup is not None and state.lookup_at is not None
    assert state.lookup_at.date() == today
    assert lookup.status[:-1] == ["found"] * (len(lookup) - 1)  # the last one is unknown
    assert lookup.status[-1] == "missing"

    # the live server judged the TTL on the same day: nothing expired, every value computed
    live = state.live
    assert live is not None and live.skipped is None and not live.failures
    assert live.features_at is not None and live.features_at.date() == today
    assert dict(live.statuses) == {"found": live.requests}
    assert "Every lookup found the customer's features fresh" in out
    with modelyard.connect(project=result.root) as yard:
        served = yard.read_predictions(MODEL, start=live.began, end=live.ended)
        parent = yard.get_run(result.parent_run_id)
        history = yard.monitoring.history(MODEL)
        moves = yard.models.history(MODEL, ALIAS)
        alerts = yard.monitoring.alerts(MODEL, limit=None)
    assert len(served) == live.requests == live.logged >= 100
    days = served[f"features.{DAYS_SINCE}"]
    assert days.notna().all() and (days >= 0).all()
    assert live.computed == live.requests
    assert parent.metrics["serving_days_since_computed"].value == live.requests
    assert parent.metrics["serving_lookups_found"].value == live.requests
    assert f"{live.requests:,} with {DAYS_SINCE} computed" in out
    assert "without it" not in out

    # promotions and refusals are what the story says they are
    registry = state.registry
    assert registry is not None and registry.attempts
    gated_in = {m.to_version for m in moves  # through the gates, in the registry step
                if m.action == "promote" and not m.reason.startswith("demo: promoted live")}
    for attempt in registry.attempts:
        assert attempt.promoted == (attempt.version in gated_in)
        assert attempt.promoted == (not attempt.failed)
        for _, gate, _ in attempt.failed:
            assert f"v{attempt.version} {gate}" in out
    came_from, went_to = live.promoted or (None, None)
    [moved] = [m for m in moves if m.reason.startswith("demo: promoted live")]
    assert moved.to_version == went_to and moved.from_version == came_from
    assert f"Version {went_to} was promoted over version {came_from}" in out

    # monitoring: one check per month after validation, in order, up to today's month
    starts = [pd.Timestamp(h["window"]["start"]) for h in history]
    ends = [pd.Timestamp(h["window"]["end"]) for h in history]
    assert starts == sorted(starts) and len(history) == 6
    assert starts[0] == month - pd.DateOffset(months=6) and ends[-1] == month
    assert all(h["rows"] > 0 for h in history)
    assert [bool(h["metrics"]) for h in history] == [True] * 5 + [False]  # last not settled
    assert alerts, "the drift of the last months fires at least one rule"
    watch, after = state.watch, state.after
    assert watch is not None and after is not None
    assert [m.month for m in watch.months + after.months] == [f"{s:%b %Y}" for s in starts]
    assert watch.health["requests"] == live.requests  # this run's traffic only

    # retraining: the first alert of the trigger's rule queued one run; on approval the
    # months after it were served and checked by the retrained version
    _check_retraining(result, state, history, moves, out)


def _check_retraining(result: DemoResult, state: DemoState, history: list[dict[str, Any]],
                      moves: list[Any], out: str) -> None:
    watch, after, retrain = state.watch, state.after, state.retrain
    assert watch is not None and after is not None and retrain is not None
    with modelyard.connect(project=result.root) as yard:
        runs = yard.pipelines.runs(PIPELINE, limit=None)
    fired = [i for i, m in enumerate(watch.months + after.months) if TRIGGER_RULE in m.rules]
    if watch.trigger is None:  # no month's error grew past the rule's bound
        assert not fired and runs == [] and after.months == []
        assert "11. Retraining Skipped:" in out
        return
    [run] = runs
    assert run.run_id == watch.trigger.run_id and fired[0] == len(watch.months) - 1
    assert retrain.run is not None and retrain.run.status == "succeeded", retrain.run.error
    versions = [h["version"] for h in history]
    final = retrain.final
    if final is not None and final.decision == "approved":
        assert moves[-1].to_version == final.version == after.version
        assert versions[len(watch.months):] == [final.version] * len(after.months)
        assert f"$ {retrain.command}" in out
    else:  # refused by the gates: production kept its version
        assert retrain.pending is not None and retrain.pending.decision == "refused"
        assert set(versions) == {watch.version}


def test_a_today_after_the_systems_date_is_refused(tmp_path: Path) -> None:
    later = pd.Timestamp.now(tz="UTC").date() + pd.Timedelta(days=400)
    with pytest.raises(modelyard.InvalidInputError, match="today") as caught:
        run_demo(DemoConfig(path=tmp_path / "d", customers=300, today=later),
                 console=Console(file=io.StringIO()))
    assert caught.value.details["field"] == "today"
    assert not (tmp_path / "d").exists()
