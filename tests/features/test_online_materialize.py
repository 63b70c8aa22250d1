"""Materialization and online lookups through the public API, on the SQLite file and Redis.

Every value served online is compared with what a training set computes for the same
(entity, instant): the definition of correct for the online store.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

import modelyard
from modelyard import (
    Entity,
    Feature,
    FeatureGroup,
    InvalidInputError,
    NotFoundError,
    Source,
    Yard,
)
from modelyard.features.codec import decode

T0 = datetime(2025, 1, 1, tzinfo=UTC)
STAMP = pa.timestamp("us", tz="UTC")
US = timedelta(microseconds=1)


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


customer = Entity("customer", "customer_id")
events = Source.frame("events", timestamp="ts")
stats = FeatureGroup("stats", entity=customer, source=events, ttl="5d", features=[
    Feature("amount", "amount"),
    Feature("kind", "kind"),
    Feature("seen", "ts"),
    Feature("on_day", "day"),
    Feature("amount_sum_3d", "sum(amount)", window="3d"),
    Feature("events_7d", "count(*)", window="7d"),
])
totals = FeatureGroup("totals", entity=customer, source=events, features=[
    Feature("doubled", "amount * 2"),
    Feature("amount_max_10d", "max(amount)", window="10d"),
])
ROW = ["amount", "kind", "seen", "on_day"]
WINDOW = ["amount_sum_3d", "events_7d"]
ALL = [f"stats:{n}" for n in ROW + WINDOW]


def event_rows(keys: list[int], start: float, end: float, per_key: int, seed: int
               ) -> pa.Table:
    """``per_key`` events per customer at random instants between day ``start`` and ``end``."""
    rng = random.Random(seed)
    rows: list[tuple[int, datetime, float, str, date]] = []
    for key in keys:
        for _ in range(per_key):
            ts = day(start) + timedelta(minutes=rng.randint(0, int((end - start) * 1440)))
            amount = float("nan") if rng.random() < 0.08 else round(rng.uniform(1, 100), 2)
            rows.append((key, ts, amount, rng.choice(["glass", "theft", "fire"]), ts.date()))
    return table(rows)


def table(rows: list[tuple[int, datetime, float, str, date]]) -> pa.Table:
    keys, ts, amounts, kinds, days = (list(c) for c in zip(*rows, strict=True)) if rows else (
        [], [], [], [], [])
    return pa.table({"customer_id": pa.array(keys, pa.int64()), "ts": pa.array(ts, STAMP),
                     "amount": pa.array(amounts, pa.float64()), "kind": pa.array(kinds),
                     "day": pa.array(days, pa.date32())})


KEYS = list(range(1, 41))
AT = day(12)


def connect(project: Path, online_uri: str, **settings: Any) -> Yard:
    return modelyard.connect(project=project, online_uri=online_uri, capture_git=False,
                             capture_packages=False, **settings)


@pytest.fixture
def oyard(project: Path, online_uri: str) -> Iterator[Yard]:
    """A project with ``stats`` and ``totals`` applied and 40 customers' events ingested;
    customer 99 has events only from day 20 on."""
    yard = connect(project, online_uri)
    yard.apply([customer, events, stats, totals])
    yard.ingest(events, event_rows(KEYS, 0, 16, 8, seed=1))
    yard.ingest(events, event_rows([99], 20, 22, 3, seed=2))
    try:
        yield yard
    finally:
        yard.close()


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
    if isinstance(a, datetime) and isinstance(b, datetime):
        return a.astimezone(UTC) == b.astimezone(UTC)
    return bool(a == b) and type(a) is type(b)


def training_rows(yard: Yard, keys: list[int], at: datetime, features: list[str]
                  ) -> dict[int, dict[str, Any]]:
    spine = pa.table({"customer_id": pa.array(keys, pa.int64()),
                      "ts": pa.array([at] * len(keys), STAMP)})
    rows = yard.training_set(spine, features).table.to_pylist()
    return {r["customer_id"]: r for r in rows}


def assert_online_equals_training(yard: Yard, keys: list[int], at: datetime,
                                  features: list[str] = ALL) -> dict[str, list[Any]]:
    online = yard.online_features(features, {"customer_id": keys}, at=at).to_dict()
    offline = training_rows(yard, keys, at, features)
    names = [f.split(":", 1)[1] for f in features]
    for i, key in enumerate(keys):
        for name in names:
            assert same(online[name][i], offline[key][name]), (key, name, online[name][i],
                                                                offline[key][name])
    return online


def stored(yard: Yard, table_name: str = "stats@v1") -> dict[str, bytes | None]:
    store = yard.features.online.store
    keys = sorted(store.keys(table_name))
    return dict(zip(keys, store.read([(table_name, keys)])[0], strict=True))


def last_event(rows: pa.Table, key: int, at: datetime) -> datetime | None:
    times = [r["ts"] for r in rows.to_pylist() if r["customer_id"] == key and r["ts"] <= at]
    return max(times) if times else None


# --- full materialization -----------------------------------------------------------------

def test_full_materialization_equals_the_training_set(oyard: Yard) -> None:
    records = oyard.materialize(at=AT)
    assert {r.group for r in records} == {"stats", "totals"}
    record = next(r for r in records if r.group == "stats")
    assert record.status == "done" and record.mode == "full"
    assert record.entities == len(KEYS) and record.rows_written == len(KEYS)
    assert record.chunks_done == record.chunks_total == 1
    assert oyard.features.online.store.count("stats@v1") == len(KEYS)
    online = assert_online_equals_training(oyard, KEYS, AT)
    assert_online_equals_training(oyard, KEYS, AT, ["totals:doubled", "totals:amount_max_10d"])
    rows = oyard.features.tables.read("events")
    for i, key in enumerate(KEYS):
        newest = last_event(rows, key, AT)
        assert newest is not None
        expected = "expired" if AT - newest > timedelta(days=5) else "found"
        assert online["status"][i] == expected
        assert online["seen"][i] == (newest if expected == "found" else None)
    assert "expired" not in online["status"] or "found" in online["status"]


def test_materialize_in_the_future_is_refused(oyard: Yard) -> None:
    with pytest.raises(InvalidInputError, match="future"):
        oyard.materialize("stats", at=datetime.now(UTC) + timedelta(hours=1))
    with pytest.raises(InvalidInputError, match="timezone"):
        oyard.materialize("stats", at=datetime(2025, 1, 1))
    assert oyard.features.online.history() == []


def test_entities_with_history_only_after_at_are_missing(oyard: Yard) -> None:
    (record,) = oyard.materialize("stats", at=AT)
    assert record.entities == len(KEYS)
    result = oyard.online_features(ALL, {"customer_id": [99, 1, 12345]}, at=AT)
    assert result.status[0] == "missing" and result.status[2] == "missing"
    assert result.status[1] in ("found", "expired")
    assert all(result.values[n][0] is None for n in [*ROW, "amount_sum_3d"])
    assert result.values["events_7d"][0] == 0  # a count over no rows, as offline
    assert_online_equals_training(oyard, [99, 1, 12345], AT)
    assert result.group_status == {"stats@v1": result.status}
    (later,) = oyard.materialize("stats", at=day(21))
    assert later.entities == len(KEYS) + 1
    assert oyard.online_features(ALL, {"customer_id": 99}, at=day(21)).status == ["found"]


# --- TTL ----------------------------------------------------------------------------------

@pytest.fixture
def ttl_yard(project: Path, online_uri: str) -> Iterator[Yard]:
    """Customer 1 with events on days 0 and 2 (ttl 5d), materialized as of day 3."""
    yard = connect(project, online_uri)
    yard.apply([stats])
    yard.ingest(events, table([(1, day(0), 10.0, "glass", day(0).date()),
                               (1, day(2), 20.0, "fire", day(2).date())]))
    yard.materialize("stats", at=day(3))
    try:
        yield yard
    finally:
        yard.close()


def test_ttl_boundary_is_still_found(ttl_yard: Yard) -> None:
    edge = day(2) + timedelta(days=5)
    found = ttl_yard.online_features(ALL, {"customer_id": [1]}, at=edge)
    assert found.status == ["found"]
    assert found.values["amount"] == [20.0] and found.values["kind"] == ["fire"]
    assert found.values["seen"] == [day(2)] and found.values["on_day"] == [day(2).date()]
    # the offline engine's rule is the same: ts - event <= ttl is fresh
    offline = training_rows(ttl_yard, [1], edge, ["stats:amount"])
    assert offline[1]["amount"] == 20.0


def test_ttl_past_the_boundary_expires_row_features_and_keeps_windows(ttl_yard: Yard) -> None:
    late = day(2) + timedelta(days=5) + US
    result = ttl_yard.online_features(ALL, {"customer_id": [1]}, at=late)
    assert result.status == ["expired"]
    assert result.group_status == {"stats@v1": ["expired"]}
    assert all(result.values[n] == [None] for n in ROW)
    # window values are those as of the materialization (day 3)
    assert result.values["amount_sum_3d"] == [20.0]  # (day 0, day 3]: day 0 is out
    assert result.values["events_7d"] == [2]
    assert training_rows(ttl_yard, [1], late, ["stats:amount"])[1]["amount"] is None


def test_a_group_without_ttl_never_expires(project: Path, online_uri: str) -> None:
    with connect(project, online_uri) as yard:
        yard.apply([totals])
        yard.ingest(events, table([(1, day(0), 10.0, "glass", day(0).date())]))
        yard.materialize(at=day(1))
        result = yard.online_features("totals:doubled", {"customer_id": [1]},
                                      at=day(1000))
        assert result.status == ["found"] and result.values["doubled"] == [20.0]


def test_lookup_ttl_defaults_to_now(ttl_yard: Yard) -> None:
    # day 2 + 5 days is long past: without `at`, the row features have expired
    result = ttl_yard.online_features(["stats:amount", "stats:events_7d"], {"customer_id": 1})
    assert result.status == ["expired"]
    assert result.values == {"amount": [None], "events_7d": [2]}


# --- idempotency, chunks, resume ----------------------------------------------------------

def test_materializing_twice_stores_the_same_bytes(oyard: Yard) -> None:
    oyard.materialize("stats", at=AT)
    first = stored(oyard)
    assert len(first) == len(KEYS)
    (again,) = oyard.materialize("stats", at=AT)
    assert again.status == "done"
    assert stored(oyard) == first


def test_chunked_materialization_equals_one_chunk(project: Path, online_uri: str,
                                                  oyard: Yard) -> None:
    with connect(project, online_uri, materialize_chunk_rows=20) as chunked:
        (record,) = chunked.materialize("stats", at=AT)
        assert record.chunks_total > 1 and record.chunks_done == record.chunks_total
        assert record.entities == len(KEYS) and record.rows_written == len(KEYS)
        small = stored(chunked)
        assert_online_equals_training(chunked, KEYS, AT)
    (whole,) = oyard.materialize("stats", at=AT)
    assert whole.chunks_total == 1
    assert stored(oyard) == small


def test_progress_reports_each_chunk(project: Path, online_uri: str, oyard: Yard) -> None:
    seen: list[tuple[str, int, int]] = []
    with connect(project, online_uri, materialize_chunk_rows=50) as yard:
        (record,) = yard.features.online.materialize(
            "stats", at=AT, progress=lambda g, done, total: seen.append((g, done, total)))
    total = record.chunks_total
    assert total > 1
    assert seen == [("stats", n, total) for n in range(total + 1)]


def test_chunk_rows_must_be_positive(project: Path, online_uri: str, oyard: Yard) -> None:
    with connect(project, online_uri, materialize_chunk_rows=0) as yard, \
            pytest.raises(InvalidInputError, match="materialize_chunk_rows"):
        yard.materialize("stats", at=AT)


_CRASHING_CHILD = """
import sys, time
from datetime import datetime

