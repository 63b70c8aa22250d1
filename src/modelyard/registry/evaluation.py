"""Model evaluation: standard metrics, per-slice metrics and plots (drawn by
:mod:`modelyard.stats.plots`).

Every metric is computed with scikit-learn. A metric that cannot be computed on the given
data (no ``predict_proba``, a single class present, zeros in the label for ``mape``, ...) is
left out of :attr:`Evaluation.metrics` and its reason put in :attr:`Evaluation.skipped`; NaN
is never stored.

:func:`modelyard.stats.metrics.metric_scorer` computes the same metrics from arrays
(labels, predictions and the optional class probabilities), on all rows or on a row mask;
:func:`evaluate` and :mod:`modelyard.monitoring.performance` both use it. For a classifier with
``predict_proba``, :attr:`Evaluation.calibration` holds the isotonic map from score to
probability fitted on the evaluation data (see :mod:`modelyard.stats.score_calibration`).
The metric names, :class:`Evaluation`, :func:`infer_task` and :func:`to_pandas` live in
:mod:`modelyard.stats.evaluation`, below the registry and monitoring; they are importable
from here as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from modelyard.errors import InvalidInputError
from modelyard.stats.evaluation import (
    HIGHER_IS_BETTER,
    MAX_CLASSES,
    METRICS,
    TASKS,
    Evaluation,
    Task,
    infer_task,
    to_pandas,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from modelyard.stats.metrics import _ClassificationScorer, _RegressionScorer

__all__ = ["HIGHER_IS_BETTER", "MAX_CLASSES", "METRICS", "TASKS", "Evaluation", "Task",
           "evaluate", "infer_task", "to_pandas"]


def evaluate(model: Any, data: Any, label: str, *, features: Sequence[str] | None = None,
             task: Task | None = None, slice_by: str | Sequence[str] | None = None,
             plots: bool = True, min_slice_rows: int = 1, name: str | None = None
             ) -> Evaluation:
    """Score ``model`` on ``data`` against the ``label`` column.

    ``features`` are the columns passed to ``model.predict`` (default: every column but
    the label and the slice columns). ``slice_by`` names columns whose values split the
    rows; each value (as a string, nulls as ``"null"``) with at least ``min_slice_rows``
    rows gets the same metrics plus ``"rows"``. A smaller slice is left out and noted in
    ``skipped`` under ``"slice COLUMN=VALUE"``. ``name`` names the model in errors (a
    model that fails on the data, e.g. on its nulls, raises one short InvalidInputError).
    """
    import numpy as np

    from modelyard.stats.metrics import (
        _ClassificationScorer,
        _RegressionScorer,
        _values,
        slice_masks,
    )

    frame = to_pandas(data)
    cols, slice_cols = _columns(frame, label, features, slice_by)
    if min_slice_rows < 1:
        raise InvalidInputError(f"min_slice_rows must be >= 1, got {min_slice_rows}",
                                field="min_slice_rows")
    chosen = infer_task(frame[label]) if task is None else task
    if chosen not in TASKS:
        raise InvalidInputError(f"task must be one of {list(TASKS)}, got {task!r}",
                                field="task")

    rows = len(frame)
    y_true = _values(frame[label])
    y_pred = _predict(model, frame[cols], rows,
                      f"model {name!r}" if name else f"model {type(model).__name__}")
    skipped: dict[str, str] = {}
    scorer: _ClassificationScorer | _RegressionScorer
    calibration = None
    if chosen == "classification":
        proba, classes, reason = _model_proba(model, frame[cols])
        scorer = _ClassificationScorer(y_true, y_pred, proba, classes, reason)
        calibration = _calibration(scorer)
    else:
        scorer = _RegressionScorer(y_true, y_pred, ("task", "model"))
    metrics = scorer(np.ones(rows, dtype=bool), skipped)

    slices: dict[str, dict[str, dict[str, float]]] = {}
    for col in slice_cols:
        slices[col] = {}
        for value, mask in slice_masks(frame[col]):
            count = int(mask.sum())
            if count < min_slice_rows:
                skipped[f"slice {col}={value}"] = (
                    f"{count} row(s), fewer than min_slice_rows={min_slice_rows}")
                continue
            slices[col][value] = {**scorer(mask, {}), "rows": float(count)}

    images: dict[str, bytes] = {}
    if plots:
        try:
            images = scorer.plots()
        except ImportError as exc:
            skipped["plots"] = f"matplotlib is not available: {exc}"
    return Evaluation(task=chosen, rows=rows, metrics=metrics, slices=slices, plots=images,
                      skipped=skipped, calibration=calibration)


def _columns(frame: pd.DataFrame, label: str, features: Sequence[str] | None,
             slice_by: str | Sequence[str] | None) -> tuple[list[Any], list[Any]]:
    """The feature and slice columns, after checking that ``frame`` can be evaluated."""
    slice_cols = [slice_by] if isinstance(slice_by, str) else list(slice_by or ())
    absent = [c for c in slice_cols if c not in frame.columns]
    if absent:
        raise InvalidInputError(f"slice column(s) {absent} not in data", field="slice_by",
                                missing=absent)
    if features is None:
        cols = [c for c in frame.columns if c != label and c not in slice_cols]
    else:
        cols = [features] if isinstance(features, str) else list(features)
    missing = [c for c in [label, *cols] if c not in frame.columns]
    if missing:
        raise InvalidInputError(f"data lacks column(s) {missing} (label {label!r} and "
                                "the feature columns are required)", field="data",
                                missing=missing)
    if not cols:
        raise InvalidInputError("no feature column to pass to the model", field="features")
    if len(frame) == 0:
        raise InvalidInputError("data has no rows", field="data")
    nulls = int(frame[label].isna().sum())
    if nulls:
        raise InvalidInputError(f"label column {label!r} has {nulls} null value(s)",
                                field="data", column=label)
    return cols, slice_cols


# --- helpers ----------------------------------------------------------------------------


def _model_proba(model: Any, features: pd.DataFrame
                 ) -> tuple[np.ndarray[Any, Any] | None, list[Any] | None, str]:
    """The model's class probabilities, its classes (None if unknown) and, when there are
    no probabilities, why; a one-column answer is the positive class's probability."""
    import numpy as np

    model_classes = getattr(model, "classes_", None)
    classes = None if model_classes is None else list(np.asarray(model_classes, dtype=object))
    method = getattr(model, "predict_proba", None)
    if not callable(method):
        return None, classes, "needs predict_proba, which the model does not have"
    try:
        proba = np.asarray(method(features), dtype="float64")
    except (AttributeError, NotImplementedError) as exc:
        return None, classes, f"needs predict_proba, which failed: {exc}"
    if proba.ndim == 1:
        proba = np.column_stack([1.0 - proba, proba])
    return proba, classes, ""


