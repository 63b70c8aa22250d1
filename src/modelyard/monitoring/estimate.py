"""Estimated performance of a classifier before its labels arrive (CBPE).

Confidence-based performance estimation, as NannyML describes it: when the model's class
probabilities are calibrated (of the rows given 0.8, 80 % are of that class), each row's
probability is the expected value of its confusion-matrix cell, so the expected counts
(and from them accuracy, precision, ...) follow from the probabilities alone. The estimate
follows a shift of the inputs (``P(X)`` changes, ``P(y | X)`` stays), because it is
recomputed on the new rows; it cannot see concept drift (``P(y | X)`` changes), and it is
only as good as the probabilities' calibration.

A model's raw scores are rarely calibrated. :func:`fit_calibration` fits an isotonic map
from score to probability on labelled data (the registered evaluation stores one, see
:attr:`modelyard.registry.evaluation.Evaluation.calibration`); :func:`estimate_performance`
applies it before estimating.

binary
    ``p`` is the calibrated probability of the positive class (the larger of the sorted
    classes, as in :mod:`modelyard.registry.evaluation`). Over the rows predicted positive,
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

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

from modelyard.errors import InvalidInputError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["ESTIMATED", "MAX_KNOTS", "MIN_CALIBRATION_ROWS", "PerformanceEstimate",
           "ScoreCalibration", "estimate_performance", "fit_calibration"]

CalibrationKind = Literal["binary", "top_label"]
MIN_CALIBRATION_ROWS = 100  # fewer labelled rows: no calibration is fitted
MAX_KNOTS = 64  # knots kept of the isotonic map
ESTIMATED: dict[str, tuple[str, ...]] = {
    "binary": ("accuracy", "precision", "recall", "f1", "roc_auc"),
    "multiclass": ("accuracy", "f1_macro"),
}
_TOLERANCE = 1e-6  # how far outside [0, 1] a probability may be before it is refused


@dataclass(frozen=True)
class ScoreCalibration:
    """A monotone map from a raw score to a calibrated probability: linear interpolation
    between the knots ``(x, y)``, constant beyond the first and the last.

    ``binary``: the score is the positive class's probability, the result the probability
    that the row is positive. ``top_label``: the score is the largest class probability,
    the result the probability that the arg-max class is right. ``rows``: how many
    labelled rows it was fitted on."""

    kind: CalibrationKind
    x: tuple[float, ...]
    y: tuple[float, ...]
    rows: int

    def __post_init__(self) -> None:
        problem = ""
        if self.kind not in ("binary", "top_label"):
            problem = f"kind must be 'binary' or 'top_label', got {self.kind!r}"
        elif not self.x or len(self.x) != len(self.y):
            problem = f"x and y must be non-empty and as long ({len(self.x)}, {len(self.y)})"
        elif not all(math.isfinite(v) for v in (*self.x, *self.y)):
            problem = "knots must be finite numbers"
        elif any(b <= a for a, b in zip(self.x, self.x[1:], strict=False)):
            problem = "x must be strictly increasing"
        elif any(b < a for a, b in zip(self.y, self.y[1:], strict=False)):
            problem = "y must not decrease"
        elif self.y[0] < 0.0 or self.y[-1] > 1.0:
            problem = "y must lie within [0, 1]"
        elif self.rows < 0:
            problem = f"rows must be >= 0, got {self.rows}"
        if problem:
            raise InvalidInputError(f"invalid calibration: {problem}", field="calibration")

    def apply(self, scores: Any) -> NDArray[np.float64]:
        """The calibrated probabilities of ``scores`` (an array of raw scores)."""
        import numpy as np

        values = np.asarray(scores, dtype="float64")
        calibrated: NDArray[np.float64] = np.clip(np.interp(values, self.x, self.y), 0.0, 1.0)
        return calibrated

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict: ``{"kind", "x", "y", "rows"}``."""
        return {"kind": self.kind, "x": list(self.x), "y": list(self.y), "rows": self.rows}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScoreCalibration:
        """Rebuild from :meth:`to_dict`."""
        try:
            return cls(kind=cast(CalibrationKind, str(data["kind"])),
                       x=tuple(float(v) for v in data["x"]),
                       y=tuple(float(v) for v in data["y"]), rows=int(data["rows"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"not a calibration dict: {exc!r}",
                                    field="calibration") from exc


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


def fit_calibration(y_true: Any, probabilities: Any, classes: Sequence[Any]
                    ) -> ScoreCalibration | None:
    """Fit the isotonic map from score to probability on labelled rows.

    ``probabilities`` is ``(rows, len(classes))`` (for two classes also a single column,
    the probability of ``classes[1]``). Two classes give a ``binary`` calibration of the
    positive class's probability, more a ``top_label`` one of the top-label confidence
    against "the arg-max class is right". None when there are fewer than
    :data:`MIN_CALIBRATION_ROWS` rows or a single class among the labels."""
    import numpy as np
    from sklearn.isotonic import IsotonicRegression

    proba, names = _matrix(probabilities, classes)
    labels = _column(y_true, "y_true", len(proba))
    if len(labels) < MIN_CALIBRATION_ROWS or len(set(labels.tolist())) < 2:
        return None
    if len(names) == 2:
        kind: CalibrationKind = "binary"
        positive = _positive(names)
        score = proba[:, positive]
        hit = labels == names[positive]
        if hit.all() or not hit.any():  # the labels are not the model's classes
            return None
    else:
        kind = "top_label"
        score = proba.max(axis=1)
        hit = np.asarray(names, dtype=object)[proba.argmax(axis=1)] == labels
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    iso.fit(score, hit.astype("float64"))
    knots = np.asarray(iso.X_thresholds_, dtype="float64")
    if len(knots) > MAX_KNOTS:  # thin to quantiles of the scores: dense where rows are
        knots = np.unique(np.quantile(score, np.linspace(0.0, 1.0, MAX_KNOTS)))
    values = np.clip(np.maximum.accumulate(iso.predict(knots)), 0.0, 1.0)
    return ScoreCalibration(kind=kind, x=tuple(knots.tolist()), y=tuple(values.tolist()),
                       rows=len(labels))


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

    proba, names = _matrix(probabilities, classes)
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
    positive = _positive(names)
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


def _matrix(probabilities: Any, classes: Sequence[Any]
            ) -> tuple[NDArray[np.float64], list[Any]]:
    """The probabilities as a checked ``(rows, len(classes))`` array, and the classes."""
    import numpy as np

    if classes is None or isinstance(classes, str | bytes):
        raise InvalidInputError("classes must be the sequence of class labels that name the "
                                "probability columns", field="classes")
    names = list(np.asarray(classes, dtype=object).reshape(-1))
    if len(names) < 2 or len(set(names)) != len(names):
        raise InvalidInputError(f"classes must be at least two distinct labels, got {names}",
                                field="classes")
    try:
        proba = np.asarray(probabilities, dtype="float64")
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"probabilities must be numbers: {exc}",
                                field="probabilities") from exc
    if proba.ndim == 1 and len(names) == 2:
        proba = np.column_stack([1.0 - proba, proba])
    if proba.ndim != 2 or proba.shape[1] != len(names):
        raise InvalidInputError(f"probabilities have shape {proba.shape}, expected (rows, "
                                f"{len(names)}) for classes {names}", field="probabilities")
    if not np.all(np.isfinite(proba)):
        raise InvalidInputError("probabilities has non-finite values", field="probabilities")
    if proba.size and (proba.min() < -_TOLERANCE or proba.max() > 1.0 + _TOLERANCE):
        raise InvalidInputError("probabilities must lie within [0, 1] (class probabilities, "
                                "not decision scores)", field="probabilities")
    return np.clip(proba, 0.0, 1.0), names


def _column(values: Any, name: str, rows: int) -> NDArray[Any]:
    """``values`` as a 1-D object array of ``rows`` labels without nulls."""
    import numpy as np
    import pandas as pd

    convert = getattr(values, "to_numpy", None)
    array = np.asarray(convert() if callable(convert) else values, dtype=object)
    if array.ndim != 1 or len(array) != rows:
        raise InvalidInputError(f"{name} has shape {array.shape}, expected ({rows},) like the "
                                "probabilities", field=name)
    nulls = int(pd.isna(array).sum())
    if nulls:
        raise InvalidInputError(f"{name} has {nulls} null value(s)", field=name)
    return array


def _predicted(predicted: Any, names: list[Any], proba: NDArray[np.float64]
               ) -> NDArray[np.intp]:
    """The column index of each row's predicted class."""
    import numpy as np
    import pandas as pd

    if predicted is None:
        return np.asarray(proba.argmax(axis=1), dtype=np.intp)
    labels = _column(predicted, "predicted", len(proba))
    index = pd.Index(names, dtype=object).get_indexer(pd.Index(labels, dtype=object))
    unknown = sorted({str(v) for v in labels[index < 0]})
    if unknown:
        raise InvalidInputError(f"predicted has label(s) {unknown[:5]} that are not among the "
                                f"classes {names}", field="predicted")
    return np.asarray(index, dtype=np.intp)


def _positive(names: list[Any]) -> int:
    """The positive class's column: the larger of the sorted labels (as in evaluation)."""
    try:
        return max(range(len(names)), key=lambda i: names[i])
    except TypeError:
        return max(range(len(names)), key=lambda i: str(names[i]))


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
