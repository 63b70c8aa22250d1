"""Column kinds, and the values that the drift statistics read from a frame.

A column is one of four kinds:

``numeric``
    integers, floats, decimals, durations (in seconds). Non-finite values are kept out of
    the distribution: NaN counts as missing, +-inf is counted on its own.
``timestamp``
    dates and times, compared as seconds since the epoch (UTC) so that the numeric tests
    apply to them.
``boolean``
    compared as the categories ``False`` / ``True``.
``categorical``
    strings, pandas categories, and any column declared categorical.

Frames are pandas DataFrames or pyarrow Tables. A column is converted on its own when it is
read, so at most one column's copy is alive at a time.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from modelyard.errors import InvalidInputError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from numpy.typing import NDArray

__all__ = ["KINDS", "Category", "Distinct", "Frame", "Kind", "NumericValues", "as_columns",
           "category_codes", "category_counts", "category_index", "category_key",
           "counts_by_category", "hashable", "natural_kind", "numeric_values",
           "prediction_columns"]

Kind = Literal["numeric", "categorical", "boolean", "timestamp"]
KINDS: tuple[Kind, ...] = ("numeric", "categorical", "boolean", "timestamp")
Category = str | int | float | bool  # a JSON-safe category value
Frame = Any  # a pandas DataFrame or a pyarrow Table

_OBJECT_KINDS: dict[str, Kind] = {
    "integer": "numeric", "floating": "numeric", "mixed-integer-float": "numeric",
    "decimal": "numeric", "timedelta": "numeric", "timedelta64": "numeric",
    "boolean": "boolean",
    "datetime": "timestamp", "datetime64": "timestamp", "date": "timestamp",
}


@dataclass(frozen=True)
class Columns:
    """The named columns of one frame, read one at a time as pandas Series."""

    names: tuple[str, ...]
    rows: int
    frame: Any

    def series(self, name: str) -> pd.Series:
        import pandas as pd

        if isinstance(self.frame, pd.DataFrame):
            return self.frame[self._label(name)]
        return self.frame.column(name).to_pandas()  # a pyarrow Table

    def _label(self, name: str) -> Any:
        if name in self.frame.columns:
            return name
        return next(c for c in self.frame.columns if str(c) == name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)


def as_columns(frame: Frame, field: str) -> Columns:
    """Wrap a pandas DataFrame or pyarrow Table; anything else is refused naming ``field``."""
    import pandas as pd
    import pyarrow as pa

    if isinstance(frame, pd.DataFrame):
        names = tuple(str(c) for c in frame.columns)
        rows = len(frame)
    elif isinstance(frame, pa.Table):
        names, rows = tuple(frame.column_names), frame.num_rows
    else:
        raise InvalidInputError(f"{field} must be a pandas DataFrame or a pyarrow Table, not "
                                f"{type(frame).__name__}", field=field)
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise InvalidInputError(
            f"{field} has duplicated column name(s) {', '.join(map(repr, duplicated))}; "
            "every column needs its own name", field=field, columns=duplicated)
    return Columns(names, rows, frame)


def prediction_columns(predictions: Any, rows: int, field: str) -> Columns:
    """Predictions as columns: a 1-D array or Series is the column ``prediction``, a 2-D
    array gives ``prediction_0``, ``prediction_1``..., a DataFrame or pyarrow Table keeps
    its names."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    if isinstance(predictions, pd.DataFrame | pa.Table):
        return _checked_rows(as_columns(predictions, field), rows, field)
    if isinstance(predictions, pd.Series):
        frame = pd.DataFrame({"prediction": predictions.reset_index(drop=True)})
    else:
        array = np.asarray(predictions)
        if array.ndim == 1:
            frame = pd.DataFrame({"prediction": array})
        elif array.ndim == 2:
            frame = pd.DataFrame({f"prediction_{i}": array[:, i] for i in range(array.shape[1])})
        else:
            raise InvalidInputError(
                f"{field} must be one value per row (1-D) or one row of values per row "
                f"(2-D), not an array of {array.ndim} dimensions", field=field)
    return _checked_rows(as_columns(frame, field), rows, field)


