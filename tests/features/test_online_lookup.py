"""Online lookups through the public API, on the SQLite file and Redis: freshness, forget,
input shapes and errors, types, several groups, composite and other keys.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from modelyard import (
    Entity,
    Feature,
    FeatureGroup,
    InvalidInputError,
    NotFoundError,
    Source,
    Yard,
)

from .online_support import (
    ALL,
    AT,
    KEYS,
    STAMP,
    assert_online_equals_training,
    connect,
    customer,
    day,
    event_rows,
    events,
    fail_third_write,
    same,
    stats,
    table,
)

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
        fail_third_write(yard)
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
