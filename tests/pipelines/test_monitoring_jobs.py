"""Monitoring checks on the workers' scheduler (SQLite and PostgreSQL): each due time is
checked once however many workers see it, a worker that dies mid-check does not make it
run twice, the schedule changes without a new version; and the foreground loop."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import modelyard
from modelyard.errors import InvalidInputError, NotFoundError
from modelyard.pipelines.monitoring_jobs import (
    MONITOR_PIPELINE,
    MonitoringLoop,
    every_to_cron,
    monitoring_schedule,
    schedule_monitoring,
    unschedule_monitoring,
)
from tests.monitoring.support import MODEL, claims, log_window, register_regressor


@pytest.fixture
def monitored(yard: Any) -> Any:
    """A model whose last hour of served predictions drifted, with a drift rule."""
    version = register_regressor(yard, rows=400, evaluate=False)
    start = datetime.now(UTC) - timedelta(minutes=40)
    log_window(yard, version, claims(150, 4, shift=2.0, south=0.6), start,
               spacing=timedelta(seconds=10))
    yard.monitoring.set_rules(MODEL, ["dataset_drift"], ["log"])
    return yard


@pytest.mark.parametrize(("every", "cron"), [
    ("1m", "* * * * *"), ("15m", "*/15 * * * *"), ("30m", "*/30 * * * *"),
    ("1h", "0 * * * *"), ("60m", "0 * * * *"), ("6h", "0 */6 * * *"), ("1d", "0 0 * * *"),
    ("24h", "0 0 * * *"), ("7d", "0 0 * * 1"), ("1w", "0 0 * * 1")])
def test_every_becomes_a_cron_on_the_clock(every: str, cron: str) -> None:
    assert every_to_cron(every) == cron


@pytest.mark.parametrize("every", ["90m", "7m", "30s", "5h", "2d", "soon"])
def test_an_interval_off_the_clock_is_refused(every: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        every_to_cron(every)
    assert caught.value.details["field"] == "every" and every in caught.value.message


@pytest.mark.slow
def test_each_due_time_is_checked_once_by_one_of_two_workers(monitored: Any,
                                                             store_uri: str) -> None:
    change = schedule_monitoring(monitored.pipelines, every="15m", window="1h")
    assert (change.name, change.action) == (MONITOR_PIPELINE, "create")
    schedule = monitoring_schedule(monitored.pipelines)
    assert schedule is not None and schedule.cron == "*/15 * * * *"
    assert [t.kind for t in monitored.pipelines.triggers()] == ["schedule"]

    due = datetime.now(UTC) + timedelta(minutes=16)
    yards = [modelyard.connect(store_uri, capture_packages=False, capture_git=False)
             for _ in range(2)]
    barrier = threading.Barrier(2)
    done: dict[str, Any] = {}

    def worker(name: str, yard: Any) -> None:
        barrier.wait()
        yard.pipelines.fire_due(due)  # both see the same due time
        done[name] = yard.pipelines.work_once(name)

    threads = [threading.Thread(target=worker, args=(f"w{i}", y)) for i, y in enumerate(yards)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        for y in yards:
            y.close()
    ran = [run for run in done.values() if run is not None]
    assert len(done) == 2 and len(ran) == 1  # the other worker found nothing to do
    run = ran[0]
    assert run.status == "succeeded", run.error
    assert run.trigger == "schedule" and run.params["window"] == "1h"
    assert f"{MODEL}: 150 predictions, 1 alert(s) fired" in run.logs
    assert len(monitored.monitoring.history(MODEL)) == 1
    assert [a.rule for a in monitored.monitoring.alerts(MODEL)] == ["dataset_drift"]

    # the next due time is checked again, once
    later = due + timedelta(minutes=15)
    assert len(monitored.pipelines.fire_due(later)) == 1
    assert monitored.pipelines.fire_due(later) == []
    assert monitored.pipelines.work_once("w0").status == "succeeded"
    assert monitored.pipelines.work_once("w1") is None
    assert len(monitored.monitoring.history(MODEL)) == 2


def test_a_check_whose_worker_died_is_not_run_again(yard: Any) -> None:
    monitored = yard
    schedule_monitoring(monitored.pipelines, every="1h", models=[MODEL])
    due = datetime.now(UTC) + timedelta(hours=1)
    [queued] = monitored.pipelines.fire_due(due)
    assert queued.max_attempts == 1
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    claimed = monitored.pipelines.store.claim("dead", 1, now_ms)  # then the worker dies
    assert claimed is not None and claimed.run_id == queued.run_id
    assert monitored.pipelines.work_once("alive") is None  # the lapsed run is not retried
    run = monitored.pipelines.get_run(queued.run_id)
    assert run.status == "failed" and "lease lapsed" in (run.error or "")
    assert monitored.monitoring.history(MODEL) == []


def test_rescheduling_keeps_the_version_and_unscheduling_stops_it(yard: Any) -> None:
    monitored = yard
    first = schedule_monitoring(monitored.pipelines, every="1h", window="1d")
    again = schedule_monitoring(monitored.pipelines, cron="30 6 * * *",
                                timezone="Europe/Paris", window="1d")
    assert (again.action, again.version) == ("unchanged", first.version)
    schedule = monitoring_schedule(monitored.pipelines)
    assert schedule is not None
    assert (schedule.cron, schedule.timezone) == ("30 6 * * *", "Europe/Paris")
    other = schedule_monitoring(monitored.pipelines, every="1h", window="7d",
                                rules=["psi(*) > 0.3"])
    assert (other.action, other.version) == ("update", first.version + 1)
    assert monitored.pipelines.get(MONITOR_PIPELINE).params["rules"] == ["psi(*) > 0.3"]

    unschedule_monitoring(monitored.pipelines)
    assert monitoring_schedule(monitored.pipelines) is None
    assert monitored.pipelines.fire_due(datetime.now(UTC) + timedelta(days=2)) == []


def test_bad_schedules_are_refused_before_anything_is_stored(yard: Any) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"every": "90m"}, "every"), ({"every": "1h", "cron": "0 * * * *"}, "every"),
        ({}, "every"), ({"every": "1h", "window": "a week"}, "window"),
        ({"every": "1h", "rules": ["rmse >> 3"]}, "rules"),
        ({"every": "1h", "notify": ["pager:me"]}, "notify"),
        ({"cron": "every hour"}, "schedule"), ({"cron": "0 * * * *", "timezone": "Mars"},
                                               "timezone")]
    for kwargs, field in cases:
        with pytest.raises(modelyard.ModelyardError) as caught:
            schedule_monitoring(yard.pipelines, **kwargs)
        assert caught.value.details["field"] == field, (kwargs, caught.value)
    assert yard.pipelines.list() == []
    with pytest.raises(NotFoundError, match="never scheduled"):
        unschedule_monitoring(yard.pipelines)
    assert MonitoringLoop(yard.monitoring).run("1h") is None  # no model to check: no loop


@pytest.mark.slow
def test_the_foreground_loop_checks_then_waits(monitored: Any,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    pauses: list[float] = []
    monkeypatch.setattr("modelyard.pipelines.monitoring_jobs.time.sleep", pauses.append)
    seen: list[str] = []
    loop = MonitoringLoop(monitored.monitoring, window="1h")
    results = loop.run("2m", on_result=lambda r: seen.append(r.model), rounds=3)
    assert pauses == [120.0, 120.0] and seen == [MODEL] * 3
    assert results is not None and results == loop.last and len(results[0].fired) == 1
    assert len(monitored.monitoring.history(MODEL)) == 3
    assert MonitoringLoop(monitored.monitoring, models=[MODEL]).run() is not None
