"""Measured performance of served predictions once their labels have arrived.

:func:`measure_performance` scores a window of logged predictions against the labels
attached so far, with the metrics of :mod:`modelyard.registry.evaluation` (the same names,
the same scikit-learn computations, the same positive class: it calls
:func:`~modelyard.stats.metrics.metric_scorer`). Rows whose label is null are not
labelled yet: they count in ``rows`` but not in the metrics. On top of the window's
metrics it gives

- ``changes``: each metric against the registered evaluation (an ``Evaluation.to_dict()``),
  with the direction of "worse" read from
  :data:`~modelyard.stats.evaluation.HIGHER_IS_BETTER`;
- ``slices``: the metrics per value of each slice column (at most :data:`MAX_SLICE_VALUES`
  values, the ones with the most labelled rows), plus ``"rows"``, the labelled rows;
- ``periods``: the metrics per period of ``period_us`` microseconds (aligned on multiples
  of ``period_us`` since the epoch, so a day runs from midnight UTC), for trend plots.

Before labels arrive, :mod:`modelyard.monitoring.estimate` estimates a classifier's
performance from its confidence instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modelyard.errors import InvalidInputError
from modelyard.stats.evaluation import HIGHER_IS_BETTER, TASKS, Evaluation, Task, infer_task
from modelyard.stats.metrics import MetricScorer, as_series, metric_scorer, slice_masks

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from numpy.typing import NDArray

__all__ = ["MAX_PERIODS", "MAX_SLICE_VALUES", "MetricChange", "PerformanceReport",
           "measure_performance"]

MAX_SLICE_VALUES = 50  # per slice column: the values with the most labelled rows
MAX_PERIODS = 1_000  # periods with rows in one report


@dataclass(frozen=True)
class MetricChange:
    """One metric of the window against the registered evaluation's value.

    ``change`` is ``value - reference``; ``relative_change`` is the change over
    ``|reference|`` (None when the reference is 0); ``worse`` says whether the change goes
    the bad way for this metric (None without a reference or for an unknown metric)."""

    metric: str
    value: float
    reference: float | None
    change: float | None
    relative_change: float | None
    worse: bool | None

    @classmethod
    def of(cls, metric: str, value: float, reference: float | None) -> MetricChange:
        if reference is None:
            return cls(metric, value, None, None, None, None)
        change = value - reference
        relative = change / abs(reference) if reference != 0 else None
        higher = HIGHER_IS_BETTER.get(metric)
        worse = None if higher is None else (change < 0 if higher else change > 0)
        return cls(metric, value, reference, change, relative, worse)

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "value": self.value, "reference": self.reference,
                "change": self.change, "relative_change": self.relative_change,
                "worse": self.worse}


@dataclass(frozen=True)
class PerformanceReport:
    """The metrics of a window of predictions on its labelled rows."""

    task: Task
    rows: int
    labelled_rows: int
    metrics: dict[str, float]
    changes: tuple[MetricChange, ...] = ()
    reference_dataset: str | None = None
    slices: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    periods: tuple[dict[str, Any], ...] = ()
    skipped: dict[str, str] = field(default_factory=dict)
    message: str = ""

    @property
    def worse(self) -> list[str]:
        """The metrics that moved the bad way against the reference."""
        return [c.metric for c in self.changes if c.worse]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (no NaN: a metric that cannot be computed is in ``skipped``)."""
        return {"task": self.task, "rows": self.rows, "labelled_rows": self.labelled_rows,
                "metrics": dict(self.metrics),
                "changes": [change.to_dict() for change in self.changes],
                "reference_dataset": self.reference_dataset,
                "slices": {col: {value: dict(m) for value, m in groups.items()}
                           for col, groups in self.slices.items()},
                "periods": [{**period, "metrics": dict(period["metrics"])}
                            for period in self.periods],
                "skipped": dict(self.skipped), "message": self.message}


