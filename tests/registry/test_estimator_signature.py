"""Signatures inferred from what a fitted estimator records, when no example is given."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import modelyard
from modelyard.registry.estimator_inputs import rows_from_estimator


@pytest.fixture
def yard(project: Path) -> Iterator[Any]:
    """One SQLite project: where the signature comes from does not depend on the store."""
    opened = modelyard.connect(project=project, capture_git=False, capture_packages=False)
    try:
        yield opened
    finally:
        opened.close()


def _frame(n: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame({"age": rng.uniform(18, 80, n), "value": rng.uniform(1, 5, n),
                         "region": rng.choice(["north", "south"], n),
                         "seats": rng.integers(2, 5, n)})


def _types(spec: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["type"] for c in spec["inputs"]}


def test_a_frame_fitted_model_gets_its_columns_and_a_checked_twin(yard: Any) -> None:
    frame = _frame()
    model = LogisticRegression().fit(frame[["age", "value"]], frame["age"] > 50)
    record = yard.models.register(model, "clf")
    assert record.spec["signature_from"] == "estimator"
    assert _types(record.spec["signature"]) == {"age": "float", "value": "float"}
    assert record.spec["signature"]["outputs"][0]["type"] == "bool"
    assert record.spec["onnx"]["status"] == "ok"  # converted and checked on made-up rows
    assert record.spec["input_example"] is None  # made-up rows are not an example


def test_an_array_fitted_model_gets_x0_x1_and_serves_them(yard: Any) -> None:
    frame = _frame()
    matrix = frame[["age", "value"]].to_numpy()
    model = RandomForestRegressor(n_estimators=5, random_state=0).fit(matrix, frame["age"])
    record = yard.models.register(model, "arr")
    assert _types(record.spec["signature"]) == {"x0": "float", "x1": "float"}
    assert record.spec["onnx"]["status"] == "ok"
    loaded = yard.models.load("arr", record.version)
    assert loaded.predict(matrix[:3]).tolist() == model.predict(matrix[:3]).tolist()


def test_encoders_say_which_columns_hold_text_and_whole_numbers(yard: Any) -> None:
    frame = _frame()
    encode = ColumnTransformer([("num", StandardScaler(), ["age", "value"]),
                                ("cat", OneHotEncoder(), ["region", "seats"])])
    model = Pipeline([("encode", encode),
                      ("fit", HistGradientBoostingRegressor(max_iter=5))]).fit(
        frame, frame["age"])
    record = yard.models.register(model, "pipe", onnx=False)
    assert _types(record.spec["signature"]) == {
        "age": "float", "value": "float", "region": "string", "seats": "int"}
    rows = rows_from_estimator(model, rows=10)
    assert rows is not None and set(rows["region"]) <= {"north", "south"}


def test_an_estimator_recording_nothing_gets_no_rows() -> None:
    class Bare:
        def predict(self, rows: Any) -> Any:
            return np.zeros(len(rows))

    assert rows_from_estimator(Bare()) is None


def test_an_example_still_comes_first(yard: Any) -> None:
    frame = _frame()
    model = LogisticRegression().fit(frame[["age", "value"]], frame["age"] > 50)
    record = yard.models.register(model, "clf", input_example=frame[["age", "value"]])
    assert record.spec["signature_from"] == "example"
    assert record.spec["input_example"] is not None
