"""Model evaluation: standard metrics, per-slice metrics and plots (drawn by
:mod:`modelyard.registry.plots`).

Every metric is computed with scikit-learn. A metric that cannot be computed on the given
data (no ``predict_proba``, a single class present, zeros in the label for ``mape``, ...) is
left out of :attr:`Evaluation.metrics` and its reason put in :attr:`Evaluation.skipped`; NaN
is never stored.

Metric names
    classification, binary: ``accuracy``, ``precision``, ``recall``, ``f1`` (for the positive
    class: the larger of the sorted classes, so ``1``, ``True`` or the second label),
    ``roc_auc``, ``log_loss``, ``brier`` and ``ece``.

    classification, more than two classes: ``accuracy``, ``precision_macro``,
    ``recall_macro``, ``f1_macro`` (unweighted means over the classes), ``roc_auc``
    (one-vs-rest, macro), ``log_loss`` and ``ece``.

    ``ece`` is the expected calibration error over 10 equal-width bins: for a binary task
    on the positive class probability, for more classes on the top-label confidence.

    regression: ``rmse``, ``mae``, ``r2`` and ``mape`` (left out when the label has zeros).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, cast

from modelyard.errors import InvalidInputError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["HIGHER_IS_BETTER", "MAX_CLASSES", "METRICS", "TASKS", "Evaluation", "Task",
           "evaluate", "infer_task", "to_pandas"]

Task = Literal["classification", "regression"]
TASKS: tuple[Task, ...] = ("classification", "regression")

METRICS: dict[Task, tuple[str, ...]] = {
    "classification": ("accuracy", "precision", "recall", "f1", "precision_macro",
                       "recall_macro", "f1_macro", "roc_auc", "log_loss", "brier", "ece"),
    "regression": ("rmse", "mae", "r2", "mape"),
}
HIGHER_IS_BETTER: dict[str, bool] = {
    "accuracy": True, "precision": True, "recall": True, "f1": True,
    "precision_macro": True, "recall_macro": True, "f1_macro": True, "roc_auc": True,
    "log_loss": False, "brier": False, "ece": False,
    "rmse": False, "mae": False, "r2": True, "mape": False,
}

MAX_CLASSES = 20  # an integral numeric label with at most this many values is a class label
_ECE_BINS = 10
_PROBA_METRICS = ("roc_auc", "log_loss", "brier", "ece")


@dataclass(frozen=True)
class Evaluation:
    """What :func:`evaluate` measured on one data set."""

    task: Task
    rows: int
    metrics: dict[str, float]
    slices: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    plots: dict[str, bytes] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict; plots appear by name only."""
        return {"task": self.task, "rows": self.rows, "metrics": dict(self.metrics),
                "slices": {col: {value: dict(m) for value, m in groups.items()}
                           for col, groups in self.slices.items()},
                "plots": sorted(self.plots), "skipped": dict(self.skipped)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *,
                  plots: Mapping[str, bytes] | None = None) -> Evaluation:
        """Rebuild from :meth:`to_dict`. Plot bytes are not in the dict: pass them as
        ``plots``, else each named plot maps to empty bytes."""
        try:
            task = data["task"]
            if task not in TASKS:
                raise ValueError(f"unknown task {task!r}")
            slices = {str(col): {str(v): {str(k): float(x) for k, x in m.items()}
                                 for v, m in groups.items()}
                      for col, groups in dict(data.get("slices") or {}).items()}
            loaded = dict(plots) if plots is not None else {
                str(name): b"" for name in data.get("plots") or ()}
            return cls(
                task=cast(Task, task), rows=int(data["rows"]),
                metrics={str(k): float(v) for k, v in dict(data["metrics"]).items()},
                slices=slices, plots=loaded,
                skipped={str(k): str(v) for k, v in dict(data.get("skipped") or {}).items()})
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidInputError(f"not an evaluation dict: {exc}",
                                    field="evaluation") from exc


def to_pandas(data: Any, *, field: str = "data") -> pd.DataFrame:
    """``data`` as a pandas DataFrame: pandas as is; pyarrow Tables and polars DataFrames
    through their ``to_pandas()``; a mapping of columns through the DataFrame constructor."""
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data
    convert = getattr(data, "to_pandas", None)
    if callable(convert):
        frame = convert()
        if isinstance(frame, pd.DataFrame):
            return frame
    if isinstance(data, Mapping):
        return pd.DataFrame(dict(data))
    raise InvalidInputError(
        "expected a pandas DataFrame, a pyarrow Table or a polars DataFrame, "
        f"got {type(data).__name__}", field=field)


def infer_task(y: Any) -> Task:
    """Guess the task from the label values.

    Classification when the label is bool, string, categorical or otherwise non-numeric,
    or numeric with every value integral and at most :data:`MAX_CLASSES` (20) distinct
    values; regression otherwise. Nulls are ignored. Pass ``task=`` to :func:`evaluate`
    when the guess is wrong (e.g. a count target with few values).
    """
    import numpy as np
    import pandas as pd

    series = _as_series(y)
    values = series.dropna()
    if len(values) == 0:
        raise InvalidInputError("cannot infer the task from a label without values",
                                field="label")
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "classification"
    if not pd.api.types.is_numeric_dtype(dtype):
        kind = pd.api.types.infer_dtype(values, skipna=True)
        if kind not in ("integer", "floating", "mixed-integer-float", "decimal"):
            return "classification"
    numbers = values.to_numpy(dtype="float64")
    integral = bool(np.all(np.isfinite(numbers)) and np.all(numbers == np.round(numbers)))
    if integral and len(np.unique(numbers)) <= MAX_CLASSES:
        return "classification"
    return "regression"


