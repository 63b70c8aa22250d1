"""Evaluation: every metric against a direct scikit-learn call, slices, plots, skips."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve
from sklearn.linear_model import LinearRegression, LogisticRegression, RidgeClassifier

from modelyard.errors import InvalidInputError
from modelyard.registry.evaluation import (
    HIGHER_IS_BETTER,
    METRICS,
    Evaluation,
    evaluate,
    infer_task,
)

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def binary() -> tuple[LogisticRegression, pd.DataFrame]:
    rng = np.random.default_rng(1)
    n = 400
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n),
                          "region": rng.choice(["north", "south", "east"], size=n)})
    frame.loc[rng.choice(n, 15, replace=False), "region"] = None
    frame["y"] = (frame["a"] - frame["b"] + rng.normal(scale=0.8, size=n) > 0).astype(int)
    model = LogisticRegression().fit(frame[["a", "b"]], frame["y"])
    return model, frame


@pytest.fixture(scope="module")
def multiclass() -> tuple[LogisticRegression, pd.DataFrame]:
    rng = np.random.default_rng(2)
    n = 450
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    noisy = frame["a"] + rng.normal(scale=0.6, size=n)
    frame["y"] = np.where(noisy > 0.5, "high", np.where(noisy < -0.5, "low", "mid"))
    model = LogisticRegression().fit(frame[["a", "b"]], frame["y"])
    return model, frame


@pytest.fixture(scope="module")
def regression() -> tuple[LinearRegression, pd.DataFrame]:
    rng = np.random.default_rng(3)
    n = 300
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n),
                          "segment": rng.choice(["x", "y"], size=n)})
    frame["y"] = 50 + 3 * frame["a"] - 2 * frame["b"] + rng.normal(size=n)
    model = LinearRegression().fit(frame[["a", "b"]], frame["y"])
    return model, frame


def _ece_reference(hit: np.ndarray[Any, Any], prob: np.ndarray[Any, Any]) -> float:
    total = 0.0
    for i in range(10):
        low, high = i / 10, (i + 1) / 10
        inside = (prob >= low) & ((prob < high) if i < 9 else (prob <= high))
        if inside.any():
            total += inside.mean() * abs(hit[inside].mean() - prob[inside].mean())
    return total


def test_binary_metrics_match_sklearn(binary: tuple[Any, pd.DataFrame]) -> None:
    model, frame = binary
    result = evaluate(model, frame.drop(columns=["region"]), "y")
    X, y = frame[["a", "b"]], frame["y"]
    pred, prob = model.predict(X), model.predict_proba(X)[:, 1]
    assert result.task == "classification"
    assert result.rows == len(frame)
    expected = {
        "accuracy": skm.accuracy_score(y, pred),
        "precision": skm.precision_score(y, pred),
        "recall": skm.recall_score(y, pred),
        "f1": skm.f1_score(y, pred),
        "roc_auc": skm.roc_auc_score(y, prob),
        "log_loss": skm.log_loss(y, model.predict_proba(X)),
        "brier": skm.brier_score_loss(y, prob),
    }
    for name, value in expected.items():
        assert result.metrics[name] == pytest.approx(value), name
    assert result.metrics["ece"] == pytest.approx(_ece_reference(y.to_numpy(), prob))
    prob_true, prob_pred = calibration_curve(y, prob, n_bins=10)
    assert result.metrics["ece"] <= float(np.max(np.abs(prob_true - prob_pred)))
    assert set(result.metrics) <= set(METRICS["classification"])
    assert result.skipped == {}


def test_binary_positive_class_is_the_larger_label(binary: tuple[Any, pd.DataFrame]) -> None:
    _, frame = binary
    labelled = frame.drop(columns=["region"]).assign(
        y=np.where(frame["y"] == 1, "yes", "no"))
    model = LogisticRegression().fit(labelled[["a", "b"]], labelled["y"])
    result = evaluate(model, labelled, "y", plots=False)
    pred = model.predict(labelled[["a", "b"]])
    assert result.metrics["precision"] == pytest.approx(
        skm.precision_score(labelled["y"], pred, pos_label="yes"))
    assert result.metrics["recall"] == pytest.approx(
        skm.recall_score(labelled["y"], pred, pos_label="yes"))
    as_bool = labelled.assign(y=labelled["y"] == "yes")
    bool_model = LogisticRegression().fit(as_bool[["a", "b"]], as_bool["y"])
    flags = evaluate(bool_model, as_bool, "y", plots=False)
    assert flags.metrics["f1"] == pytest.approx(
        skm.f1_score(as_bool["y"], bool_model.predict(as_bool[["a", "b"]])))


def test_multiclass_metrics_are_macro_averages(multiclass: tuple[Any, pd.DataFrame]) -> None:
    model, frame = multiclass
    result = evaluate(model, frame, "y", plots=False)
    X, y = frame[["a", "b"]], frame["y"]
    pred, proba = model.predict(X), model.predict_proba(X)
    assert result.metrics["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert result.metrics["precision_macro"] == pytest.approx(
        skm.precision_score(y, pred, average="macro"))
    assert result.metrics["recall_macro"] == pytest.approx(
        skm.recall_score(y, pred, average="macro"))
    assert result.metrics["f1_macro"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert result.metrics["roc_auc"] == pytest.approx(
        skm.roc_auc_score(y, proba, multi_class="ovr", average="macro"))
    assert result.metrics["log_loss"] == pytest.approx(skm.log_loss(y, proba))
    top = model.classes_[proba.argmax(axis=1)]
    hit = (top == y.to_numpy()).astype(int)
    assert result.metrics["ece"] == pytest.approx(_ece_reference(hit, proba.max(axis=1)))
    assert "precision" not in result.metrics and "brier" not in result.metrics
    assert result.skipped == {}


def test_regression_metrics_match_sklearn(regression: tuple[Any, pd.DataFrame]) -> None:
    model, frame = regression
    result = evaluate(model, frame, "y", features=["a", "b"])
    y, pred = frame["y"], model.predict(frame[["a", "b"]])
    assert result.task == "regression"
    assert result.metrics == pytest.approx({
        "rmse": skm.root_mean_squared_error(y, pred),
        "mae": skm.mean_absolute_error(y, pred),
        "r2": skm.r2_score(y, pred),
        "mape": skm.mean_absolute_percentage_error(y, pred),
    })
    assert "rows" not in result.metrics
    assert set(result.plots) == {"residuals.png", "predicted_vs_actual.png"}
    assert all(png.startswith(PNG) for png in result.plots.values())


def test_mape_is_skipped_when_the_label_has_zeros(regression: tuple[Any, pd.DataFrame]) -> None:
    model, frame = regression
    zeroed = frame.copy()
    zeroed.loc[:2, "y"] = 0.0
    result = evaluate(model, zeroed, "y", features=["a", "b"], plots=False)
    assert "mape" not in result.metrics
    assert "3 zero value" in result.skipped["mape"]
    assert set(result.metrics) == {"rmse", "mae", "r2"}


def test_probability_metrics_skipped_without_predict_proba(
        binary: tuple[Any, pd.DataFrame]) -> None:
    _, frame = binary
    data = frame.drop(columns=["region"])
    model = RidgeClassifier().fit(data[["a", "b"]], data["y"])
    result = evaluate(model, data, "y")
    for name in ("roc_auc", "log_loss", "brier", "ece"):
        assert name not in result.metrics
        assert "predict_proba" in result.skipped[name]
    assert result.metrics["accuracy"] == pytest.approx(
        skm.accuracy_score(data["y"], model.predict(data[["a", "b"]])))
    assert set(result.plots) == {"confusion_matrix.png"}


def test_slices_equal_evaluating_the_filtered_rows(binary: tuple[Any, pd.DataFrame]) -> None:
    model, frame = binary
    result = evaluate(model, frame, "y", slice_by="region", plots=False)
    assert list(result.slices) == ["region"]
    assert set(result.slices["region"]) == {"east", "north", "south", "null"}
    for value, got in result.slices["region"].items():
        rows = frame[frame["region"].isna()] if value == "null" else frame[
            frame["region"] == value]
        alone = evaluate(model, rows.drop(columns=["region"]), "y", plots=False)
        assert got == pytest.approx({**alone.metrics, "rows": float(len(rows))})
    assert sum(m["rows"] for m in result.slices["region"].values()) == len(frame)


def test_regression_slices_and_min_slice_rows(regression: tuple[Any, pd.DataFrame]) -> None:
    model, frame = regression
    small = pd.concat([frame, frame.head(2).assign(segment="tiny")], ignore_index=True)
    result = evaluate(model, small, "y", slice_by=["segment"], plots=False, min_slice_rows=5)
    assert set(result.slices["segment"]) == {"x", "y"}
    assert "2 row(s)" in result.skipped["slice segment=tiny"]
    rows = small[small["segment"] == "x"]
    pred = model.predict(rows[["a", "b"]])
    assert result.slices["segment"]["x"]["rmse"] == pytest.approx(
        skm.root_mean_squared_error(rows["y"], pred))
    assert result.slices["segment"]["x"]["rows"] == len(rows)


def test_single_class_slice_leaves_out_undefined_metrics() -> None:
    frame = pd.DataFrame({"a": [-2.0, -1.0, 1.0, 2.0, 3.0, -3.0],
                          "group": ["neg", "neg", "pos", "pos", "pos", "neg"]})
    frame["y"] = (frame["a"] > 0).astype(int)
    model = LogisticRegression().fit(frame[["a"]], frame["y"])
    result = evaluate(model, frame, "y", slice_by="group", plots=False)
    positives = result.slices["group"]["pos"]
    assert positives["accuracy"] == 1.0
    assert "roc_auc" not in positives
    assert "precision" not in result.slices["group"]["neg"]  # nothing predicted positive
    assert "roc_auc" in result.metrics
    for groups in result.slices.values():
        for metrics in groups.values():
            assert all(math.isfinite(v) for v in metrics.values())


def test_plots_are_png(binary: tuple[Any, pd.DataFrame],
                       multiclass: tuple[Any, pd.DataFrame]) -> None:
    model, frame = binary
    result = evaluate(model, frame.drop(columns=["region"]), "y")
    assert set(result.plots) == {"confusion_matrix.png", "roc.png", "calibration.png"}
    assert all(png.startswith(PNG) and len(png) > 1000 for png in result.plots.values())
    model, frame = multiclass
    result = evaluate(model, frame, "y")
    assert set(result.plots) == {"confusion_matrix.png", "roc.png", "calibration.png"}
    assert evaluate(model, frame, "y", plots=False).plots == {}


def test_frames_from_arrow_and_polars(regression: tuple[Any, pd.DataFrame]) -> None:
    import polars as pl
    import pyarrow as pa

    model, frame = regression
    expected = evaluate(model, frame, "y", features=["a", "b"], plots=False)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    from_arrow = evaluate(model, table, "y", features=["a", "b"], plots=False)
    from_polars = evaluate(model, pl.from_arrow(table), "y", features=["a", "b"], plots=False)
    assert from_arrow.metrics == pytest.approx(expected.metrics)
    assert from_polars.metrics == pytest.approx(expected.metrics)


def test_default_features_exclude_label_and_slices(regression: tuple[Any, pd.DataFrame]
                                                   ) -> None:
    model, frame = regression
    result = evaluate(model, frame, "y", slice_by="segment", plots=False)
    assert result.metrics["r2"] > 0.9


def test_missing_columns_are_refused(regression: tuple[Any, pd.DataFrame]) -> None:
    model, frame = regression
    with pytest.raises(InvalidInputError, match="'target'") as caught:
        evaluate(model, frame, "target", features=["a", "b"])
    assert caught.value.details["field"] == "data"
    with pytest.raises(InvalidInputError, match="'c'") as caught:
        evaluate(model, frame, "y", features=["a", "c"])
    assert caught.value.details["missing"] == ["c"]
    with pytest.raises(InvalidInputError, match="'country'") as caught:
        evaluate(model, frame, "y", features=["a", "b"], slice_by="country")
    assert caught.value.details["field"] == "slice_by"


def test_bad_inputs_are_refused(regression: tuple[Any, pd.DataFrame]) -> None:
    model, frame = regression
    with pytest.raises(InvalidInputError) as caught:
        evaluate(model, frame.head(0), "y", features=["a", "b"])
    assert caught.value.details["field"] == "data"
    with_null = frame.astype({"y": "float64"})
    with_null.loc[0, "y"] = np.nan
    with pytest.raises(InvalidInputError, match="null"):
        evaluate(model, with_null, "y", features=["a", "b"])
    with pytest.raises(InvalidInputError) as caught:
        evaluate(model, frame, "y", features=["a", "b"], task="ranking")  # type: ignore[arg-type]
    assert caught.value.details["field"] == "task"
    with pytest.raises(InvalidInputError) as caught:
        evaluate(object(), frame, "y", features=["a", "b"])
    assert caught.value.details["field"] == "model"
    with pytest.raises(InvalidInputError) as caught:
        evaluate(model, [1, 2, 3], "y")
    assert caught.value.details["field"] == "data"


def test_task_override(regression: tuple[Any, pd.DataFrame]) -> None:
    model, frame = regression
    counts = frame.assign(y=frame["y"].round().clip(45, 55).astype(int))
    assert infer_task(counts["y"]) == "classification"
    result = evaluate(model, counts, "y", features=["a", "b"], task="regression",
                      plots=False)
    assert result.task == "regression"
    assert "rmse" in result.metrics


@pytest.mark.parametrize(("values", "task"), [
    ([True, False, True], "classification"),
    (["a", "b", "a"], "classification"),
    (pd.Series(["x", "y"], dtype="category"), "classification"),
    ([0, 1, 2, 1], "classification"),
    ([0.0, 1.0, 1.0], "classification"),
    (list(range(21)), "regression"),
    ([0.5, 1.0, 2.0], "regression"),
    (pd.Series([1, None, 3], dtype="Int64"), "classification"),
    (np.array([1.5, np.nan, 2.5]), "regression"),
])
def test_infer_task(values: Any, task: str) -> None:
    assert infer_task(values) == task


def test_infer_task_needs_values() -> None:
    with pytest.raises(InvalidInputError):
        infer_task([None, None])


def test_dict_round_trip_is_json_safe(binary: tuple[Any, pd.DataFrame]) -> None:
    model, frame = binary
    result = evaluate(model, frame, "y", slice_by="region", min_slice_rows=20)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["plots"] == sorted(result.plots)
    again = Evaluation.from_dict(data, plots=result.plots)
    assert again == result
    names_only = Evaluation.from_dict(data)
    assert set(names_only.plots) == set(result.plots)
    assert names_only.to_dict() == result.to_dict()
    with pytest.raises(InvalidInputError):
        Evaluation.from_dict({"task": "ranking", "rows": 1, "metrics": {}})


def test_metric_metadata_covers_every_metric() -> None:
    produced = {m for names in METRICS.values() for m in names}
    assert produced == set(HIGHER_IS_BETTER)
    assert HIGHER_IS_BETTER["accuracy"] and not HIGHER_IS_BETTER["rmse"]
