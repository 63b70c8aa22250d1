"""Materialization through the public API, on the SQLite file and Redis: full, TTL,
idempotency, chunks, resume, incremental and push.

Every value served online is compared with what a training set computes for the same
(entity, instant): the definition of correct for the online store.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import modelyard
from modelyard import (
    Feature,
    FeatureGroup,
    InvalidInputError,
    NotFoundError,
    Yard,
)
from modelyard.features.codec import decode

from .online_support import (
    ALL,
    AT,
    KEYS,
    ROW,
    US,
    assert_online_equals_training,
    connect,
    customer,
    day,
    event_rows,
    events,
    fail_third_write,
    last_event,
    same,
    stats,
    stored,
    table,
    totals,
    training_rows,
)

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


@pytest.mark.parametrize("chunk_rows", [None, 24])
def test_a_group_with_a_transform_across_rows_is_materialized_from_every_row(
        project: Path, online_uri: str, oyard: Yard, chunk_rows: int | None) -> None:
    """A transform may look across an entity's rows (here, each event's rank), so every row
    of the entity reaches it, in one pass or chunk by chunk."""

    @modelyard.transform
    def ranked(df: pd.DataFrame) -> pd.DataFrame:
        return df.assign(nth=df.groupby("customer_id")["ts"].rank(method="first"))

    group = FeatureGroup("ranked", entity=customer, source=events, transform=ranked,
                         features=[Feature("nth", "nth"),
                                   Feature("nth_sum_3d", "sum(nth)", window="3d")])
    oyard.apply([group])
    settings = {} if chunk_rows is None else {"materialize_chunk_rows": chunk_rows}
    with connect(project, online_uri, **settings) as yard:
        (record,) = yard.materialize("ranked", at=AT)
        assert (record.chunks_total > 1) == (chunk_rows is not None)
        refs = ["ranked:nth", "ranked:nth_sum_3d"]
        online = assert_online_equals_training(yard, KEYS, AT, refs)
    assert max(online["nth"]) > 1


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
        fail_third_write(yard)
        with pytest.raises(OSError):
            yard.materialize("stats", at=AT)
        (failed,) = yard.features.online.history("stats")
        assert failed.status == "failed" and failed.chunks_done == 2
        assert "disk went away" in (failed.error or "")
        (resumed,) = yard.materialize("stats")
        assert resumed.materialization_id == failed.materialization_id
        assert resumed.status == "done" and resumed.error is None
        assert_online_equals_training(yard, KEYS, AT)


def test_one_pass_writes_in_chunks_and_resumes_after_a_failed_write(
        project: Path, online_uri: str, oyard: Yard, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every row fits in memory (one read), and the values go out a few entities at a time,
    each write a resume point."""
    from modelyard.features import materialize

    monkeypatch.setattr(materialize, "_WRITE_CHUNK", 3)
    with connect(project, online_uri) as yard:
        fail_third_write(yard)
        with pytest.raises(OSError):
            yard.materialize("stats", at=AT)
        (failed,) = yard.features.online.history("stats")
        assert failed.chunks_total == math.ceil(len(KEYS) / 3) and failed.chunks_done == 2
        assert len(stored(yard)) == 6
        (resumed,) = yard.materialize("stats")
        assert resumed.materialization_id == failed.materialization_id
        assert resumed.status == "done" and resumed.chunks_done == resumed.chunks_total
        assert_online_equals_training(yard, KEYS, AT)
        resumed_bytes = stored(yard)
    oyard.materialize("stats", at=AT)
    assert stored(oyard) == resumed_bytes


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
