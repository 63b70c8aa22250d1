"""Fairness measurements across the groups of a sensitive attribute, with fairlearn.

Classification (binary labels only):
    ``demographic_parity_difference``: largest gap in selection rate (share of rows
    predicted positive) between two groups; ``equalized_odds_difference``: the larger of
    the largest gaps in true positive rate and in false positive rate.

Regression:
    ``error_gap_mae`` and ``error_gap_rmse``: the per-group MAE (RMSE) of the worst group
    minus that of the best group.

The positive class is ``1``/``True`` when the labels are 0/1 or bool, else the larger of the
two sorted labels (pass ``pos_label`` to choose). Nulls in the sensitive attribute form a
group of their own named ``"null"``; every other group is named by ``str(value)``.
A value that cannot be computed (NaN) is left out of the result.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from modelyard.errors import InvalidInputError
from modelyard.registry.evaluation import TASKS, Task

if TYPE_CHECKING:
    import numpy as np

__all__ = ["FAIRNESS_METRICS", "NULL_GROUP", "fairness_metrics", "group_report"]

NULL_GROUP = "null"
FAIRNESS_METRICS: dict[Task, tuple[str, ...]] = {
    "classification": ("demographic_parity_difference", "equalized_odds_difference"),
    "regression": ("error_gap_mae", "error_gap_rmse"),
}


def fairness_metrics(y_true: Any, y_pred: Any, sensitive: Any, task: Task, *,
                     pos_label: Any = None) -> dict[str, float]:
    """The disparity between the groups of ``sensitive`` (see the module doc)."""
    from fairlearn.metrics import (
        MetricFrame,
        demographic_parity_difference,
        equalized_odds_difference,
    )
    from sklearn.metrics import mean_absolute_error, root_mean_squared_error

    truth, predicted, groups = _inputs(y_true, y_pred, sensitive, task)
    if task == "classification":
        truth, predicted = _binarize(truth, predicted, pos_label)
        values = {
            "demographic_parity_difference": demographic_parity_difference(
                truth, predicted, sensitive_features=groups),
            "equalized_odds_difference": equalized_odds_difference(
                truth, predicted, sensitive_features=groups),
        }
    else:
        frame = MetricFrame(metrics={"mae": mean_absolute_error,
                                     "rmse": root_mean_squared_error},
                            y_true=truth, y_pred=predicted, sensitive_features=groups)
        gaps = frame.difference(method="between_groups")
        values = {"error_gap_mae": gaps["mae"], "error_gap_rmse": gaps["rmse"]}
    return _finite(values)


def group_report(y_true: Any, y_pred: Any, sensitive: Any, task: Task, *,
                 pos_label: Any = None) -> dict[str, dict[str, float]]:
    """Per group (as named in the module doc): ``rows`` plus, for classification,
    ``selection_rate``, ``true_positive_rate``, ``false_positive_rate`` and ``accuracy``;
    for regression ``mae`` and ``rmse``. Computed with fairlearn's MetricFrame."""
    from fairlearn.metrics import (
        MetricFrame,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )
    from sklearn.metrics import accuracy_score, mean_absolute_error, root_mean_squared_error

    truth, predicted, groups = _inputs(y_true, y_pred, sensitive, task)
    metrics: dict[str, Any]
    if task == "classification":
        truth, predicted = _binarize(truth, predicted, pos_label)
        metrics = {"selection_rate": selection_rate, "true_positive_rate": true_positive_rate,
                   "false_positive_rate": false_positive_rate, "accuracy": accuracy_score}
    else:
        metrics = {"mae": mean_absolute_error, "rmse": root_mean_squared_error}
    frame = MetricFrame(metrics=metrics, y_true=truth, y_pred=predicted,
                        sensitive_features=groups)
    counts = {str(g): float(c) for g, c in zip(*_unique_counts(groups), strict=True)}
    report: dict[str, dict[str, float]] = {}
    for group, row in frame.by_group.iterrows():
        report[str(group)] = {**_finite(dict(row.items())), "rows": counts[str(group)]}
    return report


def _inputs(y_true: Any, y_pred: Any, sensitive: Any, task: Task
            ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    if task not in TASKS:
        raise InvalidInputError(f"task must be one of {list(TASKS)}, got {task!r}",
                                field="task")
    truth = _column(y_true, "y_true")
    predicted = _column(y_pred, "y_pred")
    groups = _groups(_column(sensitive, "sensitive"))
    if not len(truth) == len(predicted) == len(groups):
        raise InvalidInputError(
            f"lengths differ: y_true has {len(truth)} rows, y_pred {len(predicted)}, "
            f"sensitive {len(groups)}", field="sensitive")
    if len(truth) == 0:
        raise InvalidInputError("no rows to measure fairness on", field="y_true")
    if task == "regression":
        try:
            return truth.astype("float64"), predicted.astype("float64"), groups
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"regression needs numeric labels and predictions: "
                                    f"{exc}", field="task") from exc
    return truth, predicted, groups


def _column(values: Any, name: str) -> np.ndarray[Any, Any]:
    import numpy as np

    convert = getattr(values, "to_numpy", None)
    array = np.asarray(convert() if callable(convert) else values)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array.reshape(-1)
    if array.ndim != 1:
        raise InvalidInputError(f"{name} must be one column, got shape {array.shape}",
                                field=name)
    return array


def _groups(values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Group names as strings; nulls (None, NaN, NaT, pd.NA) become ``"null"``."""
    import numpy as np
    import pandas as pd

    nulls = pd.isna(values)
    return np.array([NULL_GROUP if n else str(v)
                     for v, n in zip(values.tolist(), nulls, strict=True)], dtype=object)


def _binarize(truth: np.ndarray[Any, Any], predicted: np.ndarray[Any, Any], pos_label: Any
              ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """0/1 arrays for the positive class, refusing more than two labels."""
    import numpy as np
    import pandas as pd

    labels = list(pd.unique(pd.Series(np.concatenate(
        [truth.astype(object), predicted.astype(object)]), dtype=object)))
    if len(labels) > 2:
        raise InvalidInputError(
            f"demographic parity and equalized odds need a binary task, but the labels "
            f"and predictions hold {len(labels)} classes: {sorted(map(str, labels))}",
            field="task")
    if pos_label is None:
        if all(isinstance(v, bool | np.bool_ | int | np.integer) and v in (0, 1)
               for v in labels):
            pos_label = 1
        else:
            try:
                pos_label = sorted(labels)[-1]
            except TypeError:
                pos_label = sorted(labels, key=str)[-1]
    return ((truth == pos_label).astype(int), (predicted == pos_label).astype(int))


def _unique_counts(groups: np.ndarray[Any, Any]) -> tuple[list[Any], list[int]]:
    import numpy as np

    names, counts = np.unique(groups.astype(str), return_counts=True)
    return list(names), [int(c) for c in counts]


def _finite(values: dict[Any, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in values.items():
        number = float(value)
        if math.isfinite(number):
            out[str(key)] = number
    return out
