"""Ground truth given as a table, turned into labels and attached through a real store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelyard.backends.metadata.predictions import Label, LabelResult, PredictionRecord
from modelyard.backends.predictions import prediction_store_from_uri
from modelyard.errors import InvalidInputError
from modelyard.serving.labels import epoch_us, labels_from

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def test_labels_by_request_from_a_frame() -> None:
    frame = pd.DataFrame({"request_id": ["a", "b"], "row": [0, 3], "cost": [10.5, 0.0],
                          "fraud": [True, False]})
    assert labels_from(frame) == [
        Label({"cost": 10.5, "fraud": True}, request_id="a", row=0),
        Label({"cost": 0.0, "fraud": False}, request_id="b", row=3)]
    assert labels_from([{"request_id": "a", "cost": 1.0, "note": "x"}], values="cost") == [
        Label({"cost": 1.0}, request_id="a", row=0)]  # no row column: row 0


def test_labels_by_entity_and_time_from_columns() -> None:
    data = {"customer_id": [7, 8], "at": [T0, "2024-03-01T01:00:00+01:00"], "cost": [1, 2]}
    assert labels_from(data, entity="customer_id") == [
        Label({"cost": 1}, entity={"customer_id": 7}, at_us=epoch_us(T0)),
        Label({"cost": 2}, entity={"customer_id": 8}, at_us=epoch_us(T0))]


def test_epoch_us_accepts_aware_times_iso_text_and_integers() -> None:
    assert epoch_us(datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)) == 1_000_000
    assert epoch_us(pd.Timestamp("1970-01-01T00:00:02Z")) == 2_000_000
    assert epoch_us(datetime(1970, 1, 1, 2, tzinfo=timezone(timedelta(hours=2)))) == 0
    assert epoch_us("1970-01-01T00:00:00.000003+00:00") == 3
    assert epoch_us(np.int64(42)) == 42
    for bad in (datetime(2024, 1, 1), "2024-01-01T00:00:00", "yesterday", 1.5, True,
                pd.NaT):
        with pytest.raises(InvalidInputError, match="'at'"):
            epoch_us(bad)


def test_malformed_label_tables_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="no column 'request_id'"):
        labels_from([{"cost": 1}])
    with pytest.raises(InvalidInputError, match="no column 'at'"):
        labels_from([{"customer_id": 1, "cost": 1}], entity=["customer_id"])
    with pytest.raises(InvalidInputError, match="no label column"):
        labels_from({"request_id": ["a"], "row": [0]})
    with pytest.raises(InvalidInputError, match="same length"):
        labels_from({"request_id": ["a", "b"], "cost": [1]})
    with pytest.raises(InvalidInputError, match="DataFrame"):
        labels_from("request_id,cost")


def test_a_label_table_attaches_to_logged_predictions(tmp_path: Path) -> None:
    store = prediction_store_from_uri(f"sqlite:///{tmp_path / 'meta.db'}")
    try:
        store.write([
            PredictionRecord(f"q{i}", 0, "claims", 1, "primary", epoch_us(T0) + i * 3_600_000_000,
                             4.0, {"customer_id": i % 2}, {"x": i}, {"p": 0.1 * i})
            for i in range(4)])  # customer 0 at T0 and T0+2h, customer 1 at T0+1h and T0+3h
        truth = pd.DataFrame({"customer_id": [0, 1, 5],
                              "at": [T0 + timedelta(hours=2, minutes=30)] * 3,
                              "claim_cost": [900.0, 0.0, 1.0]})
        result = store.add_labels("claims", labels_from(truth, entity=["customer_id"]))
        assert result == LabelResult(2, 1, ("entity {\"customer_id\":5} at "
                                            f"{epoch_us(T0) + 9_000_000_000}",))
        frame = store.read("claims").set_index("request_id")["label.claim_cost"]
        assert frame["q2"] == 900.0 and frame["q1"] == 0.0
        assert frame[["q0", "q3"]].isna().all()
    finally:
        store.close()
