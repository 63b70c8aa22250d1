"""What an evaluation measures, shared by the registry (``evaluate``, gates) and
monitoring (performance once labels arrive, alert rules): the tasks, the metric names and
which way each is better, the :class:`Evaluation` record, and reading the task off a label.

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

:func:`modelyard.stats.metrics.metric_scorer` computes them from arrays.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

from modelyard.errors import InvalidInputError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["HIGHER_IS_BETTER", "MAX_CLASSES", "METRICS", "TASKS", "Evaluation", "Task",
           "infer_task", "to_pandas"]

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


@dataclass(frozen=True)
class Evaluation:
    """What :func:`evaluate` measured on one data set. ``calibration`` is a
    :meth:`modelyard.stats.score_calibration.ScoreCalibration.to_dict` fitted on the data (a
    classifier with ``predict_proba`` and enough rows of two classes), else None."""

    task: Task
    rows: int
    metrics: dict[str, float]
    slices: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    plots: dict[str, bytes] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    calibration: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict; plots appear by name only."""
        return {"task": self.task, "rows": self.rows, "metrics": dict(self.metrics),
                "slices": {col: {value: dict(m) for value, m in groups.items()}
                           for col, groups in self.slices.items()},
                "plots": sorted(self.plots), "skipped": dict(self.skipped),
                "calibration": None if self.calibration is None else dict(self.calibration)}

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
            calibration = data.get("calibration")  # absent from dicts stored before it
            return cls(
                task=cast(Task, task), rows=int(data["rows"]),
                metrics={str(k): float(v) for k, v in dict(data["metrics"]).items()},
                slices=slices, plots=loaded,
                skipped={str(k): str(v) for k, v in dict(data.get("skipped") or {}).items()},
                calibration=None if calibration is None else dict(calibration))
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

    # metrics imports this module's constants: import it when a function runs
    from modelyard.stats.metrics import as_series

    series = as_series(y)
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
