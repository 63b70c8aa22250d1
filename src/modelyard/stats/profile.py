"""Reference profiles: what monitoring keeps of a training set instead of the data.

:func:`build_profile` reads each column once (one sort for a numeric column, one hash pass
for a categorical one) and keeps, per column: its kind, counts of present, missing and
infinite values, min/max, mean and standard deviation (population, ``ddof=0``), a sketch of
``sketch_size`` evenly spaced quantiles (plus 16 in each tail, see
:mod:`modelyard.stats.drift_statistics`), counts in ``bins`` quantile bins with open ends (so
values outside the reference's range land in the end bins), or the ``top_k`` most frequent
categories with an "other" count, and the calibration of every drift test that applies
(:mod:`modelyard.stats.drift_calibration`). Predictions on the training set are profiled the
same way. :meth:`ReferenceProfile.to_dict` is JSON-safe and
:meth:`ReferenceProfile.from_dict` gives back an equal profile; the quantiles are packed as
base64 of little-endian float64 (exact), so a numeric column takes about 12 KB and a
categorical one a few hundred bytes plus its category names.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modelyard.errors import InvalidInputError
from modelyard.stats import drift_statistics as stats
from modelyard.stats.columns import (
    KINDS,
    Category,
    Columns,
    Frame,
    Kind,
    as_columns,
    category_codes,
    natural_kind,
    numeric_values,
    prediction_columns,
)
from modelyard.stats.drift_calibration import (
    Calibration,
    calibrate_categorical,
    calibrate_numeric,
)

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["FORMAT", "PROFILE_ROWS", "ColumnProfile", "ReferenceProfile", "build_profile",
           "profile_rows"]

FORMAT = 1  # version of the dict layout written by to_dict
PROFILE_ROWS = 200_000  # rows a reference is profiled on, at most (a seeded sample beyond)
_SEED = 0


@dataclass(frozen=True)
class ColumnProfile:
    """One reference column. Numeric and timestamp columns (timestamps in seconds since the
    epoch) fill ``min`` to ``bin_counts``; categorical and boolean columns fill
    ``categories`` (most frequent first), ``bin_counts`` (one per category, then the count
    of every other value) and ``distinct``."""

    name: str
    kind: Kind
    dtype: str
    count: int  # present values (finite ones for numeric columns)
    nulls: int  # missing: null, NaN, NaT
    infinite: int = 0
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None
    quantiles: tuple[float, ...] = ()
    bin_edges: tuple[float, ...] = ()  # inner edges: (-inf, e0), [e0, e1), ..., [e_last, inf)
    bin_counts: tuple[int, ...] = ()
    categories: tuple[Category, ...] = ()
    distinct: int = 0
    calibration: Calibration = field(default_factory=Calibration)

    @property
    def numeric(self) -> bool:
        return self.kind in ("numeric", "timestamp")

    @property
    def all_null(self) -> bool:
        return self.count == 0

    @property
    def constant(self) -> bool:
        """A single value (numeric columns: min equals max)."""
        if self.count == 0:
            return False
        return self.min == self.max if self.numeric else self.distinct == 1

    def accepts(self, found: Kind) -> bool:
        """Whether current values of kind ``found`` can be compared with this column."""
        if found == self.kind:
            return True
        if self.kind != "categorical":
            return False
        if found == "boolean":
            return all(isinstance(c, bool) for c in self.categories)
        if found == "numeric":
            return all(isinstance(c, int | float) and not isinstance(c, bool)
                       for c in self.categories)
        return False

    @property
    def complete(self) -> bool:
        """Every category of the reference is listed (not only the most frequent)."""
        return len(self.categories) == self.distinct

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "kind": self.kind, "dtype": self.dtype, "count": self.count,
            "nulls": self.nulls, "infinite": self.infinite, "min": self.min, "max": self.max,
            "mean": self.mean, "std": self.std, "quantiles": _pack(self.quantiles),
            "bin_edges": list(self.bin_edges), "bin_counts": list(self.bin_counts),
            "categories": list(self.categories), "distinct": self.distinct,
            "chunk_rows": list(self.calibration.chunk_rows),
            "calibration": {test: list(values)
                            for test, values in self.calibration.statistics.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnProfile:
        try:
            if data["kind"] not in KINDS:
                raise ValueError(f"unknown kind {data['kind']!r}")
            quantiles = _unpack(data.get("quantiles", ()))
            if quantiles:
                stats.grid_of(quantiles)  # a sketch of a size this version can read
            return cls(
                name=str(data["name"]), kind=data["kind"], dtype=str(data["dtype"]),
                count=int(data["count"]), nulls=int(data["nulls"]),
                infinite=int(data.get("infinite", 0)), min=_float(data.get("min")),
                max=_float(data.get("max")), mean=_float(data.get("mean")),
                std=_float(data.get("std")),
                quantiles=quantiles,
                bin_edges=tuple(float(v) for v in data.get("bin_edges", ())),
                bin_counts=tuple(int(v) for v in data.get("bin_counts", ())),
                categories=tuple(data.get("categories", ())),
                distinct=int(data.get("distinct", 0)),
                calibration=Calibration(
                    tuple(int(v) for v in data.get("chunk_rows", ())),
                    {test: tuple(float(v) for v in values)
                     for test, values in data.get("calibration", {}).items()}),
            )
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise InvalidInputError(f"profile column {data.get('name')!r} is malformed: "
                                    f"{exc}", field="profile") from exc


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _pack(values: Sequence[float]) -> str:
    """Floats as base64 of little-endian float64: exact, and 8 bytes (+1/3) each."""
    import struct

    return base64.b64encode(struct.pack(f"<{len(values)}d", *values)).decode("ascii")


def _unpack(packed: str | Sequence[float]) -> tuple[float, ...]:
    import struct

    if not isinstance(packed, str):  # a plain list is accepted too
        return tuple(float(v) for v in packed)
    raw = base64.b64decode(packed.encode("ascii"), validate=True)
    if len(raw) % 8:
        raise ValueError("packed quantiles are not a whole number of float64")
    return struct.unpack(f"<{len(raw) // 8}d", raw)


@dataclass(frozen=True)
class ReferenceProfile:
    """A training set's profile: its columns and the predictions made on it."""

    rows: int
    columns: Mapping[str, ColumnProfile]
    predictions: Mapping[str, ColumnProfile] = field(default_factory=dict)
    sketch_size: int = 1001
    bins: int = 10
    top_k: int = 100
    chunks: int = 20

    def __getitem__(self, name: str) -> ColumnProfile:
        return self.columns[name]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "rows": self.rows,
            "settings": {"sketch_size": self.sketch_size, "bins": self.bins,
                         "top_k": self.top_k, "chunks": self.chunks},
            "columns": [c.to_dict() for c in self.columns.values()],
            "predictions": [c.to_dict() for c in self.predictions.values()],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceProfile:
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, Mapping) else type(data).__name__
            raise InvalidInputError(f"not a reference profile of format {FORMAT} "
                                    f"(format {found!r})", field="profile")
        try:
            settings = data["settings"]
            columns = [ColumnProfile.from_dict(c) for c in data["columns"]]
            predictions = [ColumnProfile.from_dict(c) for c in data.get("predictions", [])]
            return cls(int(data["rows"]), {c.name: c for c in columns},
                       {c.name: c for c in predictions}, int(settings["sketch_size"]),
                       int(settings["bins"]), int(settings["top_k"]), int(settings["chunks"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"reference profile is malformed: {exc}",
                                    field="profile") from exc

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), allow_nan=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ReferenceProfile:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"reference profile is not JSON: {exc}",
                                    field="profile") from exc
        return cls.from_dict(data)