def evaluate(model: Any, data: Any, label: str, *, features: Sequence[str] | None = None,
             task: Task | None = None, slice_by: str | Sequence[str] | None = None,
             plots: bool = True, min_slice_rows: int = 1) -> Evaluation:
    """Score ``model`` on ``data`` against the ``label`` column.

    ``features`` are the columns passed to ``model.predict`` (default: every column but
    the label and the slice columns). ``slice_by`` names columns whose values split the
    rows; each value (as a string, nulls as ``"null"``) with at least ``min_slice_rows``
    rows gets the same metrics plus ``"rows"``. A smaller slice is left out and noted in
    ``skipped`` under ``"slice COLUMN=VALUE"``.
    """
    import numpy as np

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
    y_pred = _predict(model, frame[cols], rows)
    skipped: dict[str, str] = {}
    scorer: _ClassificationScorer | _RegressionScorer
    if chosen == "classification":
        scorer = _ClassificationScorer(model, frame[cols], y_true, y_pred)
    else:
        scorer = _RegressionScorer(y_true, y_pred)
    everything = np.ones(rows, dtype=bool)
    metrics = scorer(everything, skipped)

    slices: dict[str, dict[str, dict[str, float]]] = {}
    for col in slice_cols:
        slices[col] = {}
        for value, mask in _slice_masks(frame[col]):
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
                      skipped=skipped)


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
    def __init__(self, model: Any, features: pd.DataFrame, y_true: np.ndarray[Any, Any],
                 y_pred: np.ndarray[Any, Any]) -> None:
        import numpy as np

        self.y_true, self.y_pred = y_true, y_pred
        model_classes = getattr(model, "classes_", None)
        self.labels = _sorted_unique(np.concatenate([
            np.asarray(model_classes if model_classes is not None else [], dtype=object),
            y_true.astype(object), y_pred.astype(object)]))
        self.binary = len(self.labels) <= 2
        self.positive = self.labels[-1]
        self.proba: np.ndarray[Any, Any] | None = None
        self.proba_classes: list[Any] = []
        self.proba_reason = ""
        self._load_proba(model, features, model_classes)

    def _load_proba(self, model: Any, features: pd.DataFrame, model_classes: Any) -> None:
        import numpy as np

        method = getattr(model, "predict_proba", None)
        if not callable(method):
            self.proba_reason = "needs predict_proba, which the model does not have"
            return
        try:
            proba = np.asarray(method(features), dtype="float64")
        except (AttributeError, NotImplementedError) as exc:
            self.proba_reason = f"needs predict_proba, which failed: {exc}"
            return
        if proba.ndim == 1:
            proba = np.column_stack([1.0 - proba, proba])
        classes = (list(np.asarray(model_classes, dtype=object)) if model_classes is not None
                   else list(self.labels))
        if proba.ndim != 2 or proba.shape != (len(self.y_true), len(classes)):
            self.proba_reason = (f"predict_proba returned shape {proba.shape}, expected "
                                 f"({len(self.y_true)}, {len(classes)}) for classes {classes}")
            return
        order = _argsort_labels(classes)
        self.proba = proba[:, order]
        self.proba_classes = [classes[i] for i in order]

    def __call__(self, mask: np.ndarray[Any, Any], skipped: dict[str, str]) -> dict[str, float]:
        from sklearn import metrics as skm

        y, p = self.y_true[mask], self.y_pred[mask]
        out = _Metrics(skipped)
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
        from modelyard.registry.plots import Scores, classification_plots

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
    def __init__(self, y_true: np.ndarray[Any, Any], y_pred: np.ndarray[Any, Any]) -> None:
        self.y_true = _floats(y_true, "a numeric label", "task")
        self.y_pred = _floats(y_pred, "numeric predictions", "model")

    def __call__(self, mask: np.ndarray[Any, Any], skipped: dict[str, str]) -> dict[str, float]:
        from sklearn import metrics as skm

        y, p = self.y_true[mask], self.y_pred[mask]
        out = _Metrics(skipped)
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
        from modelyard.registry.plots import regression_plots

        return regression_plots(self.y_true, self.y_pred)


# --- helpers ----------------------------------------------------------------------------


def _as_series(y: Any) -> pd.Series[Any]:
    import numpy as np
    import pandas as pd

    if isinstance(y, pd.Series):
        return y
    convert = getattr(y, "to_pandas", None)
    if callable(convert):
        converted = convert()
        if isinstance(converted, pd.Series):
            return converted
    return pd.Series(np.asarray(y).reshape(-1))


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


def _predict(model: Any, features: pd.DataFrame, rows: int) -> np.ndarray[Any, Any]:
    import numpy as np

    predict = getattr(model, "predict", None)
    if not callable(predict):
        raise InvalidInputError(f"model {type(model).__name__} has no predict()",
                                field="model")
    predicted = predict(features)
    convert = getattr(predicted, "to_numpy", None)
    result = np.asarray(convert() if callable(convert) else predicted)
    if result.ndim == 2 and result.shape[1] == 1:
        result = result.reshape(-1)
    if result.ndim != 1 or len(result) != rows:
        raise InvalidInputError(f"model.predict returned shape {result.shape}, expected "
                                f"({rows},)", field="model")
    return result


def _argsort_labels(labels: Sequence[Any]) -> list[int]:
    try:
        return sorted(range(len(labels)), key=lambda i: labels[i])
    except TypeError:
        return sorted(range(len(labels)), key=lambda i: str(labels[i]))


def _sorted_unique(values: np.ndarray[Any, Any]) -> list[Any]:
    import pandas as pd

    unique = list(pd.unique(pd.Series(values, dtype=object)))
    return [unique[i] for i in _argsort_labels(unique)]


def _slice_masks(column: pd.Series[Any]) -> list[tuple[str, np.ndarray[Any, Any]]]:
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