def measure_performance(
        y_true: Any, y_pred: Any, *, task: Task | None = None, probabilities: Any = None,
        classes: Sequence[Any] | None = None,
        slices: Mapping[str, Sequence[Any]] | pd.DataFrame | None = None, at_us: Any = None,
        period_us: int | None = None, reference: Mapping[str, Any] | None = None,
        reference_dataset: str | None = None, min_rows: int = 1) -> PerformanceReport:
    """Score the predictions ``y_pred`` against the labels ``y_true`` (null: not labelled
    yet), row by row aligned.

    ``task``: default the reference's task, else guessed from the labels (from the
    predictions while there are none) by :func:`~modelyard.stats.evaluation.infer_task`.
    ``probabilities`` and ``classes``: as for
    :func:`~modelyard.stats.metrics.metric_scorer`, for the probability metrics.
    ``slices``: columns (as long as ``y_true``) whose values split the rows. ``at_us`` and
    ``period_us``: each row's time in epoch microseconds and the period length, for
    ``periods``. ``reference``: the registered ``Evaluation.to_dict()`` on the data set
    ``reference_dataset``. Metrics need ``min_rows`` labelled rows (overall, per slice
    value, per period); with fewer the report has no metrics and says why.
    """
    truth = as_series(y_true)
    rows = len(truth)
    predicted = _column(y_pred, "y_pred", rows)
    if min_rows < 1:
        raise InvalidInputError(f"min_rows must be >= 1, got {min_rows}", field="min_rows")
    registered = _reference(reference)
    chosen = _task(task, registered, truth, predicted)
    proba = _probabilities(probabilities, classes, rows, chosen)
    columns = _slice_columns(slices, rows)
    starts = _period_starts(at_us, period_us, rows)
    labelled = ~truth.isna().to_numpy()
    count = int(labelled.sum())

    skipped: dict[str, str] = {}
    metrics: dict[str, float] = {}
    groups: dict[str, dict[str, dict[str, float]]] = {}
    scorer: MetricScorer | None = None
    if count >= min_rows:
        if not predicted[labelled].notna().all():
            raise InvalidInputError("y_pred has null values on labelled rows", field="y_pred")
        guesses = _plain(predicted[labelled])
        scorer = metric_scorer(
            _labels(truth[labelled], guesses), guesses, task=chosen,
            probabilities=None if proba is None else proba[labelled], classes=classes)
        metrics = scorer(None, skipped)
        for name, column in columns.items():
            groups[name] = _slice(scorer, name, column[labelled], min_rows, skipped)
    periods = () if starts is None else _periods(scorer, starts, labelled, period_us or 0,
                                                 min_rows)
    changes = _changes(metrics, registered)
    message = _message(rows, count, min_rows, reference_dataset, changes)
    return PerformanceReport(task=chosen, rows=rows, labelled_rows=count, metrics=metrics,
                             changes=changes, reference_dataset=reference_dataset,
                             slices=groups, periods=periods, skipped=skipped,
                             message=message)


# --- pieces -------------------------------------------------------------------------------


def _slice(scorer: MetricScorer, name: str, column: pd.Series[Any], min_rows: int,
           skipped: dict[str, str]) -> dict[str, dict[str, float]]:
    """Metrics per value of one slice column (over the labelled rows)."""
    masks = slice_masks(column)
    if len(masks) > MAX_SLICE_VALUES:
        kept = sorted(range(len(masks)), key=lambda i: -int(masks[i][1].sum()))
        chosen = set(kept[:MAX_SLICE_VALUES])
        skipped[f"slice {name}"] = (f"{len(masks)} values: kept the {MAX_SLICE_VALUES} with "
                                    "the most labelled rows")
        masks = [m for i, m in enumerate(masks) if i in chosen]
    found: dict[str, dict[str, float]] = {}
    for value, mask in masks:
        count = int(mask.sum())
        if count < min_rows:
            skipped[f"slice {name}={value}"] = (
                f"{count} labelled row(s), fewer than min_rows={min_rows}")
            continue
        found[value] = {**scorer(mask, {}), "rows": float(count)}
    return found


