"""Estimated performance of a classifier before its labels arrive (CBPE).

Confidence-based performance estimation, as NannyML describes it: when the model's class
probabilities are calibrated (of the rows given 0.8, 80 % are of that class), each row's
probability is the expected value of its confusion-matrix cell, so the expected counts
(and from them accuracy, precision, ...) follow from the probabilities alone. The estimate
follows a shift of the inputs (``P(X)`` changes, ``P(y | X)`` stays), because it is
recomputed on the new rows; it cannot see concept drift (``P(y | X)`` changes), and it is
only as good as the probabilities' calibration.

A model's raw scores are rarely calibrated. :func:`fit_calibration` (in
:mod:`modelyard.stats.score_calibration`, shared with the registry) fits an isotonic map
from score to probability on labelled data (the registered evaluation stores one, see
:attr:`modelyard.stats.evaluation.Evaluation.calibration`); :func:`estimate_performance`
applies it before estimating.

binary
    ``p`` is the calibrated probability of the positive class (the larger of the sorted
    classes, as in :mod:`modelyard.stats.evaluation`). Over the rows predicted positive,
    expected ``TP = sum(p)`` and ``FP = sum(1 - p)``; over the others ``FN = sum(p)`` and
    ``TN = sum(1 - p)``. ``accuracy``, ``precision``, ``recall`` and ``f1`` are computed
    from these counts. ``roc_auc``: the rows sorted by the raw score; at each distinct
    score, expected true and false positive rates are the cumulative sums of ``p`` and
    ``1 - p`` over their totals, and the curve is integrated by the trapezoid rule.

more classes
    ``accuracy`` is the mean calibrated probability of the predicted class (the mean
    calibrated top-label confidence when the predictions are the arg-max). ``f1_macro``
    averages, over the classes, the binary expected-count ``f1`` of "this class or not".
    A ``top_label`` calibration corrects only the top-label confidence; the remaining mass
    is shared among the other classes in the proportions of the raw probabilities, so
    ``f1_macro`` also assumes that those proportions are calibrated.

Estimates are ratios of expected counts: close to the measured values on large windows
(a few thousand rows), noisy on small ones. NumPy, pandas and scikit-learn load when a
function runs, not on import.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modelyard.errors import InvalidInputError
from modelyard.stats.score_calibration import (
    MAX_KNOTS,
    MIN_CALIBRATION_ROWS,
    ScoreCalibration,
    fit_calibration,
    label_column,
    positive_index,
    probability_matrix,
)

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["ESTIMATED", "MAX_KNOTS", "MIN_CALIBRATION_ROWS", "PerformanceEstimate",
           "ScoreCalibration", "estimate_performance", "fit_calibration"]

ESTIMATED: dict[str, tuple[str, ...]] = {
    "binary": ("accuracy", "precision", "recall", "f1", "roc_auc"),
    "multiclass": ("accuracy", "f1_macro"),
}


@dataclass(frozen=True)
class PerformanceEstimate:
    """What :func:`estimate_performance` expects the metrics to be once labels arrive."""

    method: str
    rows: int
    calibrated: bool
    metrics: dict[str, float]
    reference: dict[str, float]
    message: str
    skipped: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (no NaN: an undefined estimate is in ``skipped``)."""
        return {"method": self.method, "rows": self.rows, "calibrated": self.calibrated,
                "metrics": dict(self.metrics), "reference": dict(self.reference),
                "skipped": dict(self.skipped), "message": self.message}


def estimate_performance(probabilities: Any, classes: Sequence[Any], *, predicted: Any = None,
                         calibration: ScoreCalibration | None = None,
                         reference: Mapping[str, Any] | None = None) -> PerformanceEstimate:
    """Estimate the metrics of a window of predictions from the model's probabilities.

    ``probabilities``: ``(rows, len(classes))``, as for :func:`fit_calibration`.
    ``predicted``: the labels the model returned (default: the arg-max class; pass them
    when the model thresholds differently). ``calibration``: applied to the scores first
    (e.g. ``ScoreCalibration.from_dict(evaluation["calibration"])``); without it the
    probabilities are taken as calibrated. ``reference``: an ``Evaluation.to_dict()``
    whose measured values of the estimated metrics are returned alongside."""
    import numpy as np

    proba, names = probability_matrix(probabilities, classes)
    binary = len(names) == 2
    wanted = "binary" if binary else "top_label"
    if calibration is not None and calibration.kind != wanted:
        raise InvalidInputError(
            f"a {calibration.kind} calibration given for {len(names)} classes, which need "
            f"a {wanted} one", field="calibration")
    chosen = _predicted(predicted, names, proba)
    names_estimated = ESTIMATED["binary" if binary else "multiclass"]
    measured = _reference_metrics(reference)
    ref = {name: measured[name] for name in names_estimated if name in measured}
    rows = len(proba)
    how = ("with the scores calibrated on "
           f"{calibration.rows} labelled row(s)" if calibration is not None else
           "taking the probabilities as calibrated")
    if rows == 0:
        return PerformanceEstimate("cbpe", 0, calibration is not None, {}, ref,
                                   "no predictions in this window: nothing to estimate")
    skipped: dict[str, str] = {}
    if binary:
        metrics = _binary(proba, names, chosen, calibration, skipped)
    else:
        metrics = _multiclass(proba, chosen, calibration, skipped)
    metrics = {k: v for k, v in metrics.items() if np.isfinite(v)}
    message = (f"estimated from the model's confidence (CBPE) on {rows} row(s), {how}; "
               "not measured: labels are not used")
    return PerformanceEstimate("cbpe", rows, calibration is not None, metrics, ref, message,
                               skipped)