def _checked_rows(columns: Columns, rows: int, field: str) -> Columns:
    if columns.rows != rows:
        raise InvalidInputError(
            f"{field} has {columns.rows} rows but the frame has {rows}; give one prediction "
            "per row", field=field)
    return columns


def natural_kind(series: pd.Series) -> Kind | None:
    """The kind a column's values have; ``None`` when nothing tells (no value present)."""
    import pandas as pd
    from pandas.api import types

    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return "categorical"
    if types.is_bool_dtype(dtype):
        return "boolean"
    if types.is_datetime64_any_dtype(dtype):
        return "timestamp"
    if types.is_timedelta64_dtype(dtype) or types.is_numeric_dtype(dtype):
        return "numeric"
    if types.is_object_dtype(dtype):
        inferred = types.infer_dtype(series, skipna=True)
        if inferred == "empty":
            return None
        return _OBJECT_KINDS.get(inferred, "categorical")
    return "categorical"


@dataclass(frozen=True)
class NumericValues:
    """The finite values of a numeric or timestamp column, in row order."""

    values: NDArray[np.float64]
    nulls: int
    infinite: int


def numeric_values(series: pd.Series, kind: Kind = "numeric") -> NumericValues:
    """Finite float64 values of a numeric, duration or timestamp column (seconds since the
    epoch for timestamps); values that cannot be read as numbers or times count as
    missing."""
    import numpy as np
    import pandas as pd
    from pandas.api import types

    dtype = series.dtype
    if kind == "timestamp" or types.is_datetime64_any_dtype(dtype):
        raw = _epoch_seconds(series)
    elif types.is_timedelta64_dtype(dtype):
        raw = series.dt.total_seconds().to_numpy(dtype=np.float64, na_value=np.nan)
    elif types.is_numeric_dtype(dtype) and not types.is_bool_dtype(dtype):
        raw = series.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        numbers = pd.to_numeric(series, errors="coerce")
        raw = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    finite = np.isfinite(raw)
    if finite.all():
        return NumericValues(raw, 0, 0)
    nulls = int(np.isnan(raw).sum())
    values = raw[finite]
    return NumericValues(values, nulls, len(raw) - len(values) - nulls)


def _epoch_seconds(series: pd.Series) -> NDArray[np.float64]:
    import numpy as np
    import pandas as pd

    stamps = pd.to_datetime(series, errors="coerce", utc=True)
    stamps = stamps.dt.tz_localize(None)
    array = stamps.to_numpy().astype("datetime64[us]")
    seconds: NDArray[np.float64] = array.view(np.int64) / 1e6
    seconds[np.isnat(array)] = np.nan
    return seconds


def category_key(value: Any) -> Category:
    """A category value as stored in a profile: a JSON-safe str, int, float or bool."""
    import numpy as np

    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float) and math.isfinite(value):
        # 3.0 is the category 3: integers turn into floats when a column has missing values
        return int(value) if value.is_integer() else value
    return str(value)


@dataclass(frozen=True)
class Distinct:
    """A column's distinct present values, in the order its codes number them. Their
    :func:`category_key` values are made by :meth:`keys` for the positions asked only, so a
    column of a million distinct strings does not become a million Python objects."""

    values: Any  # a list of keys, a pyarrow array of strings, or a pandas Index of strings

    def __len__(self) -> int:
        return len(self.values)

    def keys(self, positions: Sequence[int]) -> list[Category]:
        if isinstance(self.values, list):
            return [self.values[i] for i in positions]
        import pandas as pd

        if isinstance(self.values, pd.Index):
            return [category_key(v) for v in self.values.take(list(positions)).tolist()]
        from modelyard.stats.strings import take_strings

        return list(take_strings(self.values, positions))


