"""Data profiles and a report of what looks wrong in a batch.

A :class:`Profile` summarises each column (counts, distinct values, min/max, mean/std,
quantiles, a histogram or the most frequent values). It is plain data that round-trips
through JSON, so it can be stored with every ingestion and serve later as the reference that
new data is compared with. Statistics are computed column-wise with ``pyarrow.compute`` and
NumPy, never row by row.

:func:`report` flags outliers, features on very different scales, highly correlated pairs
and constant columns; it returns plain data with a ``to_text()`` rendering. Declared rules
that a column should follow live in :mod:`modelyard.features.expectations`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from modelyard.errors import InvalidInputError

__all__ = [
    "QUANTILES",
    "ColumnProfile",
    "Histogram",
    "Profile",
    "ProfileReport",
    "profile",
    "report",
]

QUANTILES: dict[str, float] = {"p01": 0.01, "p05": 0.05, "p25": 0.25, "p50": 0.5,
                               "p75": 0.75, "p95": 0.95, "p99": 0.99}
HISTOGRAM_BINS = 20
TOP_VALUES = 20
EXACT_QUANTILES_UP_TO = 1_000_000  # beyond: t-digest estimates
CORRELATION_SAMPLE = 200_000
SCALE_RATIO = 1e3
CORRELATION = 0.95
ROBUST_Z = 3.5

Kind = Literal["numeric", "bool", "string", "temporal", "other"]
Scalar = float | int | str | bool | None


# --- profiles -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Histogram:
    """Counts of values in equal-width bins; ``edges`` has one more item than ``counts``."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]


@dataclass(frozen=True)
class ColumnProfile:
    """One column's summary. ``count`` are values present; ``nulls`` are missing (NaN too)."""

    name: str
    kind: Kind
    dtype: str
    count: int
    nulls: int
    distinct: int
    min: Scalar = None  # numbers for numeric columns, ISO text for dates and times
    max: Scalar = None
    mean: float | None = None  # for bool columns: the share of true
    std: float | None = None
    quantiles: dict[str, float] | None = None
    histogram: Histogram | None = None
    top_values: tuple[tuple[Scalar, int], ...] | None = None  # most frequent first
    other_values: int = 0  # present values outside top_values
    infinite: int = 0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnProfile:
        values = dict(data)
        if values.get("histogram") is not None:
            h = values["histogram"]
            values["histogram"] = Histogram(tuple(h["edges"]), tuple(h["counts"]))
        if values.get("top_values") is not None:
            values["top_values"] = tuple((v, int(n)) for v, n in values["top_values"])
        return cls(**values)


@dataclass(frozen=True)
class Profile:
    rows: int
    columns: dict[str, ColumnProfile] = field(default_factory=dict)

    def __getitem__(self, name: str) -> ColumnProfile:
        return self.columns[name]

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows,
                "columns": {name: _jsonable(asdict(c)) for name, c in self.columns.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        return cls(int(data["rows"]), {name: ColumnProfile.from_dict(c)
                                       for name, c in data["columns"].items()})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), allow_nan=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Profile:
        return cls.from_dict(json.loads(text))


def profile(table: pa.Table, columns: Sequence[str] | None = None) -> Profile:
    """Summarise ``columns`` of ``table`` (all columns by default)."""
    names = list(table.column_names if columns is None else columns)
    _require_columns(table, names)
    return Profile(table.num_rows, {n: _profile_column(n, table[n]) for n in names})


def _profile_column(name: str, column: pa.ChunkedArray) -> ColumnProfile:
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    kind = _kind(column.type)
    try:
        distinct = int(pc.count_distinct(column, mode="only_valid").as_py())
    except pa.ArrowNotImplementedError:
        distinct = 0  # lists, structs...: not hashable by Arrow
    base: dict[str, Any] = {"name": name, "kind": kind, "dtype": str(column.type)}
    if kind == "numeric":
        return _numeric(column, distinct, base)
    present = len(column) - column.null_count
    base.update(count=present, nulls=column.null_count, distinct=distinct)
    if kind in ("string", "temporal"):
        low, high = pc.min_max(column).as_py().values()
        base.update(min=_text(low), max=_text(high))
    if kind in ("string", "bool"):
        top, other = _top_values(column, present)
        base.update(top_values=top, other_values=other)
    if kind == "bool" and present:
        base.update(mean=_num(pc.mean(column.cast(pa.float64()))))
    return ColumnProfile(**base)


