"""Monitoring's store on SQLite and PostgreSQL: a check and its alerts land together or not at
all; history in order; rules and references replaced whole."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from modelyard.backends.metadata.monitoring import (
    AlertRecord,
    ReferenceRecord,
    ResultRecord,
    RulesRecord,
)
from modelyard.backends.metadata.sql.engine import make_engine
from modelyard.backends.metadata.sql.monitor_store import SqlMonitorStore
from modelyard.errors import NotFoundError, StorageError


@pytest.fixture
def store(store_uri: str) -> Iterator[SqlMonitorStore]:
    engine = make_engine(store_uri)
    try:
        yield SqlMonitorStore(engine)
    finally:
        engine.dispose()


def _result(n: int, model: str = "m") -> ResultRecord:
    return ResultRecord(f"r{n}", model, 1, n * 100, n * 100 + 100, 1_000 + n, 10 * n,
                        {"drifted_share": n / 10}, {"rows": 10 * n, "drift": {"n": n}})


def _alert(alert_id: str, result_id: str) -> AlertRecord:
    return AlertRecord(alert_id, result_id, "m", 1, "dataset_drift", "warning", "drifted",
                       0.5, 2_000, {"drifted_share": 0.5})


def test_a_check_and_its_alerts_are_stored_together_or_not_at_all(
        store: SqlMonitorStore) -> None:
    store.save_result(_result(1), [_alert("a1", "r1")])
    with pytest.raises(StorageError):  # the second alert repeats an id: nothing of r2 lands
        store.save_result(_result(2), [_alert("a2", "r2"), _alert("a1", "r2")])
    assert [r.result_id for r in store.results("m")] == ["r1"]
    assert [a.alert_id for a in store.alerts("m")] == ["a1"]
    with pytest.raises(NotFoundError):
        store.get_result("r2")


def test_history_is_oldest_first_and_full_results_on_demand(store: SqlMonitorStore) -> None:
    for n in (3, 1, 2):
        store.save_result(_result(n), [])
    store.save_result(_result(9, model="other"), [])
    assert [r.result_id for r in store.results("m")] == ["r1", "r2", "r3"]
    assert [r.result_id for r in store.results("m", limit=2)] == ["r2", "r3"]
    assert [r.result_id for r in store.results("m", start_us=300, end_us=500)] == ["r2", "r3"]
    assert store.results("m")[0].result == {}  # summaries only
    assert store.results("m", full=True)[0].result == {"rows": 10, "drift": {"n": 1}}
    assert store.get_result("r3").summary == {"drifted_share": 0.3}


def test_deliveries_are_recorded_on_the_stored_alert(store: SqlMonitorStore) -> None:
    store.save_result(_result(1), [_alert("a1", "r1")])
    store.record_deliveries("a1", [{"target": "log", "ok": True, "detail": "logged"}])
    [alert] = store.alerts()
    assert alert.deliveries == [{"target": "log", "ok": True, "detail": "logged"}]
    assert alert.evidence == {"drifted_share": 0.5}
    with pytest.raises(NotFoundError):
        store.record_deliveries("nope", [])


def test_rules_and_references_are_replaced_whole(store: SqlMonitorStore) -> None:
    assert store.rules("m") is None and store.ruled_models() == []
    store.set_rules(RulesRecord("m", [{"kind": "quality"}], ["log"], 1))
    store.set_rules(RulesRecord("m", [{"kind": "dataset_drift"}], ["webhook:x"], 2))
    found = store.rules("m")
    assert found is not None and found.rules == [{"kind": "dataset_drift"}]
    assert found.notify == ["webhook:x"] and store.ruled_models() == ["m"]
    assert store.reference("m", 1) is None
    store.set_reference(ReferenceRecord("m", 1, "a" * 64, 10, 1))
    store.set_reference(ReferenceRecord("m", 1, "b" * 64, 20, 2))
    ref = store.reference("m", 1)
    assert ref is not None and (ref.profile_sha256, ref.rows) == ("b" * 64, 20)