def profile_rows(table: pa.Table, columns: list[str]) -> pa.Table:
    """The input columns of ``table``, at most :data:`PROFILE_ROWS` rows (seeded sample):
    what a reference is profiled on, at registration or when it is set later."""
    import numpy as np

    table = table.select(columns)
    if table.num_rows > PROFILE_ROWS:
        rng = np.random.default_rng(_SEED)
        table = table.take(np.sort(rng.choice(table.num_rows, PROFILE_ROWS, replace=False)))
    return table


def build_profile(frame: Frame, predictions: Any = None, *,
                  columns: Sequence[str] | None = None, kinds: Mapping[str, str] | None = None,
                  prediction_kinds: Mapping[str, str] | None = None, sketch_size: int = 1001,
                  bins: int = 10, top_k: int = 100, chunks: int = 20) -> ReferenceProfile:
    """Profile the reference ``frame`` (a pandas DataFrame or pyarrow Table) and, when given,
    the model's ``predictions`` on it (see
    :func:`modelyard.stats.columns.prediction_columns`).

    ``kinds`` declares a column's kind (e.g. ``{"zip": "categorical"}``) instead of the one
    its values have. ``chunks`` is the number of reference chunks calibration compares
    (0: none).
    """
    _check_settings(sketch_size, bins, top_k, chunks)
    source = as_columns(frame, "frame")
    if source.rows == 0:
        raise InvalidInputError("the reference has no rows; a profile needs data",
                                field="frame")
    names = _selected(source, columns)
    settings = {"sketch_size": sketch_size, "bins": bins, "top_k": top_k, "chunks": chunks}
    profiled = _profile_all(source, names, kinds or {}, "kinds", settings)
    preds: dict[str, ColumnProfile] = {}
    if predictions is not None:
        outputs = prediction_columns(predictions, source.rows, "predictions")
        preds = _profile_all(outputs, list(outputs.names), prediction_kinds or {},
                             "prediction_kinds", settings)
    return ReferenceProfile(source.rows, profiled, preds, **settings)