def category_codes(series: pd.Series) -> tuple[NDArray[np.intp], Distinct]:
    """Each row's category number (-1 when missing) and the distinct categories, in order of
    first appearance. Columns of strings are encoded by Arrow (see
    :mod:`modelyard.stats.strings`)."""
    import numpy as np
    import pandas as pd

    from modelyard.stats.strings import arrow_strings, string_codes

    strings = arrow_strings(series)
    if strings is not None:
        codes, dictionary = string_codes(strings)
        return codes, Distinct(dictionary)
    try:
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
    except TypeError as exc:
        raise _not_categories(series, exc) from exc
    if _string_categories(series):  # each category is its own key, and all are distinct
        return np.asarray(codes, dtype=np.intp), Distinct(pd.Index(uniques))
    keys, remap = _distinct_keys(uniques)
    if remap is not None:
        codes = np.where(codes >= 0, remap[np.maximum(codes, 0)], -1)
    return np.asarray(codes, dtype=np.intp), Distinct(keys)


def category_counts(series: pd.Series) -> tuple[list[Category], NDArray[np.int64]]:
    """The present categories (as :func:`category_key` values) and how often each occurs."""
    import numpy as np

    from modelyard.stats.strings import arrow_strings, string_value_counts

    strings = arrow_strings(series)
    if strings is not None:
        values, found = string_value_counts(strings)
        return values.to_pylist(), found
    try:
        counts = series.value_counts(dropna=True, sort=False)
    except TypeError as exc:
        raise _not_categories(series, exc) from exc
    counts = counts[counts.to_numpy() > 0]  # a pandas category can be unused
    values = counts.to_numpy(dtype=np.int64)
    keys, remap = _distinct_keys(counts.index)
    if remap is None:
        return keys, values
    return keys, np.bincount(remap, weights=values, minlength=len(keys)).astype(np.int64)


def counts_by_category(series: pd.Series, categories: Sequence[Category]
                       ) -> NDArray[np.int64]:
    """How many present values fall in each of ``categories`` (a profile's) and, last, how
    many in none of them."""
    import numpy as np

    from modelyard.stats.strings import arrow_strings, string_counts

    strings = arrow_strings(series)
    if strings is not None:
        return string_counts(strings, categories)
    keys, found = category_counts(series)
    position = category_index(categories)
    other = len(categories)
    slots = np.array([position.get(hashable(k), other) for k in keys], dtype=np.intp)
    return np.bincount(slots, weights=found, minlength=other + 1).astype(np.int64)


def _string_categories(series: pd.Series) -> bool:
    """A pandas categorical column whose categories are all strings."""
    import pandas as pd
    from pandas.api import types

    dtype = series.dtype
    if not isinstance(dtype, pd.CategoricalDtype):
        return False
    categories = dtype.categories
    return (isinstance(categories.dtype, pd.StringDtype)
            or types.infer_dtype(categories, skipna=False) == "string")


def _distinct_keys(uniques: Any) -> tuple[list[Category], NDArray[np.intp] | None]:
    """Keys of pandas' distinct values; values that pandas tells apart but that share one key
    (two objects with one ``str``) are merged, through the returned re-mapping."""
    import numpy as np

    keys = [category_key(v) for v in uniques]
    if len(set(map(hashable, keys))) == len(keys):
        return keys, None
    position: dict[tuple[str, Category], int] = {}
    distinct: list[Category] = []
    remap = np.empty(len(keys), dtype=np.intp)
    for i, key in enumerate(keys):
        j = position.setdefault(hashable(key), len(distinct))
        if j == len(distinct):
            distinct.append(key)
        remap[i] = j
    return distinct, remap


def category_index(categories: Sequence[Category]) -> dict[tuple[str, Category], int]:
    """Position of each category, keyed so that ``True`` and ``1`` stay different."""
    return {hashable(c): i for i, c in enumerate(categories)}


def hashable(key: Category) -> tuple[str, Category]:
    """A dictionary key for a category under which ``True``, ``1`` and ``1.0`` differ."""
    return (type(key).__name__, key)


def _not_categories(series: pd.Series, exc: Exception) -> InvalidInputError:
    return InvalidInputError(
        f"column {series.name!r} holds values that cannot be compared as categories "
        f"({exc}); leave it out with columns=", field=str(series.name))