def _numeric(column: pa.ChunkedArray, distinct: int, base: dict[str, Any]) -> ColumnProfile:
    as_float = column.cast(pa.float64(), safe=False)
    finite = as_float.filter(pc.is_finite(as_float))
    nans = int(pc.sum(pc.is_nan(as_float)).as_py() or 0)
    count = len(finite)
    infinite = len(column) - column.null_count - nans - count
    base.update(count=count + infinite, nulls=column.null_count + nans,
                distinct=distinct - (1 if nans else 0), infinite=infinite)
    if count == 0:
        return ColumnProfile(**base)
    low, high = pc.min_max(finite).as_py().values()
    values = np.asarray(finite.to_numpy(), dtype=np.float64)
    counts, edges = np.histogram(values, bins=HISTOGRAM_BINS)
    base.update(min=float(low), max=float(high), mean=_num(pc.mean(finite)),
                std=_num(pc.stddev(finite, ddof=1)), quantiles=_quantiles(finite),
                histogram=Histogram(tuple(float(e) for e in edges),
                                    tuple(int(c) for c in counts)))
    return ColumnProfile(**base)


def _quantiles(values: pa.ChunkedArray) -> dict[str, float]:
    qs = list(QUANTILES.values())
    if len(values) <= EXACT_QUANTILES_UP_TO:
        found = pc.quantile(values, q=qs, interpolation="linear")
    else:
        found = pc.tdigest(values, q=qs)
    return {k: float(v) for k, v in zip(QUANTILES, found.to_pylist(), strict=True)}


def _top_values(column: pa.ChunkedArray, present: int
                ) -> tuple[tuple[tuple[Scalar, int], ...], int]:
    counts = pc.value_counts(column)
    values, freq = counts.field("values"), counts.field("counts")
    keep = pc.is_valid(values)
    table = pa.table({"v": values.filter(keep), "n": freq.filter(keep)})
    table = table.sort_by([("n", "descending"), ("v", "ascending")]).slice(0, TOP_VALUES)
    top = tuple((v, int(n)) for v, n in zip(table["v"].to_pylist(), table["n"].to_pylist(),
                                            strict=True))
    return top, present - sum(n for _, n in top)


def _kind(kind: pa.DataType) -> Kind:
    if pa.types.is_boolean(kind):
        return "bool"
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return "numeric"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or (
            pa.types.is_string_view(kind)):
        return "string"
    if pa.types.is_temporal(kind):
        return "temporal"
    return "other"


def _num(scalar: pa.Scalar) -> float | None:
    value = scalar.as_py()
    return float(value) if value is not None and math.isfinite(value) else None


def _text(value: Any) -> Scalar:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _require_columns(table: pa.Table, names: Iterable[str]) -> None:
    missing = [n for n in names if n not in table.column_names]
    if missing:
        raise InvalidInputError(f"no column(s) {', '.join(map(repr, missing))}; the table has "
                                f"{', '.join(table.column_names)}", columns=missing)


# --- report -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outliers:
    column: str
    iqr: int  # outside [p25 - 1.5 IQR, p75 + 1.5 IQR]
    robust_z: int  # |0.6745 (x - median) / MAD| > 3.5


@dataclass(frozen=True)
class ScaleGap:
    largest: str
    smallest: str
    ratio: float


@dataclass(frozen=True)
class Correlated:
    a: str
    b: str
    pearson: float


@dataclass(frozen=True)
class ProfileReport:
    """What looks wrong in a batch; every part is plain data a CLI or UI can lay out."""

    rows: int
    outliers: tuple[Outliers, ...]
    scale_gap: ScaleGap | None
    correlated: tuple[Correlated, ...]
    constant: tuple[str, ...]

    @property
    def flagged(self) -> bool:
        return bool(any(o.iqr or o.robust_z for o in self.outliers) or self.scale_gap
                    or self.correlated or self.constant)

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))  # type: ignore[no-any-return]

    def to_text(self) -> str:
        lines = [f"{self.rows} rows"]
        with_outliers = [o for o in self.outliers if o.iqr or o.robust_z]
        if with_outliers:
            lines.append("outliers (IQR rule / robust z-score):")
            lines += [f"  {o.column}: {o.iqr} / {o.robust_z}" for o in with_outliers]
        if self.scale_gap:
            g = self.scale_gap
            lines.append(f"scales differ {g.ratio:.3g}x: {g.largest} vs {g.smallest}")
        if self.correlated:
            lines.append(f"highly correlated (|pearson| > {CORRELATION}):")
            lines += [f"  {c.a} ~ {c.b}: {c.pearson:+.3f}" for c in self.correlated]
        if self.constant:
            lines.append(f"constant: {', '.join(self.constant)}")
        if not self.flagged:
            lines.append("nothing flagged")
        return "\n".join(lines)