# --- the estimates ------------------------------------------------------------------------


def _binary(proba: NDArray[np.float64], names: list[Any], chosen: NDArray[np.intp],
            calibration: ScoreCalibration | None, skipped: dict[str, str]) -> dict[str, float]:
    positive = positive_index(names)
    score = proba[:, positive]
    p = calibration.apply(score) if calibration is not None else score
    flagged = chosen == positive
    tp, fp = float(p[flagged].sum()), float((1.0 - p[flagged]).sum())
    fn, tn = float(p[~flagged].sum()), float((1.0 - p[~flagged]).sum())
    metrics = {"accuracy": (tp + tn) / len(p)}
    for name, top, bottom, why in (
        ("precision", tp, tp + fp, f"no row predicted as {names[positive]!r}"),
        ("recall", tp, tp + fn, f"no row expected to be {names[positive]!r}"),
        ("f1", 2 * tp, 2 * tp + fp + fn, f"no row predicted or expected {names[positive]!r}"),
    ):
        if bottom > 0:
            metrics[name] = top / bottom
        else:
            skipped[name] = f"undefined: {why}"
    auc = _expected_roc_auc(score, p)
    if auc is None:
        skipped["roc_auc"] = "undefined: the probabilities expect a single class"
    else:
        metrics["roc_auc"] = auc
    return metrics


def _expected_roc_auc(score: NDArray[np.float64], p: NDArray[np.float64]) -> float | None:
    """Area under the expected ROC curve, one point per distinct ``score``."""
    import numpy as np

    order = np.argsort(-score, kind="stable")
    ranked, expected = score[order], p[order]
    group_ends = np.append(ranked[1:] != ranked[:-1], True)
    tp = np.cumsum(expected)[group_ends]
    fp = np.cumsum(1.0 - expected)[group_ends]
    if tp[-1] <= 0 or fp[-1] <= 0:
        return None
    tpr = np.concatenate([[0.0], tp / tp[-1]])
    fpr = np.concatenate([[0.0], fp / fp[-1]])
    return float(np.trapezoid(tpr, fpr))


def _multiclass(proba: NDArray[np.float64], chosen: NDArray[np.intp],
                calibration: ScoreCalibration | None, skipped: dict[str, str]) -> dict[str, float]:
    import numpy as np

    p = proba if calibration is None else _rescaled(proba, calibration)
    rows = np.arange(len(p))
    metrics = {"accuracy": float(p[rows, chosen].mean())}
    scores = []
    for k in range(p.shape[1]):
        flagged = chosen == k
        tp = float(p[flagged, k].sum())
        fp, fn = float(flagged.sum()) - tp, float(p[~flagged, k].sum())
        if 2 * tp + fp + fn <= 0:
            skipped["f1_macro"] = (f"undefined: class #{k} is neither predicted nor "
                                   "expected")
            return metrics
        scores.append(2 * tp / (2 * tp + fp + fn))
    metrics["f1_macro"] = float(np.mean(scores))
    return metrics


def _rescaled(proba: NDArray[np.float64], calibration: ScoreCalibration) -> NDArray[np.float64]:
    """Each row with its top-label confidence calibrated and the rest of the mass shared
    among the other classes in their raw proportions (evenly if they were all zero)."""
    import numpy as np

    rows = np.arange(len(proba))
    top = proba.argmax(axis=1)
    raw = proba[rows, top]
    conf = calibration.apply(raw)
    rest = proba.sum(axis=1) - raw
    scale = np.divide(1.0 - conf, rest, out=np.zeros_like(rest), where=rest > 0)
    out: NDArray[np.float64] = proba * scale[:, None]
    flat = rest <= 0
    out[flat] = ((1.0 - conf[flat]) / (proba.shape[1] - 1))[:, None]
    out[rows, top] = conf
    return out


# --- inputs -------------------------------------------------------------------------------


def _predicted(predicted: Any, names: list[Any], proba: NDArray[np.float64]
               ) -> NDArray[np.intp]:
    """The column index of each row's predicted class."""
    import numpy as np
    import pandas as pd

    if predicted is None:
        return np.asarray(proba.argmax(axis=1), dtype=np.intp)
    labels = label_column(predicted, "predicted", len(proba))
    index = pd.Index(names, dtype=object).get_indexer(pd.Index(labels, dtype=object))
    unknown = sorted({str(v) for v in labels[index < 0]})
    if unknown:
        raise InvalidInputError(f"predicted has label(s) {unknown[:5]} that are not among the "
                                f"classes {names}", field="predicted")
    return np.asarray(index, dtype=np.intp)


def _reference_metrics(reference: Mapping[str, Any] | None) -> dict[str, float]:
    if reference is None:
        return {}
    try:
        if reference.get("task", "classification") != "classification":
            raise ValueError(f"the reference is a {reference['task']} evaluation")
        return {str(k): float(v) for k, v in dict(reference["metrics"]).items()}
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise InvalidInputError(f"reference must be an Evaluation.to_dict() of a "
                                f"classifier: {exc}", field="reference") from exc