def _periods(scorer: MetricScorer | None, starts: NDArray[np.int64],
             labelled: NDArray[np.bool_], period_us: int, min_rows: int
             ) -> tuple[dict[str, Any], ...]:
    """One entry per period holding rows, in time order."""
    import numpy as np

    found = []
    labelled_starts = starts[labelled]
    for start in np.unique(starts).tolist():
        mask = labelled_starts == start
        count = int(mask.sum())
        metrics = scorer(mask, {}) if scorer is not None and count >= min_rows else {}
        found.append({"start_us": int(start), "end_us": int(start) + period_us,
                      "rows": int((starts == start).sum()), "labelled_rows": count,
                      "metrics": metrics})
    return tuple(found)


def _changes(metrics: Mapping[str, float], registered: Evaluation | None
             ) -> tuple[MetricChange, ...]:
    known = registered.metrics if registered is not None else {}
    return tuple(MetricChange.of(m, value, known.get(m)) for m, value in metrics.items())


def _message(rows: int, count: int, min_rows: int, dataset: str | None,
             changes: Sequence[MetricChange]) -> str:
    if count == 0:
        return f"no labels yet in this window ({rows} row(s)): nothing measured"
    if count < min_rows:
        return (f"only {count} of {rows} row(s) labelled, fewer than min_rows={min_rows}: "
                "nothing measured")
    text = f"measured on the {count} labelled row(s) of {rows}"
    compared = [c for c in changes if c.reference is not None]
    if compared:
        against = f" on {dataset!r}" if dataset else ""
        worse = [c.metric for c in compared if c.worse]
        text += (f"; against the registered evaluation{against}, worse: {', '.join(worse)}"
                 if worse else f"; none worse than the registered evaluation{against}")
    return text


# --- inputs -------------------------------------------------------------------------------


def _column(values: Any, name: str, rows: int) -> pd.Series[Any]:
    """``values`` as a Series of ``rows`` values, numbered from 0."""
    import numpy as np

    ndim = getattr(values, "ndim", None)
    if (np.asarray(values, dtype=object).ndim if ndim is None else ndim) != 1:
        raise InvalidInputError(f"{name} must be one-dimensional", field=name)
    series = as_series(values).reset_index(drop=True)
    if len(series) != rows:
        raise InvalidInputError(f"{name} has {len(series)} value(s), y_true has {rows}",
                                field=name)
    return series


def _plain(values: pd.Series[Any]) -> NDArray[Any]:
    """A null-free Series as the numpy array it would have been without nulls."""
    import numpy as np

    if values.dtype == object:
        values = values.infer_objects()
    dtype = getattr(values.dtype, "numpy_dtype", None)
    return np.asarray(values.to_numpy() if dtype is None else values.to_numpy(dtype=dtype))


def _labels(truth: pd.Series[Any], predicted: NDArray[Any]) -> NDArray[Any]:
    """The labelled values; a whole-number label read as float because of its nulls goes
    back to the predictions' integer or bool type."""
    import numpy as np

    labels = _plain(truth)
    if (labels.dtype.kind == "f" and predicted.dtype.kind in "iub"
            and np.all(labels == np.round(labels))):
        return labels.astype(predicted.dtype)
    return labels


def _task(task: Task | None, registered: Evaluation | None, truth: pd.Series[Any],
          predicted: pd.Series[Any]) -> Task:
    if task is not None and task not in TASKS:
        raise InvalidInputError(f"task must be one of {list(TASKS)}, got {task!r}",
                                field="task")
    if registered is not None and task is not None and registered.task != task:
        raise InvalidInputError(f"the reference is a {registered.task} evaluation, the task "
                                f"is {task}", field="reference")
    if task is not None:
        return task
    if registered is not None:
        return registered.task
    if truth.notna().any():
        return infer_task(truth)
    if predicted.notna().any():
        return infer_task(predicted)
    raise InvalidInputError("no label nor prediction to infer the task from: pass task=",
                            field="task")