def report(table: pa.Table, columns: Sequence[str] | None = None, *,
           summary: Profile | None = None) -> ProfileReport:
    """Flag outliers, very different scales, correlated pairs and constant columns."""
    names = list(table.column_names if columns is None else columns)
    summary = summary or profile(table, names)
    numeric = [n for n in names if summary[n].kind == "numeric" and summary[n].count]
    outliers = tuple(_outliers(n, table[n], summary[n]) for n in numeric)
    constant = tuple(n for n in names
                     if summary[n].kind != "other" and summary[n].distinct <= 1)
    return ProfileReport(summary.rows, outliers, _scale_gap(numeric, summary),
                         _correlated(table, [n for n in numeric if n not in constant]),
                         constant)


def _finite(column: pa.ChunkedArray) -> np.ndarray:
    as_float = column.cast(pa.float64(), safe=False)
    return np.asarray(as_float.filter(pc.is_finite(as_float)).to_numpy(), dtype=np.float64)


def _outliers(name: str, column: pa.ChunkedArray, stats: ColumnProfile) -> Outliers:
    values = _finite(column)
    q = stats.quantiles or {}
    q1, q3 = q.get("p25", 0.0), q.get("p75", 0.0)
    fence = 1.5 * (q3 - q1)
    iqr = int(np.count_nonzero((values < q1 - fence) | (values > q3 + fence)))
    median = float(np.median(values))
    deviation = np.abs(values - median)
    mad = float(np.median(deviation))
    if mad > 0:
        z = 0.6745 * deviation / mad
    else:  # more than half the values equal the median: fall back on the mean deviation
        mean_ad = float(deviation.mean())
        z = deviation / (1.253314 * mean_ad) if mean_ad > 0 else np.zeros_like(deviation)
    return Outliers(name, iqr, int(np.count_nonzero(z > ROBUST_Z)))


def _scale_gap(numeric: list[str], summary: Profile) -> ScaleGap | None:
    scales: dict[str, float] = {}
    for name in numeric:
        stats = summary[name]
        q = stats.quantiles or {}
        spread = q.get("p75", 0.0) - q.get("p25", 0.0)
        scale = spread if spread > 0 else (stats.std or 0.0)
        if scale > 0:
            scales[name] = scale
    if len(scales) < 2:
        return None
    largest = max(scales, key=lambda n: scales[n])
    smallest = min(scales, key=lambda n: scales[n])
    ratio = scales[largest] / scales[smallest]
    return ScaleGap(largest, smallest, ratio) if ratio > SCALE_RATIO else None


def _correlated(table: pa.Table, numeric: list[str]) -> tuple[Correlated, ...]:
    if len(numeric) < 2:
        return ()
    step = max(1, table.num_rows // CORRELATION_SAMPLE)
    rows = pa.array(np.arange(0, table.num_rows, step, dtype=np.int64))
    matrix = np.column_stack([
        np.asarray(table[n].take(rows).cast(pa.float64(), safe=False)
                   .to_numpy(zero_copy_only=False), dtype=np.float64) for n in numeric])
    matrix[~np.isfinite(matrix)] = np.nan
    found: list[Correlated] = []
    for i in range(len(numeric)):
        for j in range(i + 1, len(numeric)):
            r = _pearson(matrix[:, i], matrix[:, j])
            if r is not None and abs(r) > CORRELATION:
                found.append(Correlated(numeric[i], numeric[j], r))
    return tuple(sorted(found, key=lambda c: -abs(c.pearson)))


def _pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    both = ~(np.isnan(x) | np.isnan(y))
    if both.sum() < 3:
        return None
    x, y = x[both] - x[both].mean(), y[both] - y[both].mean()
    denominator = math.sqrt(float(x @ x) * float(y @ y))
    return float(x @ y) / denominator if denominator > 0 else None
