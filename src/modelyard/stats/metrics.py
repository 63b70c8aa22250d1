"""Metrics from arrays: the scorers behind :func:`modelyard.registry.evaluation.evaluate`
and :mod:`modelyard.monitoring.performance`.

:func:`metric_scorer` computes the metrics named in
:data:`modelyard.registry.evaluation.METRICS` from labels, predictions and the optional
class probabilities, on all rows or on a row mask. :func:`as_series` and
:func:`slice_masks` turn a column into a pandas Series and into per-value row masks.
NumPy, pandas and scikit-learn load when a function runs, not on import.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from modelyard.errors import InvalidInputError
from modelyard.stats.evaluation import TASKS, Task

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["MetricScorer", "as_series", "metric_scorer", "slice_masks"]

_ECE_BINS = 10
_PROBA_METRICS = ("roc_auc", "log_loss", "brier", "ece")


class MetricScorer(Protocol):
    """The metrics of the rows picked by ``mask`` (a boolean array over the scorer's rows;
    None: every row). A metric that cannot be computed goes to ``skipped`` with its reason."""

    def __call__(self, mask: np.ndarray[Any, Any] | None = None,
                 skipped: dict[str, str] | None = None) -> dict[str, float]: ...


def metric_scorer(y_true: Any, y_pred: Any, *, task: Task, probabilities: Any = None,
                  classes: Sequence[Any] | None = None) -> MetricScorer:
    """The metrics of :func:`~modelyard.registry.evaluation.evaluate` (same names, same
    scikit-learn calls, same positive class) from arrays: labels (no nulls), predictions
    and, for a classifier, the class probabilities as a ``(rows, len(classes))`` array (or
    the positive class's column for a binary task). ``classes`` names the columns
    (default: the sorted labels seen). Scoring masks of the same rows keeps the class
    list, and so the positive class, fixed."""
    import numpy as np

    if task not in TASKS:
        raise InvalidInputError(f"task must be one of {list(TASKS)}, got {task!r}",
                                field="task")
    y, p = _values(as_series(y_true)), _values(as_series(y_pred))
    if len(p) != len(y):
        raise InvalidInputError(f"y_pred has {len(p)} value(s), y_true has {len(y)}",
                                field="y_pred")
    if as_series(y).isna().any():
        raise InvalidInputError("y_true has null values: pass the labelled rows only",
                                field="y_true")
    if task == "regression":
        if probabilities is not None:
            raise InvalidInputError("probabilities are for classification only",
                                    field="probabilities")
        return _RegressionScorer(y, p, ("y_true", "y_pred"))
    proba = None
    if probabilities is not None:
        proba = _floats(np.asarray(probabilities), "numeric probabilities", "probabilities")
        if proba.ndim == 1:
            proba = np.column_stack([1.0 - proba, proba])
        if not np.all(np.isfinite(proba)):
            raise InvalidInputError("probabilities has non-finite values",
                                    field="probabilities")
    scorer = _ClassificationScorer(y, p, proba, classes, "no probabilities given")
    if proba is not None and scorer.proba is None:
        raise InvalidInputError(scorer.proba_reason, field="probabilities")
    return scorer


# --- scorers ----------------------------------------------------------------------------


class _Metrics:
    """Collects metric values; a failure or a non-finite value becomes a skip reason."""

    def __init__(self, skipped: dict[str, str]) -> None:
        self.values: dict[str, float] = {}
        self.skipped = skipped

    def put(self, name: str, compute: Callable[[], Any], undefined: str = "") -> None:
        from sklearn.exceptions import UndefinedMetricWarning

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", UndefinedMetricWarning)
                value = float(compute())
        except (ValueError, TypeError, IndexError, UndefinedMetricWarning) as exc:
            self.skipped[name] = f"could not be computed: {exc}"
            return
        if math.isfinite(value):
            self.values[name] = value
        else:
            self.skipped[name] = undefined or "undefined on this data"

    def skip(self, names: Sequence[str], reason: str) -> None:
        for name in names:
            self.skipped[name] = reason


class _ClassificationScorer:
    def __init__(self, y_true: np.ndarray[Any, Any], y_pred: np.ndarray[Any, Any],
                 proba: np.ndarray[Any, Any] | None, classes: Sequence[Any] | None,
                 proba_reason: str) -> None:
        import numpy as np

        self.y_true, self.y_pred = y_true, y_pred
        self.labels = _sorted_unique(np.concatenate([
            np.asarray(list(classes) if classes is not None else [], dtype=object),
            y_true.astype(object), y_pred.astype(object)]))
        self.binary = len(self.labels) <= 2
        self.positive = self.labels[-1]
        self.proba: np.ndarray[Any, Any] | None = None
        self.proba_classes: list[Any] = []
        self.proba_reason = proba_reason
        if proba is None:
            return
        names = list(classes) if classes is not None else list(self.labels)
        if proba.ndim != 2 or proba.shape != (len(y_true), len(names)):
            self.proba_reason = (f"probabilities have shape {proba.shape}, expected "
                                 f"({len(y_true)}, {len(names)}) for classes {names}")
            return
        order = _argsort_labels(names)
        self.proba = proba[:, order]
        self.proba_classes = [names[i] for i in order]

    def __call__(self, mask: np.ndarray[Any, Any] | None = None,
                 skipped: dict[str, str] | None = None) -> dict[str, float]:
        from sklearn import metrics as skm

        mask = _everything(mask, len(self.y_true))
        y, p = self.y_true[mask], self.y_pred[mask]
        out = _Metrics({} if skipped is None else skipped)
        out.put("accuracy", lambda: skm.accuracy_score(y, p))
        nan = float("nan")
        if self.binary:
            pos = self.positive
            for name, fn, why in (
                ("precision", skm.precision_score, f"no row predicted as {pos!r}"),
                ("recall", skm.recall_score, f"no row labelled {pos!r}"),
                ("f1", skm.f1_score, f"no row labelled or predicted {pos!r}"),
            ):
                out.put(name, partial(fn, y, p, pos_label=pos, average="binary",
                                      labels=self.labels, zero_division=nan),
                        undefined=f"undefined: {why}")
        else:
            for name, fn in (("precision_macro", skm.precision_score),
                             ("recall_macro", skm.recall_score), ("f1_macro", skm.f1_score)):
                out.put(name, partial(fn, y, p, average="macro", labels=self.labels,
                                      zero_division=nan))
        if self.proba is None:
            names = _PROBA_METRICS if self.binary else ("roc_auc", "log_loss", "ece")
            out.skip(names, self.proba_reason)
            return out.values
        proba = self.proba[mask]
        out.put("log_loss", lambda: skm.log_loss(y, proba, labels=self.proba_classes))
        if self.binary:
            y_bin, score = self._binary(y, proba)
            if len(set(y_bin.tolist())) < 2:
                out.skip(["roc_auc"], f"undefined: only one class present in the label "
                                      f"({len(y)} rows)")
            else:
                out.put("roc_auc", lambda: skm.roc_auc_score(y_bin, score))
            out.put("brier", lambda: skm.brier_score_loss(y_bin, score))
            out.put("ece", lambda: _ece(y_bin, score))
        else:
            out.put("roc_auc", lambda: skm.roc_auc_score(
                y, proba, multi_class="ovr", average="macro", labels=self.proba_classes))
            hit, confidence = self._top_label(y, proba)
            out.put("ece", lambda: _ece(hit, confidence))
        return out.values

    def _binary(self, y: np.ndarray[Any, Any], proba: np.ndarray[Any, Any]
                ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        import numpy as np

        column = self.proba_classes.index(self.positive) if (
            self.positive in self.proba_classes) else len(self.proba_classes) - 1
        y_bin = np.asarray(y == self.positive, dtype=int)
        return y_bin, np.clip(proba[:, column], 0.0, 1.0)

    def _top_label(self, y: np.ndarray[Any, Any], proba: np.ndarray[Any, Any]
                   ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        import numpy as np

        top = np.asarray(self.proba_classes, dtype=object)[proba.argmax(axis=1)]
        hit = np.asarray(top == y.astype(object), dtype=int)
        return hit, np.clip(proba.max(axis=1), 0.0, 1.0)

    def plots(self) -> dict[str, bytes]:
        from modelyard.stats.plots import Scores, classification_plots

        if self.proba is None:
            return classification_plots(self.y_true, self.y_pred, self.labels)
        if self.binary:
            y_bin, score = self._binary(self.y_true, self.proba)
            scores = Scores([(str(self.positive), y_bin, score)], y_bin, score,
                            f"Calibration ({self.positive})", _ECE_BINS)
        else:
            hit, confidence = self._top_label(self.y_true, self.proba)
            scores = Scores([(str(c), (self.y_true == c).astype(int), self.proba[:, i])
                             for i, c in enumerate(self.proba_classes[:10])],
                            hit, confidence, "Calibration (top label)", _ECE_BINS)
        return classification_plots(self.y_true, self.y_pred, self.labels, scores)


class _RegressionScorer:
    def __init__(self, y_true: np.ndarray[Any, Any], y_pred: np.ndarray[Any, Any],
                 fields: tuple[str, str]) -> None:
        self.y_true = _floats(y_true, "a numeric label", fields[0])
        self.y_pred = _floats(y_pred, "numeric predictions", fields[1])

    def __call__(self, mask: np.ndarray[Any, Any] | None = None,
                 skipped: dict[str, str] | None = None) -> dict[str, float]:
        from sklearn import metrics as skm

        mask = _everything(mask, len(self.y_true))
        y, p = self.y_true[mask], self.y_pred[mask]
        out = _Metrics({} if skipped is None else skipped)
        out.put("rmse", lambda: skm.root_mean_squared_error(y, p))
        out.put("mae", lambda: skm.mean_absolute_error(y, p))
        if len(y) < 2:
            out.skip(["r2"], "undefined: needs at least two rows")
        else:
            out.put("r2", lambda: skm.r2_score(y, p))
        zeros = int((y == 0).sum())
        if zeros:
            out.skip(["mape"], f"undefined: the label has {zeros} zero value(s)")
        else:
            out.put("mape", lambda: skm.mean_absolute_percentage_error(y, p))
        return out.values

    def plots(self) -> dict[str, bytes]:
        from modelyard.stats.plots import regression_plots

        return regression_plots(self.y_true, self.y_pred)



# --- helpers ----------------------------------------------------------------------------


def as_series(y: Any) -> pd.Series[Any]:
    """``y`` (a pandas, polars or pyarrow column, a numpy array or a sequence) as a pandas
    Series; nulls and dtypes kept."""
    import numpy as np
    import pandas as pd

    if isinstance(y, pd.Series):
        return y
    convert = getattr(y, "to_pandas", None)
    if callable(convert):
        converted = convert()
        if isinstance(converted, pd.Series):
            return converted
    if isinstance(y, np.ndarray):
        return pd.Series(y.reshape(-1))
    # a sequence: typed by its values (np.asarray would turn ["a", nan] into "a", "nan")
    return pd.Series(np.asarray(y, dtype=object).reshape(-1)).infer_objects()


def _values(series: pd.Series[Any]) -> np.ndarray[Any, Any]:
    """A numpy array of the column; nullable numeric/bool columns keep a numpy dtype."""
    import numpy as np

    numpy_dtype = getattr(series.dtype, "numpy_dtype", None)
    if numpy_dtype is not None and not series.isna().any():
        return np.asarray(series.to_numpy(dtype=numpy_dtype))
    return np.asarray(series.to_numpy())


def _floats(values: np.ndarray[Any, Any], what: str, field: str) -> np.ndarray[Any, Any]:
    import numpy as np

    try:
        return np.asarray(values, dtype="float64")
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"regression needs {what}: {exc}", field=field) from exc


def _everything(mask: np.ndarray[Any, Any] | None, rows: int) -> np.ndarray[Any, Any]:
    import numpy as np

    return np.ones(rows, dtype=bool) if mask is None else mask



def _argsort_labels(labels: Sequence[Any]) -> list[int]:
    try:
        return sorted(range(len(labels)), key=lambda i: labels[i])
    except TypeError:
        return sorted(range(len(labels)), key=lambda i: str(labels[i]))


def _sorted_unique(values: np.ndarray[Any, Any]) -> list[Any]:
    import pandas as pd

    unique = list(pd.unique(pd.Series(values, dtype=object)))
    return [unique[i] for i in _argsort_labels(unique)]


def slice_masks(column: pd.Series[Any]) -> list[tuple[str, np.ndarray[Any, Any]]]:
    """(value as str, row mask) per distinct value, sorted by value; nulls as "null"."""
    import numpy as np

    nulls = column.isna().to_numpy()
    raw = column.to_numpy(dtype=object)
    keys = np.array(["null" if n else str(v) for v, n in zip(raw, nulls, strict=True)],
                    dtype=object)
    ordered = [str(v) for v in _sorted_unique(raw[~nulls])]
    if nulls.any():
        ordered.append("null")
    return [(key, keys == key) for key in dict.fromkeys(ordered)]


def _ece(hit: np.ndarray[Any, Any], confidence: np.ndarray[Any, Any]) -> float:
    """Expected calibration error: bin-size-weighted mean gap between the observed
    frequency and the mean predicted probability, over the non-empty uniform bins."""
    import numpy as np
    from sklearn.calibration import calibration_curve

    prob_true, prob_pred = calibration_curve(hit, confidence, n_bins=_ECE_BINS,
                                             strategy="uniform", pos_label=1)
    edges = np.linspace(0.0, 1.0, _ECE_BINS + 1)
    counts = np.bincount(np.searchsorted(edges[1:-1], confidence), minlength=_ECE_BINS)
    weights = counts[counts > 0] / len(confidence)
    return float(np.sum(weights * np.abs(prob_true - prob_pred)))
