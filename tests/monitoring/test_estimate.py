"""CBPE: estimates from calibrated probabilities land on the measured metrics, follow a
covariate shift, and an isotonic calibration repairs an over-confident model."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.linear_model import LinearRegression, LogisticRegression, RidgeClassifier

from modelyard.errors import InvalidInputError
from modelyard.monitoring.estimate import (
    MAX_KNOTS,
    ScoreCalibration,
    estimate_performance,
    fit_calibration,
)
from modelyard.registry.evaluation import Evaluation, evaluate

ROWS = 20_000
TOLERANCE = 0.015  # about four standard errors of an accuracy on 20,000 rows


def _calibrated(rows: int, seed: int, a: float = 2.0, b: float = 2.0
                ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """P(positive) ~ Beta(a, b), then the label drawn from it: calibrated by design."""
    rng = np.random.default_rng(seed)
    p = rng.beta(a, b, rows)
    return p, (rng.random(rows) < p).astype(int)


def _sharpen(p: np.ndarray[Any, Any], power: float = 3.0) -> np.ndarray[Any, Any]:
    """An over-confident version of ``p``: its logit multiplied by ``power``."""
    out: np.ndarray[Any, Any] = 1.0 / (1.0 + ((1.0 - p) / p) ** power)
    return out


def _measured_binary(y: Any, pred: Any, score: Any) -> dict[str, float]:
    return {"accuracy": skm.accuracy_score(y, pred), "precision": skm.precision_score(y, pred),
            "recall": skm.recall_score(y, pred), "f1": skm.f1_score(y, pred),
            "roc_auc": skm.roc_auc_score(y, score)}


def _multiclass(rows: int, seed: int, alpha: float = 1.0
                ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rng = np.random.default_rng(seed)
    proba = rng.dirichlet([alpha] * 3, rows)
    drawn = (rng.random(rows)[:, None] > proba.cumsum(axis=1)).sum(axis=1)
    return proba, np.array(["a", "b", "c"])[np.minimum(drawn, 2)]


def test_binary_estimates_match_the_measured_metrics() -> None:
    p, y = _calibrated(ROWS, 0)
    estimate = estimate_performance(p, [0, 1])
    measured = _measured_binary(y, (p > 0.5).astype(int), p)
    assert set(estimate.metrics) == set(measured)
    for name, value in measured.items():
        assert estimate.metrics[name] == pytest.approx(value, abs=TOLERANCE), name
    assert estimate.method == "cbpe" and estimate.rows == ROWS and not estimate.calibrated
    assert "estimate" in estimate.message and "not measured" in estimate.message
    two_columns = estimate_performance(np.column_stack([1 - p, p]), ["no", "yes"])
    assert two_columns.metrics == pytest.approx(estimate.metrics)


def test_given_predictions_are_used() -> None:
    p, y = _calibrated(ROWS, 1)
    pred = np.where(p > 0.3, "yes", "no")  # a lower threshold than the arg-max
    estimate = estimate_performance(np.column_stack([1 - p, p]), ["no", "yes"],
                                    predicted=pred)
    truth = np.where(y == 1, "yes", "no")
    assert estimate.metrics["recall"] == pytest.approx(
        skm.recall_score(truth, pred, pos_label="yes"), abs=TOLERANCE)
    assert estimate.metrics["precision"] == pytest.approx(
        skm.precision_score(truth, pred, pos_label="yes"), abs=TOLERANCE)
    assert estimate.metrics["accuracy"] == pytest.approx(skm.accuracy_score(truth, pred),
                                                         abs=TOLERANCE)


def test_multiclass_accuracy_and_f1_macro() -> None:
    proba, y = _multiclass(ROWS, 2)
    classes = ["a", "b", "c"]
    estimate = estimate_performance(proba, classes)
    pred = np.array(classes)[proba.argmax(axis=1)]
    assert set(estimate.metrics) == {"accuracy", "f1_macro"}
    assert estimate.metrics["accuracy"] == pytest.approx(skm.accuracy_score(y, pred),
                                                         abs=TOLERANCE)
    assert estimate.metrics["f1_macro"] == pytest.approx(
        skm.f1_score(y, pred, average="macro"), abs=TOLERANCE)
    assert estimate.metrics["accuracy"] == pytest.approx(proba.max(axis=1).mean())


def test_the_estimate_follows_a_covariate_shift() -> None:
    """P(X) changes, P(y | X) does not: the real accuracy falls and the estimate with it."""
    rng = np.random.default_rng(3)

    def draw(rows: int, scale: float) -> tuple[pd.DataFrame, np.ndarray[Any, Any]]:
        x = pd.DataFrame({"a": rng.normal(scale=scale, size=rows),
                          "b": rng.normal(scale=scale, size=rows)})
        chance = 1.0 / (1.0 + np.exp(-(2.0 * x["a"] - x["b"]).to_numpy()))
        return x, (rng.random(rows) < chance).astype(int)

    x_train, y_train = draw(5_000, 1.0)
    model = LogisticRegression().fit(x_train, y_train)
    x_ref, y_ref = draw(5_000, 1.0)
    calibration = fit_calibration(y_ref, model.predict_proba(x_ref), model.classes_)
    assert calibration is not None and calibration.kind == "binary"
    found = {}
    for name, scale in (("before", 1.0), ("after", 0.35)):
        x, y = draw(ROWS, scale)
        proba = model.predict_proba(x)
        estimate = estimate_performance(proba, model.classes_, predicted=model.predict(x),
                                        calibration=calibration)
        truth = skm.accuracy_score(y, model.predict(x))
        assert estimate.metrics["accuracy"] == pytest.approx(truth, abs=TOLERANCE), name
        assert estimate.metrics["roc_auc"] == pytest.approx(
            skm.roc_auc_score(y, proba[:, 1]), abs=TOLERANCE), name
        found[name] = (truth, estimate.metrics["accuracy"])
    real_drop = found["before"][0] - found["after"][0]
    estimated_drop = found["before"][1] - found["after"][1]
    assert real_drop > 0.1
    assert estimated_drop == pytest.approx(real_drop, abs=0.02)


def test_calibration_repairs_an_over_confident_binary_model() -> None:
    p_fit, y_fit = _calibrated(5_000, 4)
    calibration = fit_calibration(y_fit, _sharpen(p_fit), [0, 1])
    assert calibration is not None
    p, y = _calibrated(ROWS, 5)
    raw = _sharpen(p)
    measured = _measured_binary(y, (raw > 0.5).astype(int), raw)
    naive = estimate_performance(raw, [0, 1])
    fixed = estimate_performance(raw, [0, 1], calibration=calibration)
    assert fixed.calibrated and str(calibration.rows) in fixed.message
    for name, value in measured.items():
        assert abs(fixed.metrics[name] - value) < abs(naive.metrics[name] - value), name
        assert fixed.metrics[name] == pytest.approx(value, abs=0.03), name
    assert naive.metrics["accuracy"] - measured["accuracy"] > 0.1  # over-confident


def test_top_label_calibration_repairs_an_over_confident_multiclass_model() -> None:
    classes = ["a", "b", "c"]
    proba, y = _multiclass(ROWS + 5_000, 6)
    sharp = proba ** 3 / (proba ** 3).sum(axis=1, keepdims=True)
    calibration = fit_calibration(y[:5_000], sharp[:5_000], classes)
    assert calibration is not None and calibration.kind == "top_label"
    rest, truth = sharp[5_000:], y[5_000:]
    pred = np.array(classes)[rest.argmax(axis=1)]
    measured = {"accuracy": skm.accuracy_score(truth, pred),
                "f1_macro": skm.f1_score(truth, pred, average="macro")}
    naive = estimate_performance(rest, classes)
    fixed = estimate_performance(rest, classes, calibration=calibration)
    for name, value in measured.items():
        assert fixed.metrics[name] == pytest.approx(value, abs=TOLERANCE), name
        assert naive.metrics[name] - value > 0.1, name


def test_fit_calibration_knots_are_few_and_monotone() -> None:
    p, y = _calibrated(ROWS, 7)
    calibration = fit_calibration(y, _sharpen(p), [0, 1])
    assert calibration is not None and calibration.rows == ROWS
    assert 2 <= len(calibration.x) <= MAX_KNOTS
    assert list(calibration.x) == sorted(set(calibration.x))
    assert list(calibration.y) == sorted(calibration.y)
    assert calibration.y[0] >= 0.0 and calibration.y[-1] <= 1.0
    out = calibration.apply([-1.0, 0.0, 0.5, 1.0, 2.0])
    assert np.all(np.diff(out) >= 0) and out[0] == calibration.y[0]
    assert out[-1] == calibration.y[-1] and out[2] == pytest.approx(0.5, abs=0.05)


def test_fit_calibration_needs_rows_and_two_classes() -> None:
    p, y = _calibrated(500, 8)
    assert fit_calibration(y[:99], p[:99], [0, 1]) is None
    assert fit_calibration(np.ones(500, dtype=int), p, [0, 1]) is None
    assert fit_calibration(np.full(500, 7), p, [0, 1]) is None  # not the model's classes
    small = fit_calibration(y[:100], p[:100], [0, 1])
    assert small is not None and small.rows == 100


def test_round_trips() -> None:
    p, y = _calibrated(2_000, 9)
    calibration = fit_calibration(y, p, [0, 1])
    assert calibration is not None
    data = json.loads(json.dumps(calibration.to_dict()))
    assert set(data) == {"kind", "x", "y", "rows"}
    again = ScoreCalibration.from_dict(data)
    assert again == calibration
    assert np.array_equal(again.apply(p), calibration.apply(p))
    reference = {"task": "classification", "rows": 10,
                 "metrics": {"accuracy": 0.7, "log_loss": 0.5}}
    estimate = estimate_performance(p, [0, 1], calibration=calibration, reference=reference)
    assert estimate.reference == {"accuracy": 0.7}
    payload = json.loads(json.dumps(estimate.to_dict(), allow_nan=False))
    assert set(payload) == {"method", "rows", "calibrated", "metrics", "reference",
                            "skipped", "message"}
    assert payload["metrics"] == pytest.approx(estimate.metrics)


def test_undefined_estimates_are_skipped_and_empty_windows_answer() -> None:
    p = np.full(50, 0.2)
    estimate = estimate_performance(p, [0, 1])  # nothing predicted positive
    assert "precision" not in estimate.metrics and "precision" in estimate.skipped
    assert estimate.metrics["accuracy"] == pytest.approx(0.8)
    assert "roc_auc" in estimate.metrics  # one score: the diagonal
    none = estimate_performance(np.zeros(10), [0, 1])
    assert "recall" in none.skipped and "roc_auc" in none.skipped
    empty = estimate_performance(np.empty((0, 2)), [0, 1])
    assert empty.rows == 0 and empty.metrics == {} and "no predictions" in empty.message


def test_evaluation_stores_a_calibration() -> None:
    rng = np.random.default_rng(10)
    frame = pd.DataFrame({"a": rng.normal(size=600), "b": rng.normal(size=600)})
    frame["y"] = (frame["a"] + rng.normal(scale=0.7, size=600) > 0).astype(int)
    model = LogisticRegression().fit(frame[["a", "b"]], frame["y"])
    result = evaluate(model, frame, "y", plots=False)
    assert result.calibration is not None
    calibration = ScoreCalibration.from_dict(result.calibration)
    assert calibration.kind == "binary" and calibration.rows == 600
    assert result.to_dict()["calibration"] == result.calibration
    old = {k: v for k, v in result.to_dict().items() if k != "calibration"}
    assert Evaluation.from_dict(old).calibration is None
    assert Evaluation.from_dict(result.to_dict()).calibration == result.calibration
    no_proba = RidgeClassifier().fit(frame[["a", "b"]], frame["y"])
    assert evaluate(no_proba, frame, "y", plots=False).calibration is None
    few = evaluate(model, frame.head(50), "y", plots=False)
    assert few.calibration is None
    regression = LinearRegression().fit(frame[["a"]], frame["b"])
    assert evaluate(regression, frame[["a", "b"]], "b", plots=False).calibration is None


@pytest.mark.parametrize(("call", "field"), [
    (lambda: estimate_performance(np.full((5, 3), 0.3), [0, 1]), "probabilities"),
    (lambda: estimate_performance(np.full(5, 0.3), [0, 1, 2]), "probabilities"),
    (lambda: estimate_performance([[0.5, np.nan]], [0, 1]), "probabilities"),
    (lambda: estimate_performance([[-3.0, 4.0]], [0, 1]), "probabilities"),
    (lambda: estimate_performance([["x", "y"]], [0, 1]), "probabilities"),
    (lambda: estimate_performance([[0.5, 0.5]], [1]), "classes"),
    (lambda: estimate_performance([[0.5, 0.5]], [1, 1]), "classes"),
    (lambda: estimate_performance([[0.5, 0.5]], "ab"), "classes"),
    (lambda: estimate_performance([[0.5, 0.5]], [0, 1], predicted=[2]), "predicted"),
    (lambda: estimate_performance([[0.5, 0.5]], [0, 1], predicted=[0, 1]), "predicted"),
    (lambda: estimate_performance([[0.5, 0.5]], [0, 1], predicted=[None]), "predicted"),
    (lambda: estimate_performance(
        [[0.5, 0.5]], [0, 1], calibration=ScoreCalibration("top_label", (0.0, 1.0), (0.0, 1.0), 9)),
     "calibration"),
    (lambda: estimate_performance([[0.5, 0.5]], [0, 1], reference={"metrics": 3}),
     "reference"),
    (lambda: estimate_performance([[0.5, 0.5]], [0, 1],
                                  reference={"task": "regression", "metrics": {}}),
     "reference"),
    (lambda: fit_calibration([0, 1], np.full((3, 2), 0.5), [0, 1]), "y_true"),
    (lambda: fit_calibration([0, None], np.full((2, 2), 0.5), [0, 1]), "y_true"),
    (lambda: ScoreCalibration.from_dict({"kind": "binary", "x": [0.0]}), "calibration"),
    (lambda: ScoreCalibration.from_dict({"kind": "binary", "x": [0.0, 1.0], "y": ["a", 1],
                                    "rows": 1}), "calibration"),
    (lambda: ScoreCalibration("binary", (0.0, 1.0), (0.5,), 1), "calibration"),
    (lambda: ScoreCalibration("binary", (1.0, 0.0), (0.2, 0.5), 1), "calibration"),
    (lambda: ScoreCalibration("binary", (0.0, 1.0), (0.5, 0.2), 1), "calibration"),
    (lambda: ScoreCalibration("binary", (0.0, 1.0), (0.5, 1.5), 1), "calibration"),
    (lambda: ScoreCalibration("platt", (0.0, 1.0), (0.2, 0.5), 1), "calibration"),  # type: ignore[arg-type]
])
def test_bad_inputs_name_the_field(call: Any, field: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        call()
    assert caught.value.details["field"] == field