def _calibration(scorer: _ClassificationScorer) -> dict[str, Any] | None:
    """The score-to-probability map fitted on the evaluation data, as a dict."""
    import numpy as np

    if scorer.proba is None or not np.all(np.isfinite(scorer.proba)):
        return None
    from modelyard.stats.score_calibration import fit_calibration

    fitted = fit_calibration(scorer.y_true, scorer.proba, scorer.proba_classes)
    return None if fitted is None else fitted.to_dict()


def _predict(model: Any, features: pd.DataFrame, rows: int, who: str
             ) -> np.ndarray[Any, Any]:
    import numpy as np

    from modelyard.errors import ModelyardError
    from modelyard.registry.nulls import refuse_prediction

    predict = getattr(model, "predict", None)
    if not callable(predict):
        raise InvalidInputError(f"model {type(model).__name__} has no predict()",
                                field="model")
    try:
        predicted = predict(features)
    except ModelyardError:
        raise
    except Exception as exc:
        raise refuse_prediction(exc, features, who, "the evaluation data") from None
    convert = getattr(predicted, "to_numpy", None)
    result = np.asarray(convert() if callable(convert) else predicted)
    if result.ndim == 2 and result.shape[1] == 1:
        result = result.reshape(-1)
    if result.ndim != 1 or len(result) != rows:
        raise InvalidInputError(f"model.predict returned shape {result.shape}, expected "
                                f"({rows},)", field="model")
    return result
