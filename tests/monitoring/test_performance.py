"""Measured performance of logged predictions: every metric against scikit-learn on the
labelled rows, slices, periods, changes against the registered evaluation, bad inputs."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.linear_model import LinearRegression, LogisticRegression

from modelyard.errors import InvalidInputError
from modelyard.monitoring.performance import (
    MAX_SLICE_VALUES,
    MetricChange,
    measure_performance,
)
from modelyard.registry.evaluation import evaluate
from modelyard.registry.metrics import metric_scorer

DAY_US = 86_400_000_000
START_US = 19_700 * DAY_US  # a midnight UTC


def _features(rows: int, seed: int, scale: float = 1.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.normal(scale=scale, size=rows),
                         "b": rng.normal(scale=scale, size=rows)})


@pytest.fixture(scope="module")
def model() -> LogisticRegression:
    train = _features(2_000, 0)
    rng = np.random.default_rng(1)
    y = (train["a"] - train["b"] + rng.normal(scale=0.8, size=len(train)) > 0).astype(int)
    return LogisticRegression().fit(train, y)


@pytest.fixture(scope="module")
def window(model: LogisticRegression) -> pd.DataFrame:
    """3,000 served rows over three days, 30 % not labelled yet (NaN)."""
    rows = 3_000
    frame = _features(rows, 2)
    rng = np.random.default_rng(3)
    frame["label"] = (frame["a"] - frame["b"] + rng.normal(scale=0.8, size=rows) > 0
                      ).astype("float64")
    frame.loc[rng.random(rows) < 0.3, "label"] = np.nan
    frame["prediction"] = model.predict(frame[["a", "b"]])
    frame["score"] = model.predict_proba(frame[["a", "b"]])[:, 1]
    frame["region"] = rng.choice(["north", "south", "east"], size=rows)
    frame.loc[rng.choice(rows, 40, replace=False), "region"] = None
    frame["at_us"] = START_US + np.sort(rng.integers(0, 3 * DAY_US, size=rows))
    return frame


def _proba(model: LogisticRegression, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
    return np.asarray(model.predict_proba(frame[["a", "b"]]))


def _binary_reference(y: Any, pred: Any, prob: Any) -> dict[str, float]:
    y = np.asarray(y).astype(int)
    return {"accuracy": skm.accuracy_score(y, pred), "precision": skm.precision_score(y, pred),
            "recall": skm.recall_score(y, pred), "f1": skm.f1_score(y, pred),
            "roc_auc": skm.roc_auc_score(y, prob),
            "log_loss": skm.log_loss(y, np.column_stack([1 - prob, prob])),
            "brier": skm.brier_score_loss(y, prob)}


def test_binary_metrics_match_sklearn_on_the_labelled_rows(
        model: LogisticRegression, window: pd.DataFrame) -> None:
    report = measure_performance(window["label"], window["prediction"],
                                 probabilities=_proba(model, window), classes=model.classes_)
    done = window[window["label"].notna()]
    assert report.task == "classification"
    assert (report.rows, report.labelled_rows) == (3_000, len(done))
    expected = _binary_reference(done["label"], done["prediction"], done["score"])
    for name, value in expected.items():
        assert report.metrics[name] == pytest.approx(value), name
    assert "ece" in report.metrics
    assert report.skipped == {}
    assert f"{len(done)} labelled row(s) of 3000" in report.message
    assert all(c.reference is None and c.worse is None for c in report.changes)
    assert [c.metric for c in report.changes] == list(report.metrics)


def test_same_metrics_as_evaluate(model: LogisticRegression, window: pd.DataFrame) -> None:
    done = window[window["label"].notna()].astype({"label": int})
    registered = evaluate(model, done[["a", "b", "label"]], "label", plots=False)
    report = measure_performance(done["label"], model.predict(done[["a", "b"]]),
                                 probabilities=_proba(model, done), classes=model.classes_)
    assert report.metrics == pytest.approx(registered.metrics)
    one_column = measure_performance(done["label"], done["prediction"],
                                     probabilities=done["score"].to_numpy())
    assert one_column.metrics == pytest.approx(registered.metrics)


def test_multiclass_string_labels_with_missing_ones() -> None:
    train = _features(1_500, 4)
    names = np.where(train["a"] > 0.5, "high", np.where(train["a"] < -0.5, "low", "mid"))
    clf = LogisticRegression().fit(train, names)
    served = _features(900, 5)
    truth = np.where(served["a"] > 0.4, "high", np.where(served["a"] < -0.6, "low", "mid"))
    labels: list[str | None] = list(truth)
    for i in range(0, 900, 4):
        labels[i] = None
    pred, proba = clf.predict(served), clf.predict_proba(served)
    report = measure_performance(labels, pred, probabilities=proba, classes=clf.classes_)
    keep = np.array([v is not None for v in labels])
    y, p = truth[keep], pred[keep]
    assert report.labelled_rows == int(keep.sum()) == 675
    assert report.metrics["accuracy"] == pytest.approx(skm.accuracy_score(y, p))
    assert report.metrics["f1_macro"] == pytest.approx(skm.f1_score(y, p, average="macro"))
    assert report.metrics["recall_macro"] == pytest.approx(
        skm.recall_score(y, p, average="macro"))
    assert report.metrics["roc_auc"] == pytest.approx(
        skm.roc_auc_score(y, proba[keep], multi_class="ovr", average="macro"))
    assert report.metrics["log_loss"] == pytest.approx(skm.log_loss(y, proba[keep]))
    assert "precision" not in report.metrics


def test_regression_metrics_with_missing_labels() -> None:
    train = _features(500, 6)
    reg = LinearRegression().fit(train, 40 + 3 * train["a"] - train["b"])
    served = _features(400, 7)
    rng = np.random.default_rng(8)
    truth = 40 + 3 * served["a"] - served["b"] + rng.normal(size=400)
    truth[rng.random(400) < 0.5] = np.nan
    pred = reg.predict(served)
    report = measure_performance(truth, pred)
    keep = truth.notna().to_numpy()
    y, p = truth[keep], pred[keep]
    assert report.task == "regression"
    assert report.metrics == pytest.approx({
        "rmse": skm.root_mean_squared_error(y, p), "mae": skm.mean_absolute_error(y, p),
        "r2": skm.r2_score(y, p), "mape": skm.mean_absolute_percentage_error(y, p)})


def test_slices_equal_the_filtered_rows(model: LogisticRegression, window: pd.DataFrame
                                        ) -> None:
    report = measure_performance(window["label"], window["prediction"],
                                 probabilities=_proba(model, window), classes=model.classes_,
                                 slices=window[["region"]])
    done = window[window["label"].notna()]
    assert set(report.slices["region"]) == {"east", "north", "south", "null"}
    for value, got in report.slices["region"].items():
        part = done[done["region"].isna()] if value == "null" else done[
            done["region"] == value]
        expected = _binary_reference(part["label"], part["prediction"], part["score"])
        assert got["rows"] == len(part)
        for name, number in expected.items():
            assert got[name] == pytest.approx(number), (value, name)
    as_mapping = measure_performance(window["label"], window["prediction"],
                                     slices={"region": window["region"].tolist()},
                                     min_rows=50)
    assert set(as_mapping.slices["region"]) == {"east", "north", "south"}
    assert "fewer than min_rows=50" in as_mapping.skipped["slice region=null"]


def test_slice_values_are_capped(window: pd.DataFrame) -> None:
    ids = np.arange(len(window)) % (MAX_SLICE_VALUES + 10)
    report = measure_performance(window["label"], window["prediction"],
                                 slices={"customer": ids})
    assert len(report.slices["customer"]) == MAX_SLICE_VALUES
    assert "kept the 50" in report.skipped["slice customer"]


def test_periods_per_day(model: LogisticRegression, window: pd.DataFrame) -> None:
    labels = window["label"].copy()
    day = (window["at_us"] - START_US) // DAY_US
    labels[day == 2] = np.nan  # the last day has no labels yet
    report = measure_performance(labels, window["prediction"],
                                 probabilities=_proba(model, window), classes=model.classes_,
                                 at_us=window["at_us"], period_us=DAY_US)
    assert [p["start_us"] for p in report.periods] == [START_US + d * DAY_US for d in range(3)]
    assert all(p["end_us"] - p["start_us"] == DAY_US for p in report.periods)
    assert [p["rows"] for p in report.periods] == [int((day == d).sum()) for d in range(3)]
    for d, period in enumerate(report.periods[:2]):
        part = window[(day == d) & labels.notna()]
        assert period["labelled_rows"] == len(part)
        assert period["metrics"]["accuracy"] == pytest.approx(
            skm.accuracy_score(part["label"].astype(int), part["prediction"]))
    assert report.periods[2]["labelled_rows"] == 0 and report.periods[2]["metrics"] == {}
    assert sum(p["labelled_rows"] for p in report.periods) == report.labelled_rows


def test_changes_against_the_registered_evaluation(model: LogisticRegression,
                                                   window: pd.DataFrame) -> None:
    reference_frame = _features(1_000, 9)
    rng = np.random.default_rng(10)
    reference_frame["y"] = (reference_frame["a"] - reference_frame["b"]
                            + rng.normal(scale=0.8, size=1_000) > 0).astype(int)
    registered = evaluate(model, reference_frame, "y", plots=False).to_dict()
    stored = json.loads(json.dumps(registered))
    del stored["metrics"]["brier"]
    flipped = window["label"].where(rng.random(len(window)) > 0.2, 1 - window["label"])
    report = measure_performance(flipped, window["prediction"],
                                 probabilities=_proba(model, window), classes=model.classes_,
                                 reference=stored, reference_dataset="holdout")
    changes = {c.metric: c for c in report.changes}
    assert set(changes) == set(report.metrics)
    accuracy = changes["accuracy"]
    assert accuracy.reference == registered["metrics"]["accuracy"]
    assert accuracy.change is not None and accuracy.reference is not None
    assert changes["log_loss"].change is not None
    assert accuracy.change == pytest.approx(accuracy.value - accuracy.reference)
    assert accuracy.relative_change == pytest.approx(accuracy.change / accuracy.reference)
    assert accuracy.worse is True and accuracy.change < -0.1
    assert changes["log_loss"].worse is True and changes["log_loss"].change > 0
    assert changes["brier"].reference is None and changes["brier"].worse is None
    assert report.reference_dataset == "holdout"
    assert "'holdout'" in report.message and "accuracy" in report.message
    assert "accuracy" in report.worse
    better = MetricChange.of("rmse", 1.0, 2.0)
    assert (better.change, better.relative_change, better.worse) == (-1.0, -0.5, False)
    assert MetricChange.of("custom", 1.0, 0.0).to_dict() == {
        "metric": "custom", "value": 1.0, "reference": 0.0, "change": 1.0,
        "relative_change": None, "worse": None}


def test_no_labels_yet_is_a_report_not_an_error(window: pd.DataFrame) -> None:
    nothing = pd.Series([np.nan] * len(window))
    report = measure_performance(nothing, window["prediction"], at_us=window["at_us"],
                                 period_us=DAY_US, slices=window[["region"]])
    assert report.task == "classification"  # guessed from the predictions
    assert (report.rows, report.labelled_rows) == (len(window), 0)
    assert report.metrics == {} and report.changes == () and report.slices == {}
    assert report.message.startswith("no labels yet in this window")
    assert len(report.periods) == 3 and all(p["metrics"] == {} for p in report.periods)
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["labelled_rows"] == 0 and data["metrics"] == {}
    few = measure_performance(window["label"].head(10), window["prediction"].head(10),
                              min_rows=20)
    assert few.metrics == {} and "fewer than min_rows=20" in few.message


def test_task_comes_from_the_reference_first() -> None:
    counts = [3.0, 4.0, np.nan, 5.0]
    reference = {"task": "regression", "rows": 10, "metrics": {"rmse": 1.0}}
    report = measure_performance(counts, [3.5, 4.0, 4.0, 4.5], reference=reference)
    assert report.task == "regression"
    assert report.changes[0].metric == "rmse" and report.changes[0].worse is False
    assert measure_performance(counts, [3, 4, 4, 5]).task == "classification"


def test_to_dict_is_json_safe(model: LogisticRegression, window: pd.DataFrame) -> None:
    registered = {"task": "classification", "rows": 5, "metrics": {"accuracy": 0.9}}
    report = measure_performance(window["label"], window["prediction"],
                                 probabilities=_proba(model, window), classes=model.classes_,
                                 slices=window[["region"]], at_us=window["at_us"],
                                 period_us=DAY_US, reference=registered)
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert set(data) == {"task", "rows", "labelled_rows", "metrics", "changes",
                         "reference_dataset", "slices", "periods", "skipped", "message"}
    assert data["changes"][0] == report.changes[0].to_dict()
    assert set(data["periods"][0]) == {"start_us", "end_us", "rows", "labelled_rows",
                                       "metrics"}
    assert data["slices"]["region"]["east"]["rows"] > 0


def test_metric_scorer_refuses_nulls_and_masks_keep_the_positive_class() -> None:
    with pytest.raises(InvalidInputError) as caught:
        metric_scorer([1, None], [1, 0], task="classification")
    assert caught.value.details["field"] == "y_true"
    scorer = metric_scorer(["no", "yes", "no", "yes"], ["no", "yes", "yes", "yes"],
                           task="classification")
    only_yes = scorer(np.array([False, True, False, True]))
    assert only_yes["precision"] == 1.0  # "yes" stays the positive class in the slice


def _bad(window: pd.DataFrame, model: LogisticRegression, **change: Any) -> None:
    arguments: dict[str, Any] = {"y_true": window["label"], "y_pred": window["prediction"]}
    arguments.update(change)
    measure_performance(**arguments)


@pytest.mark.parametrize(("change", "field"), [
    ({"y_pred": [1, 0]}, "y_pred"),
    ({"y_pred": np.zeros((3_000, 2))}, "y_pred"),
    ({"probabilities": np.full((10, 2), 0.5)}, "probabilities"),
    ({"probabilities": np.full((3_000, 3), 0.3), "classes": [0, 1]}, "classes"),
    ({"probabilities": np.full((3_000, 3), 0.3)}, "probabilities"),
    ({"probabilities": [["x", "y"]] * 3_000}, "probabilities"),
    ({"task": "ranking"}, "task"),
    ({"task": "regression", "probabilities": np.full(3_000, 0.5)}, "probabilities"),
    ({"slices": {"region": ["a", "b"]}}, "slices"),
    ({"slices": ["a"] * 3_000}, "slices"),
    ({"at_us": [1, 2, 3], "period_us": DAY_US}, "at_us"),
    ({"period_us": DAY_US}, "at_us"),
    ({"at_us": np.arange(3_000), "period_us": 0}, "period_us"),
    ({"at_us": np.arange(3_000), "period_us": 1}, "period_us"),
    ({"at_us": np.arange(3_000) + 0.5, "period_us": 10}, "at_us"),
    ({"min_rows": 0}, "min_rows"),
    ({"reference": {"rows": 1}}, "reference"),
    ({"reference": ["accuracy"]}, "reference"),
    ({"reference": {"task": "regression", "rows": 1, "metrics": {}},
      "task": "classification"}, "reference"),
])
def test_bad_inputs_name_the_field(window: pd.DataFrame, model: LogisticRegression,
                                   change: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        _bad(window, model, **change)
    assert caught.value.details["field"] == field


def test_null_predictions_on_labelled_rows_are_refused() -> None:
    with pytest.raises(InvalidInputError) as caught:
        measure_performance([1, 0, 1], [1, None, 1])
    assert caught.value.details["field"] == "y_pred"
    with pytest.raises(InvalidInputError) as caught:
        measure_performance([None, None], [None, None])
    assert caught.value.details["field"] == "task"
