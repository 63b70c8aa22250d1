"""The prediction store contract, run alike on a SQLite file, the real PostgreSQL server and a
folder of Parquet files."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelyard.backends.metadata.predictions import (
    FAILURE_COLUMNS,
    FailureRecord,
    Label,
    LabelResult,
    PredictionRecord,
    PredictionStore,
)
from modelyard.backends.metadata.sql.engine import make_engine
from modelyard.backends.metadata.sql.prediction_store import SqlPredictionStore
from modelyard.backends.metadata.sql.tracking_store import SqlTrackingStore
from modelyard.backends.predictions import prediction_store_from_uri
from modelyard.backends.predictions.parquet import ParquetPredictionStore
from modelyard.errors import ConfigurationError, InvalidInputError, StorageError

BASE = ["request_id", "row", "model", "version", "role", "at_us", "latency_ms", "status",
        "reason"]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres),
                        "parquet"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PredictionStore]:
    if request.param == "sqlite":
        uri = f"sqlite:///{tmp_path / 'meta.db'}"
    elif request.param == "postgres":
        uri = str(request.getfixturevalue("pg_uri"))
    else:
        uri = f"file://{tmp_path / 'predictions'}"
    s = prediction_store_from_uri(uri)
    try:
        yield s
    finally:
        s.close()


def rec(request_id: str, at_us: int, *, row: int = 0, model: str = "claims", version: int = 1,
        role: Any = "primary", entity: dict[str, Any] | None = None,
        features: dict[str, Any] | None = None, output: dict[str, Any] | None = None,
        latency_ms: float = 3.5) -> PredictionRecord:
    return PredictionRecord(request_id, row, model, version, role, at_us, latency_ms, entity,
                            features if features is not None else {"age": 30, "city": "Lyon"},
                            output if output is not None else {"score": 0.25})


def keys(frame: pd.DataFrame) -> list[tuple[str, int, int, str]]:
    return list(zip(frame.request_id, frame.row, frame.version, frame.role, strict=True))


# --- write and read -------------------------------------------------------------------------

def test_round_trip_with_flattened_columns(store: PredictionStore) -> None:
    store.write([
        rec("r1", 1_000, entity={"customer_id": 7}, features={"age": 41, "city": "Lyon"},
            output={"score": 0.75, "label": "high"}),
        rec("r1", 1_000, row=1, entity={"customer_id": 8}, features={"age": 23, "city": "Nice"},
            output={"score": 0.125, "label": "low"}),
        rec("r0", 900, model="other"),
    ])
    frame = store.read("claims")
    assert list(frame.columns) == [*BASE, "entity.customer_id", "features.age",
                                   "features.city", "output.score", "output.label"]
    assert frame.to_dict("records") == [
        {"request_id": "r1", "row": 0, "model": "claims", "version": 1, "role": "primary",
         "at_us": 1_000, "latency_ms": 3.5, "status": None, "reason": None,
         "entity.customer_id": 7, "features.age": 41,
         "features.city": "Lyon", "output.score": 0.75, "output.label": "high"},
        {"request_id": "r1", "row": 1, "model": "claims", "version": 1, "role": "primary",
         "at_us": 1_000, "latency_ms": 3.5, "status": None, "reason": None,
         "entity.customer_id": 8, "features.age": 23,
         "features.city": "Nice", "output.score": 0.125, "output.label": "low"},
    ]
    assert frame["at_us"].dtype == np.int64 and frame["latency_ms"].dtype == np.float64
    assert store.count("claims") == 2 and store.count("other") == 1


def test_a_row_answered_without_a_prediction_keeps_its_status_and_reason(
        store: PredictionStore) -> None:
    from dataclasses import replace

    store.write([replace(rec("r1", 1_000, entity={"customer_id": 7}), status="found"),
                 replace(rec("r1", 1_000, row=1, entity={"customer_id": 8},
                             features={"age": None}, output={"prediction": None}),
                         status="expired", reason="expired entity: no value for age")])
    frame = store.read("claims")
    assert frame[["row", "status", "reason"]].to_dict("records") == [
        {"row": 0, "status": "found", "reason": None},
        {"row": 1, "status": "expired", "reason": "expired entity: no value for age"}]
    with pytest.raises(InvalidInputError, match="'status' must be None or one of"):
        store.write([replace(rec("r2", 1_000), status="lost")])


def test_unknown_model_reads_empty_with_the_record_columns(store: PredictionStore) -> None:
    frame = store.read("nobody")
    assert list(frame.columns) == BASE and len(frame) == 0
    assert store.count("nobody") == 0
    assert len(store.labels("nobody")) == 0


def test_filters_by_time_version_and_role(store: PredictionStore) -> None:
    store.write([rec(f"a{i}", 1_000 + i * 100, version=1 + i % 2) for i in range(10)])
    store.write([rec(f"a{i}", 1_000 + i * 100, version=3, role="shadow") for i in range(0, 10, 3)])
    assert store.count("claims") == 14
    window = store.read("claims", start_us=1_200, end_us=1_500)  # end excluded
    assert sorted(set(window.request_id)) == ["a2", "a3", "a4"]
    assert keys(window) == [("a2", 0, 1, "primary"), ("a3", 0, 2, "primary"),
                            ("a3", 0, 3, "shadow"), ("a4", 0, 1, "primary")]
    assert store.count("claims", start_us=1_200, end_us=1_500) == 4
    assert list(store.read("claims", version=2).request_id) == ["a1", "a3", "a5", "a7", "a9"]
    assert list(store.read("claims", role="shadow").request_id) == ["a0", "a3", "a6", "a9"]
    assert store.count("claims", role="shadow", start_us=1_300) == 3
    assert store.count("claims", version=1, role="shadow") == 0
    newest = store.read("claims", limit=3)  # the newest three, still oldest first
    assert keys(newest) == [("a8", 0, 1, "primary"), ("a9", 0, 2, "primary"),
                            ("a9", 0, 3, "shadow")]
    assert len(store.read("claims", limit=0)) == 0
    assert len(store.read("claims", limit=1_000)) == 14
    assert keys(store.read("claims", version=3, limit=5)) == [
        (f"a{i}", 0, 3, "shadow") for i in range(0, 10, 3)]
    assert len(store.read("claims", start_us=5_000)) == 0


def test_rewriting_a_batch_stores_each_record_once(store: PredictionStore) -> None:
    batch = [rec(f"r{i}", 1_000 + i, row=i % 2) for i in range(50)]
    store.write(batch)
    store.write(batch)  # a retried batch
    store.write([*batch[40:], rec("r99", 2_000)])  # overlapping with new records
    assert store.count("claims") == 51
    frame = store.read("claims")
    assert len(frame) == 51 and not frame.duplicated(["request_id", "row"]).any()
    # the same request answered by another version or role is another record
    store.write([rec("r0", 1_000, version=2), rec("r0", 1_000, role="canary")])
    assert store.count("claims") == 53


def test_a_malformed_record_refuses_the_whole_batch(store: PredictionStore) -> None:
    good = [rec("r1", 1_000), rec("r2", 1_001)]
    cases: list[tuple[PredictionRecord, str]] = [
        (rec("r3", 1_002, role="backup"), "role"),
        (rec("r3", -1), "at_us"),
        (rec("r3", 1_002, version=0), "version"),
        (rec("r3", 1_002, row=-1), "row"),
        (rec("", 1_002), "request_id"),
        (rec("r3", 1_002, model="no/slash"), "model"),
        (rec("r3", 1_002, latency_ms=math.nan), "latency_ms"),
        (PredictionRecord("r3", 0, "claims", 1, "primary", 1, 1.0, None,
                          ["not", "a", "mapping"], {}), "features"),  # type: ignore[arg-type]
    ]
    for bad, field in cases:
        with pytest.raises(InvalidInputError, match=field) as caught:
            store.write([*good, bad])
        assert caught.value.details["field"] == field
    assert store.count("claims") == 0


def test_json_unsafe_values_are_stored_json_safe(store: PredictionStore) -> None:
    moment = datetime(2024, 3, 1, 12, 30, tzinfo=UTC)
    features = {
        "nan": math.nan, "inf": math.inf, "ninf": -np.inf, "np_nan": np.float64("nan"),
        "i64": np.int64(7), "f32": np.float32(0.5), "flag": np.bool_(True),
        "ts": pd.Timestamp(moment), "dt": moment, "day": date(2024, 3, 1),
        "np_ts": np.datetime64("2024-03-01T12:30:00.123456789"), "nat": pd.NaT,
        "na": pd.NA, "none": None, "dec": Decimal("1.25"), "arr": np.array([1, 2]),
        "nested": {"x": [math.nan, np.int32(3)]},
    }
    store.write([rec("r1", 1_000, features=features, output={"p": np.float64(0.9)},
                     entity={"id": np.int64(42)})])
    row = store.read("claims").iloc[0]
    for name in ("nan", "inf", "ninf", "np_nan", "nat", "na", "none"):
        assert row[f"features.{name}"] is None or pd.isna(row[f"features.{name}"]), name
    assert row["features.i64"] == 7 and row["features.f32"] == 0.5
    assert row["features.flag"] is True or row["features.flag"] == 1
    assert row["features.ts"] == row["features.dt"] == "2024-03-01T12:30:00+00:00"
    assert row["features.day"] == "2024-03-01"
    assert row["features.np_ts"] == "2024-03-01T12:30:00.123456"
    assert row["features.dec"] == 1.25
    assert row["features.arr"] == [1, 2]
    assert row["features.nested"] == {"x": [None, 3]}
    assert row["output.p"] == 0.9 and row["entity.id"] == 42


# --- labels ---------------------------------------------------------------------------------

def test_labels_by_request_id_and_row(store: PredictionStore) -> None:
    store.write([rec("r1", 1_000), rec("r1", 1_000, row=1), rec("r2", 1_100),
                 rec("r1", 1_000, version=2, role="shadow")])
    result = store.add_labels("claims", [Label({"cost": 120.0}, request_id="r1"),
                                         Label({"cost": 0.0}, request_id="r1", row=1)])
    assert result == LabelResult(2, 0)
    frame = store.read("claims")
    labelled = dict(zip(zip(frame.request_id, frame.row, frame.role, strict=True),
                        frame["label.cost"], strict=True))
    assert labelled[("r1", 0, "primary")] == 120.0
    assert labelled[("r1", 0, "shadow")] == 120.0  # every version and role of the request
    assert labelled[("r1", 1, "primary")] == 0.0
    assert pd.isna(labelled[("r2", 0, "primary")])
    # a later label for the same row replaces the earlier one
    assert store.add_labels("claims", [Label({"cost": 99.5, "fraud": True},
                                             request_id="r1")]) == LabelResult(1, 0)
    stored = store.labels("claims")
    assert list(stored.columns) == ["request_id", "row", "labelled_at_us", "label.cost",
                                    "label.fraud"]
    assert len(stored) == 2
    first = stored.set_index(["request_id", "row"]).loc[("r1", 0)]
    assert first["label.cost"] == 99.5 and first["label.fraud"] is True
    assert store.read("claims", role="primary").set_index(
        ["request_id", "row"]).loc[("r1", 0), "label.cost"] == 99.5


def test_labels_by_entity_go_to_the_latest_prediction_at_or_before(
        store: PredictionStore) -> None:
    store.write([rec("q1", 100, entity={"customer": 1}), rec("q2", 200, entity={"customer": 1}),
                 rec("q3", 300, entity={"customer": 1}), rec("q4", 250, entity={"customer": 2}),
                 rec("t1", 400, entity={"customer": 3}), rec("t2", 400, entity={"customer": 3}),
                 rec("s1", 150, entity={"customer": "1"})])
    result = store.add_labels("claims", [
        Label({"y": 1}, entity={"customer": 1}, at_us=250),  # -> q2
        Label({"y": 2}, entity={"customer": 1}, at_us=300),  # at the instant -> q3
        Label({"y": 3}, entity={"customer": 2}, at_us=100),  # before any prediction
        Label({"y": 4}, entity={"customer": 3}, at_us=10_000),  # tie -> the greatest id
        Label({"y": 5}, entity={"customer": 9}, at_us=10_000),  # unknown entity
    ])
    assert result.matched == 3 and result.unmatched == 2
    assert any("customer" in e and "100" in e for e in result.examples)
    labels = store.read("claims").set_index("request_id")["label.y"]
    assert labels["q2"] == 1 and labels["q3"] == 2 and labels["t2"] == 4
    assert labels[["q1", "q4", "t1", "s1"]].isna().all()  # "1" is not 1


def test_labels_matching_nothing_are_refused_and_nothing_is_stored(
        store: PredictionStore) -> None:
    store.write([rec("r1", 1_000, entity={"c": 1})])
    with pytest.raises(InvalidInputError, match=r"none of the 3 labels") as caught:
        store.add_labels("claims", [Label({"y": 1}, request_id="zz1"),
                                    Label({"y": 1}, request_id="r1", row=5),
                                    Label({"y": 1}, entity={"c": 1}, at_us=10)])
    assert "zz1" in str(caught.value) and caught.value.details["unmatched"] == 3
    with pytest.raises(InvalidInputError, match="none of the 1 labels"):
        store.add_labels("elsewhere", [Label({"y": 1}, request_id="r1")])  # other model
    assert len(store.labels("claims")) == 0
    assert store.add_labels("claims", []) == LabelResult(0, 0)


def test_partly_unknown_labels_are_reported(store: PredictionStore) -> None:
    store.write([rec(f"r{i}", 1_000 + i) for i in range(3)])
    result = store.add_labels("claims", [Label({"y": i}, request_id=f"r{i}") for i in range(10)])
    assert (result.matched, result.unmatched) == (3, 7)
    assert len(result.examples) == 5 and result.examples[0] == "request 'r3' row 0"
    assert result.to_dict()["unmatched"] == 7
    assert sorted(store.labels("claims").request_id) == ["r0", "r1", "r2"]


def test_malformed_labels_are_refused_before_anything_is_stored(
        store: PredictionStore) -> None:
    store.write([rec("r1", 1_000)])
    bad = [Label({}, request_id="r1"),
           Label({"y": 1}),
           Label({"y": 1}, request_id="r1", entity={"c": 1}, at_us=5),
           Label({"y": 1}, entity={"c": 1}),
           Label({"y": 1}, request_id="r1", row=-2)]
    for label in bad:
        with pytest.raises(InvalidInputError, match="label 1"):
            store.add_labels("claims", [Label({"y": 0}, request_id="r1"), label])
    assert len(store.labels("claims")) == 0


def test_bad_query_arguments_are_refused(store: PredictionStore) -> None:
    with pytest.raises(InvalidInputError, match="model name"):
        store.read("../etc")
    with pytest.raises(InvalidInputError, match="role"):
        store.count("claims", role="backup")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="limit"):
        store.read("claims", limit=-1)


# --- failed requests ------------------------------------------------------------------------

def failure(request_id: str, at_us: int, *, model: str = "claims", version: int | None = 1,
            role: Any = "primary", status: int = 422, error: str = "InvalidInputError",
            endpoint: str = "predict", field: str | None = "instances[0].age",
            latency_ms: float = 1.5) -> FailureRecord:
    return FailureRecord(request_id, model, version, role, at_us, latency_ms, status, error,
                         endpoint, field)


def test_failures_round_trip_oldest_first(store: PredictionStore) -> None:
    store.write_failures([
        failure("f2", 2_000, status=503, error="StorageError", field=None),
        failure("f1", 1_000),
        failure("f3", 3_000, version=None, role=None, status=500, error="RuntimeError",
                endpoint="infer", field=None),
        failure("f1", 1_000, model="other"),
    ])
    frame = store.read_failures("claims")
    assert list(frame.columns) == list(FAILURE_COLUMNS)
    assert frame["version"].dtype == "Int64" and frame["at_us"].dtype == np.int64
    rows = frame.to_dict("records")
    assert rows[0] == {"request_id": "f1", "model": "claims", "version": 1, "role": "primary",
                       "at_us": 1_000, "latency_ms": 1.5, "status": 422,
                       "error": "InvalidInputError", "endpoint": "predict",
                       "field": "instances[0].age"}
    assert [r["request_id"] for r in rows] == ["f1", "f2", "f3"]
    assert rows[1]["field"] is None and rows[1]["status"] == 503
    assert pd.isna(rows[2]["version"]) and rows[2]["role"] is None
    assert store.count_failures("claims") == 3 and store.count_failures("other") == 1
    empty = store.read_failures("nobody")
    assert list(empty.columns) == list(FAILURE_COLUMNS) and len(empty) == 0
    assert store.count("claims") == 0  # failures are not predictions


def test_rewriting_failures_stores_each_request_once(store: PredictionStore) -> None:
    batch = [failure(f"f{i}", 1_000 + i) for i in range(30)]
    store.write_failures(batch)
    store.write_failures(batch)  # a retried batch
    store.write_failures([*batch[25:], failure("f25", 9_999, status=500),  # kept: the first
                          failure("new", 2_000)])
    assert store.count_failures("claims") == 31
    frame = store.read_failures("claims")
    assert not frame.duplicated(["request_id"]).any()
    assert frame.set_index("request_id").loc["f25", "status"] == 422
    store.write_failures([failure("f0", 1_000, model="other")])  # another model's request
    assert store.count_failures("other") == 1 and store.count_failures("claims") == 31
    store.write_failures([])


def test_failures_filter_by_window_and_version(store: PredictionStore) -> None:
    store.write_failures([failure(f"f{i}", 1_000 + i * 100, version=[1, 2, None][i % 3],
                                  role=None if i % 3 == 2 else "primary") for i in range(9)])
    window = store.read_failures("claims", start_us=1_200, end_us=1_500)  # end excluded
    assert list(window.request_id) == ["f2", "f3", "f4"]
    assert store.count_failures("claims", start_us=1_200, end_us=1_500) == 3
    assert list(store.read_failures("claims", version=2).request_id) == ["f1", "f4", "f7"]
    assert store.count_failures("claims", version=1, start_us=1_300) == 2
    assert store.count_failures("claims", end_us=1_000) == 0
    assert len(store.read_failures("claims", start_us=5_000)) == 0
    with pytest.raises(InvalidInputError, match="version"):
        store.read_failures("claims", version=0)


def test_a_malformed_failure_refuses_the_whole_batch(store: PredictionStore) -> None:
    good = [failure("f1", 1_000), failure("f2", 1_001)]
    cases: list[tuple[FailureRecord, str]] = [
        (failure("f3", 1_002, status=200), "status"),
        (failure("f3", 1_002, status=600), "status"),
        (failure("f3", 1_002, error="age 'old' is not a number"), "error"),  # a message
        (failure("f3", 1_002, endpoint=""), "endpoint"),
        (failure("f3", 1_002, version=0), "version"),
        (failure("f3", 1_002, role="backup"), "role"),
        (failure("f3", 1_002, field="x" * 256), "field"),
        (failure("", 1_002), "request_id"),
        (failure("f3", -5), "at_us"),
        (failure("f3", 1_002, latency_ms=math.inf), "latency_ms"),
        (failure("f3", 1_002, model="no/slash"), "model"),
    ]
    for bad, field in cases:
        with pytest.raises(InvalidInputError, match=field) as caught:
            store.write_failures([*good, bad])
        assert caught.value.details["field"] == field
    with pytest.raises(InvalidInputError, match="FailureRecord"):
        store.write_failures([rec("r1", 1)])  # type: ignore[list-item]
    assert store.count_failures("claims") == 0


# --- store-specific -------------------------------------------------------------------------

def test_the_metadata_store_holds_the_prediction_tables(project: Path) -> None:
    engine = make_engine(f"sqlite:///{project / '.modelyard' / 'modelyard.db'}")
    try:
        SqlTrackingStore(engine)  # migrates to the current schema
        store = prediction_store_from_uri("", metadata_engine=engine)
        assert isinstance(store, SqlPredictionStore)
        store.write([rec("r1", 1)])
        store.close()  # the engine is the metadata store's: still usable
        assert SqlPredictionStore(engine, migrate=False).count("claims") == 1
    finally:
        engine.dispose()


def test_unsupported_uris_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="unsupported prediction store URI"):
        prediction_store_from_uri("s3://bucket/predictions")
    with pytest.raises(ConfigurationError, match="metadata store"):
        prediction_store_from_uri("")
    assert isinstance(prediction_store_from_uri(f"file://{tmp_path}"), ParquetPredictionStore)


def test_parquet_files_are_named_by_time_and_reads_skip_other_ranges(tmp_path: Path) -> None:
    store = ParquetPredictionStore(tmp_path / "log")
    store.write([rec("old1", 1_000), rec("old2", 2_000)])
    store.write([rec("new1", 9_000), rec("x", 9_500, model="other")])
    files = sorted((tmp_path / "log" / "predictions" / "claims").iterdir())
    assert [f.name[:41] for f in files] == [f"{1_000:020d}-{2_000:020d}",
                                            f"{9_000:020d}-{9_000:020d}"]
    assert (tmp_path / "log" / "predictions" / "other").is_dir()
    assert list((tmp_path / "log" / "tmp").iterdir()) == []
    (tmp_path / "log" / "tmp" / "write-left-by-a-killed-writer.parquet").write_bytes(b"PAR")
    files[0].write_bytes(b"not parquet at all")  # damage the older file
    assert list(store.read("claims", start_us=5_000).request_id) == ["new1"]  # never opened
    assert store.count("claims", start_us=2_001) == 1
    with pytest.raises(StorageError, match="prediction store error"):
        store.read("claims")


def test_parquet_failures_have_their_own_folder_named_by_time(tmp_path: Path) -> None:
    store = ParquetPredictionStore(tmp_path / "log")
    store.write_failures([failure("f1", 1_000), failure("f2", 3_000)])
    store.write_failures([failure("f3", 9_000), failure("f1", 1_000)])  # f1 again
    files = sorted((tmp_path / "log" / "failures" / "claims").iterdir())
    assert [f.name[:41] for f in files] == [f"{1_000:020d}-{3_000:020d}",
                                            f"{1_000:020d}-{9_000:020d}"]
    assert not (tmp_path / "log" / "predictions").exists()
    assert list((tmp_path / "log" / "tmp").iterdir()) == []
    assert store.count_failures("claims") == 3
    assert list(store.read_failures("claims", start_us=5_000).request_id) == ["f3"]