def _check_settings(sketch_size: int, bins: int, top_k: int, chunks: int) -> None:
    for name, value, low in (("sketch_size", sketch_size, 3), ("bins", bins, 2),
                             ("top_k", top_k, 1), ("chunks", chunks, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise InvalidInputError(f"{name} must be an integer >= {low}, not {value!r}",
                                    field=name)
    if bins >= sketch_size:
        raise InvalidInputError(f"bins ({bins}) must be fewer than sketch_size "
                                f"({sketch_size})", field="bins")


def _selected(source: Columns, columns: Sequence[str] | None) -> list[str]:
    if columns is None:
        return list(source.names)
    if isinstance(columns, str):
        raise InvalidInputError("columns must be a list of column names, not one string",
                                field="columns")
    missing = [c for c in columns if c not in source.names]
    if missing:
        raise InvalidInputError(
            f"no column(s) {', '.join(map(repr, missing))} in the reference; it has "
            f"{', '.join(source.names)}", field="columns", columns=missing)
    return list(dict.fromkeys(columns))


def _profile_all(source: Columns, names: Sequence[str], kinds: Mapping[str, str],
                 field_name: str, settings: Mapping[str, int]) -> dict[str, ColumnProfile]:
    unknown = [c for c in kinds if c not in names]
    if unknown:
        raise InvalidInputError(f"{field_name} names unknown column(s) "
                                f"{', '.join(map(repr, unknown))}", field=field_name)
    bad = {c: k for c, k in kinds.items() if k not in KINDS}
    if bad:
        raise InvalidInputError(
            f"{field_name}: unknown kind(s) {', '.join(f'{c}={k!r}' for c, k in bad.items())};"
            f" the kinds are {', '.join(KINDS)}", field=field_name)
    return {name: profile_column(name, source.series(name), kinds.get(name), **settings)
            for name in names}


def profile_column(name: str, series: pd.Series, kind: str | None = None, *,
                   sketch_size: int = 1001, bins: int = 10, top_k: int = 100,
                   chunks: int = 20) -> ColumnProfile:
    """Profile one column; ``kind`` overrides the kind its values have."""
    chosen: Kind = kind or natural_kind(series) or "categorical"  # type: ignore[assignment]
    dtype = str(series.dtype)
    if chosen in ("numeric", "timestamp"):
        return _numeric_profile(name, chosen, dtype, series, sketch_size, bins, chunks)
    return _categorical_profile(name, chosen, dtype, series, top_k, chunks)


def _numeric_profile(name: str, kind: Kind, dtype: str, series: pd.Series, sketch_size: int,
                     bins: int, chunks: int) -> ColumnProfile:
    import numpy as np

    read = numeric_values(series, kind)
    values = read.values
    if len(values) == 0:
        return ColumnProfile(name, kind, dtype, 0, read.nulls, read.infinite)
    ordered = np.sort(values)
    knots = stats.sketch(ordered, sketch_size)
    edges = np.unique(stats.sketch_quantiles(ordered, np.arange(1, bins) / bins))
    low, high = float(ordered[0]), float(ordered[-1])
    std = 0.0 if low == high else float(values.std())
    return ColumnProfile(
        name, kind, dtype, len(values), read.nulls, read.infinite, low, high,
        float(values.mean()), std, tuple(knots.tolist()), tuple(edges.tolist()),
        tuple(stats.bin_counts(ordered, edges).tolist()),
        calibration=calibrate_numeric(values, ordered, knots, edges, std, chunks))


def _categorical_profile(name: str, kind: Kind, dtype: str, series: pd.Series, top_k: int,
                         chunks: int) -> ColumnProfile:
    import numpy as np

    codes, distinct = category_codes(series)
    present = codes[codes >= 0]
    nulls = len(codes) - len(present)
    if len(present) == 0:
        return ColumnProfile(name, kind, dtype, 0, nulls)
    counts = np.bincount(present, minlength=len(distinct))
    top = np.argsort(-counts, kind="stable")[:top_k]
    slot = np.full(len(distinct), len(top), dtype=np.intp)
    slot[top] = np.arange(len(top))
    kept = counts[top]
    bin_counts = np.append(kept, len(present) - kept.sum())
    return ColumnProfile(
        name, kind, dtype, len(present), nulls, bin_counts=tuple(bin_counts.tolist()),
        categories=tuple(distinct.keys(top.tolist())), distinct=len(distinct),
        calibration=calibrate_categorical(slot[present], bin_counts, chunks))
