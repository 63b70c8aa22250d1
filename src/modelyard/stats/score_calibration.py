"""Score calibration: the isotonic map from a classifier's raw score to a calibrated
probability, fitted on labelled rows.

The registry fits one on a classifier's evaluation data and keeps it with the evaluation
(:attr:`modelyard.stats.evaluation.Evaluation.calibration`); monitoring applies it before
estimating performance without labels (:mod:`modelyard.monitoring.estimate`). Two classes
give a ``binary`` calibration of the positive class's probability (the positive class is
the larger of the sorted labels, as in evaluation), more a ``top_label`` one of the
top-label confidence against "the arg-max class is right". NumPy, pandas and scikit-learn
load when a function runs, not on import.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

from modelyard.errors import InvalidInputError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["MAX_KNOTS", "MIN_CALIBRATION_ROWS", "CalibrationKind", "ScoreCalibration",
           "fit_calibration", "label_column", "positive_index", "probability_matrix"]

CalibrationKind = Literal["binary", "top_label"]
MIN_CALIBRATION_ROWS = 100  # fewer labelled rows: no calibration is fitted
MAX_KNOTS = 64  # knots kept of the isotonic map
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

    proba, names = probability_matrix(probabilities, classes)
    labels = label_column(y_true, "y_true", len(proba))
    if len(labels) < MIN_CALIBRATION_ROWS or len(set(labels.tolist())) < 2:
        return None
    if len(names) == 2:
        kind: CalibrationKind = "binary"
        positive = positive_index(names)
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


def probability_matrix(probabilities: Any, classes: Sequence[Any]
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


def label_column(values: Any, name: str, rows: int) -> NDArray[Any]:
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


def positive_index(names: list[Any]) -> int:
    """The positive class's column: the larger of the sorted labels (as in evaluation)."""
    try:
        return max(range(len(names)), key=lambda i: names[i])
    except TypeError:
        return max(range(len(names)), key=lambda i: str(names[i]))