import modelyard

project, online_uri, at = sys.argv[1:4]
yard = modelyard.connect(project=project, online_uri=online_uri, capture_git=False,
                         capture_packages=False, materialize_chunk_rows=24)
store = yard.features.online.store
write = store.write

def slow_write(table, rows):
    time.sleep(0.4)  # slow enough for the parent to kill the process mid-run
    return write(table, rows)

store.write = slow_write
yard.materialize("stats", at=datetime.fromisoformat(at))
print("finished")
"""


@pytest.mark.slow
def test_a_killed_materialization_is_resumed(project: Path, online_uri: str, oyard: Yard,
                                             tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(_CRASHING_CHILD)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    child = subprocess.Popen([sys.executable, str(script), str(project), online_uri,
                              AT.isoformat()], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            history = oyard.features.online.history("stats")
            if history and history[0].chunks_done >= 2:
                break
            if child.poll() is not None:
                raise AssertionError(f"the child ended early: {child.communicate()}")
            assert time.monotonic() < deadline, "the child made no progress"
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=30)
    (crashed,) = oyard.features.online.history("stats")
    assert crashed.status == "running" and crashed.resume_after is not None
    assert 2 <= crashed.chunks_done < crashed.chunks_total
    done_before = crashed.chunks_done

    with connect(project, online_uri, materialize_chunk_rows=24) as yard:
        (resumed,) = yard.materialize("stats")
        assert resumed.materialization_id == crashed.materialization_id
        assert resumed.status == "done" and resumed.at_us == crashed.at_us
        assert resumed.chunks_done == resumed.chunks_total == crashed.chunks_total
        assert resumed.chunks_done > done_before
        resumed_bytes = stored(yard)
        assert len(resumed_bytes) == len(KEYS)
        assert [r.materialization_id for r in yard.features.online.history("stats")] == [
            crashed.materialization_id]
    (fresh,) = oyard.materialize("stats", at=AT)
    assert fresh.materialization_id != crashed.materialization_id
    assert stored(oyard) == resumed_bytes


def test_a_failed_run_is_resumed_by_the_next_materialize(project: Path, online_uri: str,
                                                         oyard: Yard) -> None:
    with connect(project, online_uri, materialize_chunk_rows=24) as yard:
        store = yard.features.online.store
        write = store.write
        calls = {"n": 0}

        def failing(table_name: str, rows: Any) -> int:
            calls["n"] += 1
            if calls["n"] == 3:
                raise OSError("disk went away")
            return write(table_name, rows)

        store.write = failing  # type: ignore[method-assign]
        with pytest.raises(OSError):
            yard.materialize("stats", at=AT)
        (failed,) = yard.features.online.history("stats")
        assert failed.status == "failed" and failed.chunks_done == 2
        assert "disk went away" in (failed.error or "")
        (resumed,) = yard.materialize("stats")
        assert resumed.materialization_id == failed.materialization_id
        assert resumed.status == "done" and resumed.error is None
        assert_online_equals_training(yard, KEYS, AT)


def test_a_push_after_a_crash_does_not_hide_the_unfinished_run(
        project: Path, online_uri: str, oyard: Yard) -> None:
    with connect(project, online_uri, materialize_chunk_rows=24) as yard:
        store = yard.features.online.store
        write = store.write

        def failing(table_name: str, rows: Any) -> int:
            if len(yard.features.online.history("stats")[0].resume_after or "") > 0:
                raise OSError("disk went away")
            return write(table_name, rows)

        store.write = failing  # type: ignore[method-assign]
        with pytest.raises(OSError):
            yard.materialize("stats", at=AT)
        store.write = write  # type: ignore[method-assign]
        (failed,) = yard.features.online.history("stats")
        assert failed.status == "failed" and failed.chunks_done == 1
        pushed = yard.push("stats", table([(1, datetime.now(UTC) - timedelta(hours=1), 5.0,
                                            "fire", date.today())]))
        assert pushed.groups[0].mode == "push"
        (resumed,) = yard.materialize("stats")
        assert resumed.materialization_id == failed.materialization_id
        assert resumed.status == "done"
        # the pushed value is newer than the resumed run's and stays
        now = yard.online_features("stats:amount", {"customer_id": [1]})
        assert now.values["amount"] == [5.0]


# --- incremental --------------------------------------------------------------------------

def test_incremental_recomputes_only_changed_entities(project: Path, online_uri: str
                                                      ) -> None:
    quiet, busy = list(range(1, 31)), list(range(31, 41))
    with connect(project, online_uri) as yard:
        yard.apply([stats])
        yard.ingest(events, event_rows(quiet, 0, 2, 3, seed=3))
        yard.ingest(events, event_rows(busy, 0, 16, 8, seed=4))
        yard.materialize("stats", at=day(12))
        yard.ingest(events, table([
            (3, day(12.5), 5.0, "fire", day(12).date()),  # a new latest row
            (7, day(1), 6.0, "glass", day(1).date()),  # a late row, far before the window
            (8, day(30), 7.0, "glass", day(30).date()),  # after the next cut-off
        ]))
        (inc,) = yard.materialize("stats", at=day(13), incremental=True)
        assert inc.mode == "incremental"
        # entities with new rows up to the cut-off, and those whose window contents moved
        # (rows between the previous cut-off less the longest window, and the new cut-off)
        assert inc.entities == len(busy) + 2
        assert inc.rows_written == inc.entities
        assert_online_equals_training(yard, [*quiet, *busy], day(13))
        incremental = {k: decode(v).values for k, v in stored(yard).items() if v}
        yard.features.online.store.drop("stats@v1")
        (full,) = yard.materialize("stats", at=day(13))
        assert full.mode == "full" and full.entities == len(quiet) + len(busy)
        full_values = {k: decode(v).values for k, v in stored(yard).items() if v}
    assert full_values.keys() == incremental.keys()
    for key, values in full_values.items():
        assert all(same(a, b) for a, b in zip(values, incremental[key], strict=True)), key


def test_incremental_since(oyard: Yard) -> None:
    oyard.materialize("stats", at=day(10))
    cut = datetime.now(UTC)
    oyard.ingest(events, table([(5, day(9.5), 1.0, "fire", day(9).date())]))
    (inc,) = oyard.materialize("stats", at=day(10), since=cut)
    assert inc.mode == "incremental" and inc.since_us is not None
    # since= is both the ingestion cut-off and the previous event cut-off: only customer 5
    # has a row ingested after it, and nothing moved between `since` and day 10
    assert inc.entities == 1
    assert_online_equals_training(oyard, KEYS, day(10))


def test_incremental_without_a_previous_run_is_full(oyard: Yard) -> None:
    (first,) = oyard.materialize("stats", at=AT, incremental=True)
    assert first.mode == "full" and first.entities == len(KEYS)


def test_an_older_materialization_never_overwrites_a_newer_one(oyard: Yard) -> None:
    oyard.materialize("stats", at=AT)
    newer = stored(oyard)
    (older,) = oyard.materialize("stats", at=day(6))
    assert older.status == "done" and older.rows_written == 0
    assert stored(oyard) == newer
    assert_online_equals_training(oyard, KEYS, AT)


# --- push ---------------------------------------------------------------------------------

def test_push_updates_offline_and_online(project: Path, online_uri: str) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    with connect(project, online_uri) as yard:
        yard.apply([stats, totals])
        yard.ingest(events, table([(k, now - timedelta(days=2, hours=k), 10.0 * k, "glass",
                                    (now - timedelta(days=2)).date()) for k in (1, 2, 3)]))
        yard.materialize(at=now - timedelta(hours=1))
        before = stored(yard)
        commits = len(yard.features.tables.history("events"))
        frame = pd.DataFrame({"customer_id": [1, 2], "ts": [now - timedelta(hours=2)] * 2,
                              "amount": [1000.0, 2000.0], "kind": ["fire", "theft"],
                              "day": [now.date()] * 2})
        pushed = yard.push("stats", frame)
        assert pushed.rows == 2 and pushed.entities == 2
        assert {r.group for r in pushed.groups} == {"stats", "totals"}
        history = yard.features.tables.history("events")
        assert len(history) == commits + 1 and history[-1].commit_id == pushed.commit_id
        assert yard.features.tables.read("events").num_rows == 5
        result = yard.online_features(["stats:amount", "stats:events_7d", "stats:kind",
                                       "totals:amount_max_10d"], {"customer_id": [1, 2, 3]})
        assert result.values["amount"][:2] == [1000.0, 2000.0]
        assert result.values["kind"][:2] == ["fire", "theft"]
        assert result.values["events_7d"][:2] == [2, 2]  # window features too
        assert result.values["amount_max_10d"] == [1000.0, 2000.0, 30.0]
        after = stored(yard)
        assert after["3"] == before["3"]  # other entities untouched
        assert after["1"] != before["1"]


def test_push_to_an_unknown_group(oyard: Yard) -> None:
    with pytest.raises(NotFoundError):
        oyard.push("nope", pd.DataFrame({"customer_id": [1]}))


# --- freshness and forget -----------------------------------------------------------------

def test_freshness(oyard: Yard) -> None:
    (never,) = oyard.features.online.freshness("stats")
    assert never.newest_event is None and never.last_materialized is None
    assert never.runs == 0 and never.to_dict()["event_age_seconds"] is None
    before = datetime.now(UTC)
    oyard.materialize("stats", at=AT)
    (fresh,) = oyard.features.online.freshness("stats")
    rows = oyard.features.tables.read("events").to_pylist()
    assert fresh.newest_event == max(r["ts"] for r in rows if r["ts"] <= AT)
    assert fresh.last_materialized is not None
    assert before - timedelta(seconds=1) <= fresh.last_materialized <= datetime.now(UTC)
    assert fresh.materialized_as_of == AT and fresh.runs == 1
    assert fresh.event_age(AT + timedelta(days=1)) is not None
    data = fresh.to_dict()
    assert data["group"] == "stats" and data["version"] == 1
    assert datetime.fromisoformat(data["newest_event"]) == fresh.newest_event
    assert {f.group for f in oyard.features.online.freshness()} == {"stats", "totals"}


def test_forget_removes_online_values(oyard: Yard) -> None:
    oyard.materialize(at=AT)
    assert oyard.online_features(ALL, {"customer_id": [1]}, at=AT).status != ["missing"]
    oyard.features.forget("customer", [1])
    result = oyard.online_features(["stats:amount", "totals:doubled"],
                                   {"customer_id": [1, 2]}, at=AT)
    assert result.status[0] == "missing"
    assert result.values["amount"][0] is None and result.values["doubled"][0] is None
    assert result.status[1] != "missing"
    assert "1" not in oyard.features.online.store.keys("stats@v1")


# --- lookup inputs ------------------------------------------------------------------------

def test_lookup_errors(oyard: Yard) -> None:
    with pytest.raises(NotFoundError):
        oyard.online_features(["nope:amount"], {"customer_id": [1]})
    with pytest.raises(NotFoundError):
        oyard.online_features(["stats:nope"], {"customer_id": [1]})
    with pytest.raises(NotFoundError, match="modelyard features materialize"):
        oyard.online_features(["stats:amount"], {"customer_id": [1]})
    oyard.materialize("stats", at=AT)
    with pytest.raises(InvalidInputError, match="customer_id") as bad_type:
        oyard.online_features(["stats:amount"], {"customer_id": ["1"]})
    assert bad_type.value.http_status == 422
    for bad in ([1.5], [True], [None]):
        with pytest.raises(InvalidInputError, match="customer_id"):
            oyard.online_features(["stats:amount"], {"customer_id": bad})
    with pytest.raises(InvalidInputError, match="customer_id"):
        oyard.online_features(["stats:amount"], {"client": [1]})
    with pytest.raises(InvalidInputError, match="unknown entity column"):
        oyard.online_features(["stats:amount"], {"customer_id": [1], "extra": [2]})
    with pytest.raises(InvalidInputError):
        oyard.online_features(["stats:amount"], 42)
    with pytest.raises(InvalidInputError):
        oyard.online_features(["stats:amount"], [1, 2])


def test_lookup_columns_of_different_lengths(project: Path, online_uri: str) -> None:
    with connect(project, online_uri) as yard:
        yard.apply([composite])
        yard.ingest(visits, visit_rows())
        yard.materialize(at=day(5))
        with pytest.raises(InvalidInputError, match="same number"):
            yard.online_features("visit_stats:minutes", {"store_id": [1, 2],
                                                         "region": ["eu"]})


def test_entity_input_shapes(oyard: Yard) -> None:
    oyard.materialize("stats", at=AT)
    expected = oyard.online_features(["stats:amount", "stats:events_7d"],
                                     {"customer_id": [3, 1]}, at=AT).to_dict()
    shapes: list[Any] = [
        {"customer_id": [3, 1]},
        {"customer_id": (3, 1)},
        {"customer_id": pd.Series([3, 1])},
        [{"customer_id": 3}, {"customer_id": 1}],
        pd.DataFrame({"customer_id": [3, 1]}),
        pa.table({"customer_id": pa.array([3, 1], pa.int32())}),
    ]
    for entities in shapes:
        got = oyard.online_features(["stats:amount", "stats:events_7d"], entities,
                                    at=AT).to_dict()
        assert got.keys() == expected.keys()
        for name, values in expected.items():
            assert all(same(a, b) for a, b in zip(got[name], values, strict=True)), (
                entities, name)
    single = oyard.online_features(["stats:events_7d"], {"customer_id": 3}, at=AT)
    assert single.to_dict() == {"customer_id": [3], "events_7d": expected["events_7d"][:1],
                                "status": expected["status"][:1]}
    empty = oyard.online_features(["stats:events_7d"], {"customer_id": []}, at=AT)
    assert len(empty) == 0 and empty.to_dict() == {"customer_id": [], "events_7d": [],
                                                   "status": []}


def test_result_shapes(oyard: Yard) -> None:
    oyard.materialize("stats", at=AT)
    result = oyard.online_features(["stats:kind", "stats:events_7d"],
                                   {"customer_id": [1, 999]}, at=AT)
    assert list(result.to_dict()) == ["customer_id", "kind", "events_7d", "status"]
    records = result.to_records()
    assert records[1] == {"customer_id": 999, "kind": None, "events_7d": 0,
                          "status": "missing"}
    frame = result.to_pandas()
    assert list(frame.columns) == ["customer_id", "kind", "events_7d", "status"]
    assert result.to_arrow().num_rows == 2
    assert result.refs == ["stats@v1:kind", "stats@v1:events_7d"]


# --- types --------------------------------------------------------------------------------

def test_timestamps_dates_and_nan_round_trip(project: Path, online_uri: str) -> None:
    with connect(project, online_uri) as yard:
        yard.apply([stats])
        moment = datetime(2025, 1, 3, 4, 5, 6, 789012, tzinfo=UTC)
        yard.ingest(events, table([(1, moment, float("nan"), "glass", date(1969, 12, 31)),
                                   (2, moment, -0.0, "", date(2100, 1, 1))]))
        yard.materialize(at=moment + timedelta(hours=1))
        result = yard.online_features(ALL, {"customer_id": [1, 2]},
                                      at=moment + timedelta(hours=1))
        assert result.status == ["found", "found"]
        seen = result.values["seen"]
        assert seen == [moment, moment] and all(s.tzinfo is not None for s in seen)
        assert result.values["on_day"] == [date(1969, 12, 31), date(2100, 1, 1)]
        assert isinstance(result.values["on_day"][0], date)
        assert math.isnan(result.values["amount"][0])
        assert math.isnan(result.values["amount_sum_3d"][0])
        assert result.values["amount"][1] == 0.0
        assert math.copysign(1, result.values["amount"][1]) == -1  # bit for bit
        assert result.values["kind"] == ["glass", ""]
        assert_online_equals_training(yard, [1, 2], moment + timedelta(hours=1))


# --- several groups -----------------------------------------------------------------------

def test_group_star_and_two_groups_in_one_read(oyard: Yard,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    oyard.materialize(at=AT)
    store = oyard.features.online.store
    reads: list[Any] = []
    read = store.read

    def counting(requests: Any) -> Any:
        reads.append([table_name for table_name, _ in requests])
        return read(requests)

    monkeypatch.setattr(store, "read", counting)
    star = oyard.online_features(["stats:*"], {"customer_id": [1, 2]}, at=AT)
    assert list(star.values) == [f.name for f in stats.features]
    assert reads == [["stats@v1"]]
    reads.clear()
    both = oyard.online_features(["totals:doubled", "stats:*", "totals:amount_max_10d"],
                                 {"customer_id": [1, 2, 999]}, at=AT)
    assert reads == [["stats@v1", "totals@v1"]] or reads == [["totals@v1", "stats@v1"]]
    assert list(both.values) == ["doubled", *[f.name for f in stats.features],
                                 "amount_max_10d"]
    assert set(both.group_status) == {"stats@v1", "totals@v1"}
    assert both.status[2] == "missing"
    assert_online_equals_training(oyard, [1, 2], AT, ["totals:doubled", "stats:amount",
                                                      "totals:amount_max_10d"])


def test_one_group_missing_makes_the_row_missing(oyard: Yard) -> None:
    oyard.materialize("stats", at=AT)
    oyard.materialize("totals", at=AT)
    oyard.features.online.store.delete("totals@v1", ["1"])
    result = oyard.online_features(["stats:events_7d", "totals:doubled"],
                                   {"customer_id": [1, 2]}, at=AT)
    assert result.status[0] == "missing"
    assert result.group_status["stats@v1"][0] != "missing"
    assert result.group_status["totals@v1"][0] == "missing"
    assert result.values["events_7d"][0] is not None


def test_a_new_group_version_needs_its_own_materialization(project: Path, online_uri: str,
                                                           oyard: Yard) -> None:
    oyard.materialize("stats", at=AT)
    changed = FeatureGroup("stats", entity=customer, source=events, ttl="5d",
                           features=[*stats.features, Feature("half", "amount / 2")])
    oyard.apply([changed])
    with connect(project, online_uri) as yard:  # lookup plans are cached for a moment
        with pytest.raises(NotFoundError, match="v2"):
            yard.online_features(["stats:half"], {"customer_id": [1]}, at=AT)
        assert yard.online_features(["stats@v1:amount"], {"customer_id": [1]},
                                    at=AT).refs == ["stats@v1:amount"]
        yard.materialize("stats", at=AT)
        assert_online_equals_training(yard, KEYS[:5], AT, ["stats:half", "stats:amount"])


# --- composite keys -----------------------------------------------------------------------

shop = Entity("shop", ["store_id", "region"])
visits = Source.frame("visits", timestamp="ts")
composite = FeatureGroup("visit_stats", entity=shop, source=visits, features=[
    Feature("minutes", "minutes"),
    Feature("minutes_sum_2d", "sum(minutes)", window="2d"),
])


def visit_rows() -> pa.Table:
    rows = [(s, r, day(d), float(10 * s + d)) for s in (1, 2) for r in ("eu", "us", "a:b")
            for d in (0, 1, 2)]
    rows.append((1, '["1","eu"]', day(1), 99.0))  # a region that looks like an encoded key
    return pa.table({"store_id": pa.array([r[0] for r in rows], pa.int64()),
                     "region": [r[1] for r in rows],
                     "ts": pa.array([r[2] for r in rows], STAMP),
                     "minutes": [r[3] for r in rows]})


def test_composite_keys(project: Path, online_uri: str) -> None:
    with connect(project, online_uri, materialize_chunk_rows=4) as yard:
        yard.apply([composite])
        yard.ingest(visits, visit_rows())
        (record,) = yard.materialize(at=day(5))
        assert record.entities == 7 and record.chunks_total > 1
        keys = {"store_id": [2, 1, 1, 3, 1], "region": ["us", "eu", "a:b", "eu", '["1","eu"]']}
        result = yard.online_features(["visit_stats:*"], keys, at=day(5))
        assert result.keys == keys
        assert result.values["minutes"] == [22.0, 12.0, 12.0, None, 99.0]
        assert result.status == ["found", "found", "found", "missing", "found"]
        spine = pa.table({"store_id": pa.array(keys["store_id"], pa.int64()),
                          "region": keys["region"],
                          "ts": pa.array([day(5)] * 5, STAMP)})
        offline = yard.training_set(spine, ["visit_stats:*"]).table.to_pylist()
        for i, row in enumerate(offline):
            for name in ("minutes", "minutes_sum_2d"):
                assert same(result.values[name][i], row[name]), (i, name)
        with pytest.raises(InvalidInputError, match="region"):
            yard.online_features(["visit_stats:minutes"], {"store_id": [1]})
        with pytest.raises(InvalidInputError, match="region"):
            yard.online_features(["visit_stats:minutes"], {"store_id": [1], "region": [1]})
        yard.features.forget("shop", {"store_id": [1], "region": ["eu"]})
        after = yard.online_features(["visit_stats:minutes"], keys, at=day(5))
        assert after.status == ["found", "missing", "found", "missing", "found"]


def test_materialization_record_is_json_friendly(oyard: Yard) -> None:
    (record,) = oyard.materialize("stats", at=AT)
    assert json.loads(json.dumps(record.layout))["table"] == "stats@v1"
    assert record.layout["keys"] == ["customer_id"]
    assert record.layout["features"] == [f.name for f in stats.features]
    assert record.layout["ttl_us"] == 5 * 86_400 * 1_000_000


# --- other key types ----------------------------------------------------------------------

account = Entity("account", "code")
calendar = Entity("calendar_day", "on")
ledger = Source.frame("ledger", timestamp="ts")
by_code = FeatureGroup("by_code", entity=account, source=ledger,
                       features=[Feature("total", "value")])
by_day = FeatureGroup("by_day", entity=calendar, source=ledger, features=[
    Feature("value", "value"), Feature("value_sum_2d", "sum(value)", window="2d")])


def ledger_rows() -> pa.Table:
    codes = ["a", "b:c", "ü", "10", "*"]
    return pa.table({
        "code": [codes[i % len(codes)] for i in range(12)],
        "on": pa.array([day(i % 6).date() for i in range(12)], pa.date32()),
        "ts": pa.array([day(i / 2) for i in range(12)], STAMP),
        "value": [float(i) for i in range(12)],
    })


def test_string_and_date_keys_with_a_resumed_run(project: Path, online_uri: str) -> None:
    with connect(project, online_uri, materialize_chunk_rows=2) as yard:
        yard.apply([by_code, by_day])
        yard.ingest(ledger, ledger_rows())
        store = yard.features.online.store
        write = store.write
        calls = {"n": 0}

        def failing(table_name: str, rows: Any) -> int:
            calls["n"] += 1
            if calls["n"] == 3:
                raise OSError("disk went away")
            return write(table_name, rows)

        store.write = failing  # type: ignore[method-assign]
        with pytest.raises(OSError):
            yard.materialize("by_day", at=day(8))
        (failed,) = yard.features.online.history("by_day")
        assert failed.status == "failed" and json.loads(failed.resume_after or "")
        (resumed,) = yard.materialize("by_day")
        assert resumed.materialization_id == failed.materialization_id
        assert resumed.status == "done" and resumed.entities == 6
        yard.materialize("by_code", at=day(8))
        days = [day(i).date() for i in range(7)]
        result = yard.online_features(["by_day:*"], {"on": days}, at=day(8))
        assert result.status == ["found"] * 6 + ["missing"]
        spine = pa.table({"on": pa.array(days, pa.date32()),
                          "ts": pa.array([day(8)] * 7, STAMP)})
        offline = yard.training_set(spine, ["by_day:*"]).table.to_pylist()
        for i, row in enumerate(offline):
            assert same(result.values["value"][i], row["value"])
            assert same(result.values["value_sum_2d"][i], row["value_sum_2d"])
        codes = yard.online_features("by_code:total", {"code": ["a", "b:c", "ü", "10", "*",
                                                                 "zz"]}, at=day(8))
        assert codes.values["total"] == [10.0, 11.0, 7.0, 8.0, 9.0, None]
        with pytest.raises(InvalidInputError, match="code"):
            yard.online_features("by_code:total", {"code": [10]})


def test_materialize_errors(project: Path, online_uri: str) -> None:
    with connect(project, online_uri) as yard:
        with pytest.raises(NotFoundError, match="no feature group"):
            yard.materialize()
        yard.apply([stats])
        with pytest.raises(NotFoundError, match="ingest it first"):
            yard.materialize("stats", at=AT)
        with pytest.raises(NotFoundError):
            yard.materialize("nope", at=AT)
        yard.ingest(events, event_rows([1], 0, 2, 2, seed=5))
        with pytest.raises(NotFoundError):
            yard.materialize("stats@v9", at=AT)


def test_a_materialization_before_any_event_writes_nothing(oyard: Yard) -> None:
    (record,) = oyard.materialize("stats", at=day(-10))
    assert record.status == "done" and record.entities == 0 and record.rows_written == 0
    assert record.layout["table"] == "stats@v1"
    result = oyard.online_features(ALL, {"customer_id": [1, 2]}, at=day(-10))
    assert result.status == ["missing", "missing"]
    (fresh,) = oyard.features.online.freshness("stats")
    assert fresh.newest_event is None and fresh.runs == 1
