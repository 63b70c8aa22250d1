"""Drift results: one row per column, and the dataset's verdict.

Every row says which test ran, its statistic, p-value (``ks`` and ``chi2``), the threshold
it was held to and where that came from, and whether the column drifted; ``status`` tells
why a column was not compared:

=====================  =================================================================
status                 meaning
=====================  =================================================================
``ok``                 compared
``constant_reference`` compared with ``ks``: the reference holds a single value
``all_null_reference`` not compared: no value present in the reference
``all_null_current``   not compared: no value present in the current window
``missing``            not compared: the column is absent from the current window
``type_mismatch``      not compared: the current values are of another kind
=====================  =================================================================

The reference and current summaries (counts, moments, quantiles, counts per bin or
category) are what a plot of the two distributions needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from modelyard.stats.columns import Category, Kind

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ColumnDrift", "DriftReport", "Status", "Summary"]

Status = Literal["ok", "constant_reference", "all_null_reference", "all_null_current",
                 "missing", "type_mismatch"]


@dataclass(frozen=True)
class Summary:
    """One side of a column: counts, and for numeric columns moments and quantiles
    (``p05``... ``p95``; timestamps in seconds since the epoch); ``counts`` are per bin
    (numeric) or per category then "other"."""

    count: int
    nulls: int
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    quantiles: Mapping[str, float] = field(default_factory=dict)
    counts: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "nulls": self.nulls, "mean": self.mean, "std": self.std,
                "min": self.min, "max": self.max, "quantiles": dict(self.quantiles),
                "counts": list(self.counts)}


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    kind: Kind
    test: str | None
    statistic: float | None
    p_value: float | None
    threshold: float | None
    threshold_source: str | None  # "calibration", "trend", "floor" or "critical value"
    drifted: bool
    status: Status
    message: str
    reference: Summary
    current: Summary | None = None
    bin_edges: tuple[float, ...] = ()  # numeric: inner edges of the reference's bins
    categories: tuple[Category, ...] = ()  # categorical: the reference's top categories

    @property
    def compared(self) -> bool:
        return self.statistic is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column, "kind": self.kind, "test": self.test,
            "statistic": self.statistic, "p_value": self.p_value, "threshold": self.threshold,
            "threshold_source": self.threshold_source, "drifted": self.drifted,
            "status": self.status, "message": self.message,
            "reference": self.reference.to_dict(),
            "current": None if self.current is None else self.current.to_dict(),
            "bin_edges": list(self.bin_edges), "categories": list(self.categories),
        }


@dataclass(frozen=True)
class DriftReport:
    """Drift of a current window against a reference profile. ``drifted_share`` is the
    share of compared feature columns that drifted; the dataset drifted when it reaches
    ``share_bound``. Prediction columns are reported apart and do not count in it."""

    reference_rows: int
    current_rows: int
    columns: tuple[ColumnDrift, ...]
    predictions: tuple[ColumnDrift, ...]
    drifted_share: float
    share_bound: float
    dataset_drift: bool
    missing_columns: tuple[str, ...] = ()  # in the reference, absent from the window
    extra_columns: tuple[str, ...] = ()  # in the window, unknown to the reference

    @property
    def drifted_columns(self) -> tuple[str, ...]:
        return tuple(c.column for c in self.columns if c.drifted)

    @property
    def prediction_drift(self) -> bool:
        return any(p.drifted for p in self.predictions)

    def __getitem__(self, column: str) -> ColumnDrift:
        for row in self.columns:
            if row.column == column:
                return row
        raise KeyError(column)

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference_rows": self.reference_rows, "current_rows": self.current_rows,
            "drifted_share": self.drifted_share, "share_bound": self.share_bound,
            "dataset_drift": self.dataset_drift, "drifted_columns": list(self.drifted_columns),
            "missing_columns": list(self.missing_columns),
            "extra_columns": list(self.extra_columns),
            "columns": [c.to_dict() for c in self.columns],
            "predictions": [p.to_dict() for p in self.predictions],
        }

    def to_frame(self) -> pd.DataFrame:
        """One row per column (predictions last): column, kind, test, statistic, p_value,
        threshold, drifted, status."""
        import pandas as pd

        keys = ("column", "kind", "test", "statistic", "p_value", "threshold", "drifted",
                "status")
        rows = [{k: getattr(r, k) for k in keys} | {"prediction": flag}
                for group, flag in ((self.columns, False), (self.predictions, True))
                for r in group]
        return pd.DataFrame(rows, columns=[*keys, "prediction"])
