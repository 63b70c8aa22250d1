"""Data quality of production inputs, against the reference profile.

Per column: the share of missing values against the reference's, values outside the
reference's [min, max] (numeric and timestamp columns), infinite values, categories the
reference never had (with examples; only conclusive when the profile lists every reference
category, see :attr:`ColumnProfile.complete`), and values of another kind than the
reference's. For the frame: columns added and removed.

A missing-value share is flagged when it exceeds the reference's by more than
``missing_tolerance`` plus three binomial standard deviations of the difference, so that
sampling noise in a small window is not an issue; out-of-range and unseen-category shares
when they exceed their tolerance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelyard.errors import InvalidInputError
from modelyard.stats.columns import (
    Category,
    Columns,
    Frame,
    as_columns,
    category_counts,
    category_index,
    hashable,
    natural_kind,
    numeric_values,
)
from modelyard.stats.profile import ColumnProfile, ReferenceProfile

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ColumnQuality", "QualityOptions", "QualityReport", "check_quality"]

EXAMPLES = 5


@dataclass(frozen=True)
class QualityOptions:
    missing_tolerance: float = 0.01  # absolute increase of the missing share
    out_of_range_tolerance: float = 0.01  # share of values outside the reference's range
    unseen_tolerance: float = 0.0  # share of values in categories the reference never had

    def __post_init__(self) -> None:
        for name in ("missing_tolerance", "out_of_range_tolerance", "unseen_tolerance"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and not isinstance(value, bool)
                    and 0 <= value <= 1):
                raise InvalidInputError(f"{name} must be a share between 0 and 1, not "
                                        f"{value!r}", field=name)


@dataclass(frozen=True)
class ColumnQuality:
    column: str
    kind: str
    rows: int
    missing: int
    missing_share: float
    reference_missing_share: float
    infinite: int = 0
    below_min: int = 0
    above_max: int = 0
    out_of_range_share: float = 0.0
    unseen: int = 0  # values in categories the reference never had
    unseen_share: float = 0.0
    unseen_examples: tuple[Category, ...] = ()
    unseen_conclusive: bool = True  # False when the profile kept only the top categories
    type_mismatch: str | None = None
    issues: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.issues

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column, "kind": self.kind, "rows": self.rows,
            "missing": self.missing, "missing_share": self.missing_share,
            "reference_missing_share": self.reference_missing_share,
            "infinite": self.infinite, "below_min": self.below_min,
            "above_max": self.above_max, "out_of_range_share": self.out_of_range_share,
            "unseen": self.unseen, "unseen_share": self.unseen_share,
            "unseen_examples": list(self.unseen_examples),
            "unseen_conclusive": self.unseen_conclusive, "type_mismatch": self.type_mismatch,
            "issues": list(self.issues),
        }


@dataclass(frozen=True)
class QualityReport:
    rows: int
    columns: tuple[ColumnQuality, ...]
    missing_columns: tuple[str, ...]  # in the reference, absent from the window
    extra_columns: tuple[str, ...]  # in the window, unknown to the reference

    @property
    def issues(self) -> tuple[str, ...]:
        found = [f"column {c!r} is missing (the reference has it)" for c in self.missing_columns]
        found += [f"column {c!r} is new (the reference does not have it)"
                  for c in self.extra_columns]
        found += [f"{c.column}: {issue}" for c in self.columns for issue in c.issues]
        return tuple(found)

    @property
    def ok(self) -> bool:
        return not self.issues

    def __getitem__(self, column: str) -> ColumnQuality:
        for row in self.columns:
            if row.column == column:
                return row
        raise KeyError(column)

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "ok": self.ok, "issues": list(self.issues),
                "missing_columns": list(self.missing_columns),
                "extra_columns": list(self.extra_columns),
                "columns": [c.to_dict() for c in self.columns]}


def check_quality(profile: ReferenceProfile, current: Frame,
                  options: QualityOptions | None = None) -> QualityReport:
    """Check a window of production inputs against the reference ``profile``."""
    options = options or QualityOptions()
    window = as_columns(current, "current")
    if window.rows == 0:
        raise InvalidInputError("the current window has no rows; there is nothing to check",
                                field="current")
    present = [n for n in profile.columns if n in window.names]
    rows = tuple(_column(profile.columns[n], window, options) for n in present)
    return QualityReport(
        window.rows, rows,
        tuple(n for n in profile.columns if n not in window.names),
        tuple(n for n in window.names if n not in profile.columns))


def _column(ref: ColumnProfile, window: Columns, options: QualityOptions) -> ColumnQuality:
    series = window.series(ref.name)
    rows = len(series)
    reference_share = ref.nulls / max(1, ref.count + ref.nulls + ref.infinite)
    found = natural_kind(series)
    if found is not None and not ref.accepts(found):
        mismatch = _mismatch(ref, series, found)
        missing = int(series.isna().sum())
        return ColumnQuality(ref.name, ref.kind, rows, missing, missing / rows, reference_share,
                             type_mismatch=mismatch, issues=(mismatch,))
    if ref.numeric:
        return _numeric(ref, series, options, reference_share)
    return _categorical(ref, series, options, reference_share)


def _numeric(ref: ColumnProfile, series: pd.Series, options: QualityOptions,
             reference_share: float) -> ColumnQuality:
    import numpy as np

    rows = len(series)
    read = numeric_values(series, ref.kind)
    issues = _missing_issue(read.nulls, rows, reference_share, ref, options)
    below = above = 0
    if ref.min is not None and ref.max is not None and len(read.values):
        below = int(np.count_nonzero(read.values < ref.min))
        above = int(np.count_nonzero(read.values > ref.max))
    present = len(read.values) + read.infinite
    share = (below + above) / present if present else 0.0
    if share > options.out_of_range_tolerance:
        issues.append(f"{share:.1%} of values are outside the reference's range "
                      f"[{_bound(ref, ref.min)}, {_bound(ref, ref.max)}] ({below} below, "
                      f"{above} above)")
    if read.infinite and not ref.infinite:
        issues.append(f"{read.infinite} infinite value(s); the reference had none")
    return ColumnQuality(ref.name, ref.kind, rows, read.nulls, read.nulls / rows,
                         reference_share, read.infinite, below, above, share,
                         issues=tuple(issues))


def _bound(ref: ColumnProfile, value: float | None) -> str:
    """A range bound as people read it: a time for a timestamp column (held in seconds)."""
    if value is None:
        return "?"
    if ref.kind == "timestamp":
        from datetime import UTC, datetime

        return datetime.fromtimestamp(value, UTC).isoformat(timespec="seconds")
    return f"{value:.6g}"


def _categorical(ref: ColumnProfile, series: pd.Series, options: QualityOptions,
                 reference_share: float) -> ColumnQuality:
    rows = len(series)
    keys, counts = category_counts(series)
    nulls = rows - int(counts.sum())
    issues = _missing_issue(nulls, rows, reference_share, ref, options)
    known = category_index(ref.categories)
    new = [(k, int(c)) for k, c in zip(keys, counts.tolist(), strict=True)
           if hashable(k) not in known]
    conclusive = ref.complete
    unseen = sum(c for _, c in new)
    present = rows - nulls
    share = unseen / present if present else 0.0
    examples = tuple(k for k, _ in sorted(new, key=lambda kc: -kc[1])[:EXAMPLES])
    if unseen and share > options.unseen_tolerance:
        shown = ", ".join(map(repr, examples))
        if conclusive:
            issues.append(f"{share:.1%} of values are in {len(new)} categor"
                          f"{'y' if len(new) == 1 else 'ies'} the reference never had "
                          f"(e.g. {shown})")
        else:
            issues.append(f"{share:.1%} of values are outside the reference's "
                          f"{len(ref.categories)} most frequent categories (e.g. {shown}); "
                          "the profile does not list the rarer ones")
    return ColumnQuality(ref.name, ref.kind, rows, nulls, nulls / rows, reference_share,
                         unseen=unseen, unseen_share=share, unseen_examples=examples,
                         unseen_conclusive=conclusive, issues=tuple(issues))


def _missing_issue(missing: int, rows: int, reference_share: float, ref: ColumnProfile,
                   options: QualityOptions) -> list[str]:
    share = missing / rows
    if ref.all_null:
        return []
    if missing == rows:
        return ["every value is missing"]
    p = reference_share
    reference_rows = ref.count + ref.nulls + ref.infinite
    noise = 3 * math.sqrt(max(p * (1 - p), 1e-12) * (1 / rows + 1 / reference_rows))
    if share - p > options.missing_tolerance + noise:
        return [f"{share:.1%} of values are missing; the reference had {p:.1%}"]
    return []


def _mismatch(ref: ColumnProfile, series: pd.Series, found: str) -> str:
    text = (f"expected {ref.kind} values (reference dtype {ref.dtype}), got {found} values "
            f"(dtype {series.dtype})")
    if ref.numeric:
        import pandas as pd

        present = series.notna()
        readable = (pd.to_numeric(series[present], errors="coerce").notna()
                    if ref.kind == "numeric"
                    else pd.to_datetime(series[present], errors="coerce", utc=True,
                                        format="mixed").notna())
        bad = series[present][~readable.to_numpy()]
        if len(bad):
            text += (f"; {len(bad)} value(s) cannot be read as {ref.kind} "
                     f"(e.g. {', '.join(map(repr, bad.head(EXAMPLES).tolist()))})")
    return text
