"""Fairness measurements: against fairlearn's own functions and hand-made known gaps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    equalized_odds_difference,
)
from sklearn.metrics import mean_absolute_error, root_mean_squared_error

from modelyard.errors import InvalidInputError
from modelyard.registry.fairness import fairness_metrics, group_report


def _known_selection() -> tuple[list[int], list[int], list[str]]:
    """Group A: 8 of 10 selected, group B: 3 of 10; every true label positive."""
    y_pred = [1] * 8 + [0] * 2 + [1] * 3 + [0] * 7
    return [1] * 20, y_pred, ["A"] * 10 + ["B"] * 10


def test_known_demographic_parity_difference() -> None:
    y_true, y_pred, groups = _known_selection()
    measured = fairness_metrics(y_true, y_pred, groups, "classification")
    assert measured["demographic_parity_difference"] == pytest.approx(0.5)
    # every label is positive: the true positive rates are the selection rates
    assert measured["equalized_odds_difference"] == pytest.approx(0.5)


def test_known_equalized_odds_difference() -> None:
    # A: TPR 1.0, FPR 0.0; B: TPR 0.5, FPR 0.25 -> max(0.5, 0.25) = 0.5
    y_true = [1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0]
    y_pred = [1, 1, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0]
    groups = ["A"] * 6 + ["B"] * 6
    measured = fairness_metrics(y_true, y_pred, groups, "classification")
    assert measured["equalized_odds_difference"] == pytest.approx(0.5)
    assert measured["demographic_parity_difference"] == pytest.approx(0.0)


def test_matches_fairlearn_on_random_data() -> None:
    rng = np.random.default_rng(7)
    n = 500
    y_true = rng.integers(0, 2, n)
    y_pred = rng.integers(0, 2, n)
    groups = rng.choice(["a", "b", "c"], n)
    measured = fairness_metrics(pd.Series(y_true), y_pred, pd.Series(groups),
                                "classification")
    assert measured == pytest.approx({
        "demographic_parity_difference": demographic_parity_difference(
            y_true, y_pred, sensitive_features=groups),
        "equalized_odds_difference": equalized_odds_difference(
            y_true, y_pred, sensitive_features=groups),
    })


def test_string_and_bool_labels_use_the_larger_class_as_positive() -> None:
    y_true, y_pred, groups = _known_selection()
    words = fairness_metrics(["yes" if v else "no" for v in y_true],
                             ["yes" if v else "no" for v in y_pred], groups, "classification")
    flags = fairness_metrics([bool(v) for v in y_true], [bool(v) for v in y_pred], groups,
                             "classification")
    assert words["demographic_parity_difference"] == pytest.approx(0.5)
    assert flags["demographic_parity_difference"] == pytest.approx(0.5)
    # all labels negative: 0 is not taken as the positive class
    zeros = fairness_metrics([0] * 4, [0] * 4, ["A", "A", "B", "B"], "classification")
    assert zeros["demographic_parity_difference"] == 0.0


def test_regression_error_gaps() -> None:
    y_true = np.arange(20, dtype=float)
    errors = np.r_[np.full(10, 3.0), np.r_[np.full(5, 1.0), np.full(5, -1.0)]]
    groups = ["A"] * 10 + ["B"] * 10
    measured = fairness_metrics(y_true, y_true + errors, groups, "regression")
    assert measured == pytest.approx({"error_gap_mae": 2.0, "error_gap_rmse": 2.0})
    frame = MetricFrame(metrics={"mae": mean_absolute_error, "rmse": root_mean_squared_error},
                        y_true=y_true, y_pred=y_true + errors, sensitive_features=groups)
    assert measured["error_gap_mae"] == pytest.approx(frame.difference()["mae"])


def test_null_sensitive_values_form_their_own_group() -> None:
    y_true, y_pred, groups = _known_selection()
    with_nulls: list[str | None] = [None if g == "B" else g for g in groups]
    measured = fairness_metrics(y_true, y_pred, pd.Series(with_nulls), "classification")
    assert measured["demographic_parity_difference"] == pytest.approx(0.5)
    report = group_report(y_true, y_pred, with_nulls, "classification")
    assert set(report) == {"A", "null"}
    assert report["null"]["selection_rate"] == pytest.approx(0.3)
    numeric = group_report(y_true, y_pred, [1.0] * 10 + [np.nan] * 10, "classification")
    assert set(numeric) == {"1.0", "null"}


def test_group_report() -> None:
    y_true, y_pred, groups = _known_selection()
    report = group_report(y_true, y_pred, groups, "classification")
    assert report["A"] == pytest.approx({"selection_rate": 0.8, "true_positive_rate": 0.8,
                                         "false_positive_rate": 0.0, "accuracy": 0.8,
                                         "rows": 10.0})
    assert report["B"]["selection_rate"] == pytest.approx(0.3)
    values = group_report([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 5.0, 4.0], ["x", "x", "y", "y"],
                          "regression")
    assert values["x"] == {"mae": 0.0, "rmse": 0.0, "rows": 2.0}
    assert values["y"] == pytest.approx({"mae": 1.0, "rmse": 2 ** 0.5, "rows": 2.0})


def test_multiclass_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="binary") as caught:
        fairness_metrics([0, 1, 2], [0, 1, 2], ["a", "a", "b"], "classification")
    assert caught.value.details["field"] == "task"


def test_bad_inputs() -> None:
    with pytest.raises(InvalidInputError, match="lengths differ"):
        fairness_metrics([0, 1, 1], [0, 1], ["a", "b", "a"], "classification")
    with pytest.raises(InvalidInputError, match="lengths differ"):
        group_report([0, 1], [0, 1], ["a"], "classification")
    with pytest.raises(InvalidInputError) as caught:
        fairness_metrics([0, 1], [0, 1], ["a", "b"], "ranking")  # type: ignore[arg-type]
    assert caught.value.details["field"] == "task"
    with pytest.raises(InvalidInputError, match="numeric"):
        fairness_metrics(["a", "b"], ["a", "b"], ["x", "y"], "regression")
    with pytest.raises(InvalidInputError, match="one column"):
        fairness_metrics([0, 1], [0, 1], [["a", "b"], ["c", "d"]], "classification")