def _reference(reference: Mapping[str, Any] | None) -> Evaluation | None:
    if reference is None:
        return None
    if not isinstance(reference, Mapping):
        raise InvalidInputError("reference must be an Evaluation.to_dict(), got "
                                f"{type(reference).__name__}", field="reference")
    try:
        return Evaluation.from_dict(reference)
    except InvalidInputError as exc:
        raise InvalidInputError(exc.message, field="reference") from exc


def _probabilities(probabilities: Any, classes: Sequence[Any] | None, rows: int, task: Task
                   ) -> NDArray[np.float64] | None:
    """The probabilities as a ``(rows, columns)`` array; the rest is checked when scored."""
    import numpy as np

    if probabilities is None:
        return None
    if task == "regression":
        raise InvalidInputError("probabilities are for classification only",
                                field="probabilities")
    try:
        proba = np.asarray(probabilities, dtype="float64")
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"probabilities must be numbers: {exc}",
                                field="probabilities") from exc
    if proba.ndim == 1:
        proba = np.column_stack([1.0 - proba, proba])
    if proba.ndim != 2 or len(proba) != rows:
        raise InvalidInputError(f"probabilities have shape {proba.shape}, expected ({rows}, "
                                "classes)", field="probabilities")
    if classes is not None and len(classes) != proba.shape[1]:
        raise InvalidInputError(f"{len(classes)} classes for {proba.shape[1]} probability "
                                "column(s)", field="classes")
    return proba


def _slice_columns(slices: Mapping[str, Sequence[Any]] | pd.DataFrame | None, rows: int
                   ) -> dict[str, pd.Series[Any]]:
    import pandas as pd

    if slices is None:
        return {}
    if isinstance(slices, pd.DataFrame):
        source: Mapping[Any, Any] = {name: slices[name] for name in slices.columns}
    elif isinstance(slices, Mapping):
        source = slices
    else:
        raise InvalidInputError("slices must be a mapping of columns or a DataFrame, got "
                                f"{type(slices).__name__}", field="slices")
    found = {}
    for name, values in source.items():
        column = as_series(values).reset_index(drop=True)
        if len(column) != rows:
            raise InvalidInputError(f"slice column {name!r} has {len(column)} value(s), "
                                    f"y_true has {rows}", field="slices", column=str(name))
        found[str(name)] = column
    return found


def _period_starts(at_us: Any, period_us: int | None, rows: int) -> NDArray[np.int64] | None:
    """Each row's period start (a multiple of ``period_us``), or None without periods."""
    import numpy as np

    if period_us is None:
        return None
    if isinstance(period_us, bool) or not isinstance(period_us, int | np.integer) or (
            period_us <= 0):
        raise InvalidInputError(f"period_us must be a positive number of microseconds, got "
                                f"{period_us!r}", field="period_us")
    if at_us is None:
        raise InvalidInputError("period_us needs at_us, the time of each row",
                                field="at_us")
    times = as_series(at_us)
    if len(times) != rows or times.isna().any():
        raise InvalidInputError(f"at_us needs {rows} time(s) without nulls, got "
                                f"{len(times)} with {int(times.isna().sum())} null(s)",
                                field="at_us")
    try:
        values = times.to_numpy(dtype="float64")
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"at_us must be epoch microseconds: {exc}",
                                field="at_us") from exc
    if not np.all(values == np.round(values)):
        raise InvalidInputError("at_us must be whole epoch microseconds", field="at_us")
    starts = (np.asarray(times.to_numpy(dtype="int64")) // period_us) * period_us
    periods = len(np.unique(starts))
    if periods > MAX_PERIODS:
        raise InvalidInputError(f"period_us={period_us} cuts the window into {periods} "
                                f"periods, more than {MAX_PERIODS}: pass a longer period",
                                field="period_us")
    return np.asarray(starts, dtype="int64")
