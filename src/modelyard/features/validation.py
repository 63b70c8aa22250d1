"""Batch validation: a pandas, Polars or Arrow frame checked against a declared schema.

:func:`validate_batch` returns an Arrow table ready to store, or raises
:class:`~modelyard.errors.DataValidationError` listing every problem found, each with its
column, the number of bad rows and up to three example rows. Declared columns are converted
to their declared type (``int``, ``float``, ``string``, ``bool``, ``timestamp``, ``date``);
a conversion counts as possible only when it loses nothing (``2.5`` is not an int). Columns
that are not declared are kept as they come.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from modelyard.errors import DataValidationError, InvalidInputError

__all__ = ["COLUMN_TYPES", "Problem", "infer_schema", "to_arrow", "validate_batch"]

UTC_TIMESTAMP = pa.timestamp("us", tz="UTC")
COLUMN_TYPES: dict[str, pa.DataType] = {
    "int": pa.int64(),
    "float": pa.float64(),
    "string": pa.string(),
    "bool": pa.bool_(),
    "timestamp": UTC_TIMESTAMP,
    "date": pa.date32(),
}
_EXAMPLES = 3
_CAST_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError)
_INT_TEXT = r"^[+-]?\d+$"
_FLOAT_TEXT = r"(?i)^[+-]?((\d+\.?\d*|\.\d+)(e[+-]?\d+)?|inf|infinity|nan)$"
_BOOL_TEXT = r"(?i)^(true|false|1|0)$"
_DATE_TEXT = r"^\d{4}-\d{2}-\d{2}$"
_ZONED_TEXT = r"(?i)^\d{4}-\d{2}-\d{2}[t ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?\s*(z|[+-]\d{2}(:?\d{2})?)$"
_NAIVE_TEXT = r"(?i)^\d{4}-\d{2}-\d{2}([t ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?$"
_TEXT_PATTERNS = {"int": _INT_TEXT, "float": _FLOAT_TEXT, "bool": _BOOL_TEXT, "date": _DATE_TEXT}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a batch: which column, how many rows, and a few of them."""

    column: str
    problem: str  # reads after the column name: "is missing", "has null keys", ...
    rows: int
    examples: tuple[tuple[int, str], ...] = ()  # (row position, value as text)
    hint: str = ""  # what to do about it

    def describe(self) -> str:
        text = f"column {self.column!r} {self.problem}: {self.rows} row{'s' * (self.rows != 1)}"
        if self.examples:
            text += ", e.g. " + ", ".join(f"row {i}: {v}" for i, v in self.examples)
        return f"{text}; {self.hint}" if self.hint else text

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "problem": self.problem, "rows": self.rows,
                "examples": [list(e) for e in self.examples], "hint": self.hint}


# --- frames to Arrow ----------------------------------------------------------------------


def to_arrow(data: Any) -> pa.Table:
    """A pyarrow Table from an Arrow table or record batch, a pandas or a Polars DataFrame."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    module = type(data).__module__.split(".")[0]
    if module == "polars" and hasattr(data, "to_arrow"):
        return data.to_arrow()
    if module == "pandas" and hasattr(data, "columns"):
        return _from_pandas(data)
    raise InvalidInputError(
        f"expected a pandas DataFrame, a Polars DataFrame or a pyarrow Table, got "
        f"{type(data).__name__}", field="data")


def _from_pandas(frame: Any) -> pa.Table:
    if any(name is not None for name in frame.index.names):
        frame = frame.reset_index()
    names = [str(c) for c in frame.columns]
    if len(set(names)) == len(names):
        try:
            return pa.Table.from_pandas(frame, preserve_index=False)
        except _CAST_ERRORS:
            pass  # one column mixes value types: convert column by column below
    arrays = []
    for i in range(frame.shape[1]):
        series = frame.iloc[:, i]
        try:
            arrays.append(pa.Array.from_pandas(series))
        except _CAST_ERRORS:
            texts = [None if _is_missing(v) else str(v) for v in series.tolist()]
            arrays.append(pa.array(texts, pa.string()))
    return pa.Table.from_arrays(arrays, names=names)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value) or (
        type(value).__name__ in ("NAType", "NaTType"))


# --- validation ---------------------------------------------------------------------------


def validate_batch(data: Any, schema: Mapping[str, str] | None, *, keys: Sequence[str],
                   timestamp: str, naive_timestamps_are_utc: bool) -> pa.Table:
    """Check a batch and return it as Arrow with declared columns in their declared types.

    Key columns must be present and never null; the timestamp column must be present, never
    null and carry a time zone (naive timestamps are taken as UTC only when the source says
    so). Declared columns must be present and convert to their type. The timestamp column
    comes out as ``timestamp[us, UTC]``. Raises DataValidationError listing every problem.
    """
    declared = _check_schema(schema, timestamp)
    table = to_arrow(data)
    names = table.column_names
    problems: list[Problem] = []
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(Problem(name, "appears more than once", table.num_rows))
    if problems:
        raise _error(problems)
    required = [(k, "key column") for k in keys] + [(timestamp, "timestamp column")] + [
        (c, f"declared column ({t})") for c, t in declared.items()]
    reported: set[str] = set()
    for name, role in required:
        if name not in names and name not in reported:
            reported.add(name)
            problems.append(Problem(
                name, "is missing", table.num_rows,
                hint=f"it is the {role}; the batch has {', '.join(names) or 'no columns'}"))
    columns = dict(zip(names, table.columns, strict=True))
    for name in names:
        kind = "timestamp" if name == timestamp else declared.get(name)
        if kind is None:
            continue
        converted, found = _coerce(name, columns[name], kind, naive_timestamps_are_utc)
        problems += found
        columns[name] = converted
    for name in [*dict.fromkeys(keys), timestamp]:
        if name in columns and not any(p.column == name for p in problems):
            nulls = _positions(pc.is_null(columns[name]))
            if nulls.size:
                role = "key" if name in keys else "timestamp"
                problems.append(Problem(name, f"has null values in the {role} column",
                                        int(nulls.size), _examples(columns[name], nulls)))
    if problems:
        raise _error(problems)
    return pa.Table.from_arrays([columns[n] for n in names], names=names)


def _check_schema(schema: Mapping[str, str] | None, timestamp: str) -> dict[str, str]:
    declared = dict(schema or {})
    for column, kind in declared.items():
        if kind not in COLUMN_TYPES:
            raise InvalidInputError(
                f"column {column!r} is declared as {kind!r}; use one of "
                f"{', '.join(COLUMN_TYPES)}", field="schema", column=column)
    if declared.get(timestamp, "timestamp") != "timestamp":
        raise InvalidInputError(
            f"the timestamp column {timestamp!r} is declared as {declared[timestamp]!r}; "
            "it must be a timestamp", field="schema", column=timestamp)
    return declared


def _error(problems: list[Problem]) -> DataValidationError:
    head = "the batch has 1 problem" if len(problems) == 1 else (
        f"the batch has {len(problems)} problems")
    body = "\n".join(f"  - {p.describe()}" for p in problems)
    return DataValidationError(f"{head}; nothing was written:\n{body}",
                               problems=[p.to_dict() for p in problems])


# --- conversion ---------------------------------------------------------------------------


def _coerce(name: str, column: pa.ChunkedArray, kind: str, naive_utc: bool
            ) -> tuple[pa.ChunkedArray, list[Problem]]:
    column = _plain(column)
    if kind == "timestamp":
        return _to_timestamp(name, column, naive_utc)
    source = column.type
    target = COLUMN_TYPES[kind]
    if source == target:
        return column, []
    text = _is_text(source)
    numeric = pa.types.is_integer(source) or pa.types.is_floating(source) or (
        pa.types.is_decimal(source))
    check: Callable[[pa.ChunkedArray], pa.ChunkedArray] | None = None
    safe = True
    if text:
        pattern = _TEXT_PATTERNS.get(kind)
        check = None if pattern is None else _matches(pattern)
    elif kind == "int" and numeric:
        check = _whole_numbers if pa.types.is_floating(source) else None
    elif kind == "float" and numeric:
        safe = False  # large ints become the nearest float
    elif kind == "bool" and pa.types.is_integer(source):
        check = _zero_or_one
    elif not _losslessly_convertible(kind, source, numeric):
        return column, [_incompatible(name, column, kind)]
    return _cast(name, column, target, kind, check, safe)


def _losslessly_convertible(kind: str, source: pa.DataType, numeric: bool) -> bool:
    if kind == "date":
        return bool(pa.types.is_date(source) or pa.types.is_timestamp(source))
    if kind == "string":
        return bool(numeric or pa.types.is_boolean(source) or pa.types.is_temporal(source))
    return False


def _plain(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Dictionary columns decoded, text as plain ``string``."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if _is_text(column.type) and column.type != pa.string():
        column = column.cast(pa.string())
    return column


def _is_text(kind: pa.DataType) -> bool:
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind)
                or pa.types.is_string_view(kind))


def _cast(name: str, column: pa.ChunkedArray, target: pa.DataType, kind: str,
          check: Callable[[pa.ChunkedArray], pa.ChunkedArray] | None, safe: bool
          ) -> tuple[pa.ChunkedArray, list[Problem]]:
    try:
        if check is not None and pc.all(check(column)).as_py() is False:
            raise pa.ArrowInvalid("values that do not convert")
        return column.cast(target, safe=safe), []
    except _CAST_ERRORS:
        bad = _unconvertible(column, target, check, safe)
        if not bad.size:
            return column, [_incompatible(name, column, kind)]
        return column, [Problem(name, f"has values that do not convert to {kind}",
                                int(bad.size), _examples(column, bad))]


def _unconvertible(column: pa.ChunkedArray, target: pa.DataType,
                   check: Callable[[pa.ChunkedArray], pa.ChunkedArray] | None,
                   safe: bool) -> np.ndarray:
    """Positions of the non-null values that do not convert (checks, then bisection)."""
    valid = np.asarray(pc.is_valid(column).to_numpy(zero_copy_only=False), dtype=bool)
    fits = valid.copy()
    if check is not None:
        fits &= np.asarray(pc.fill_null(check(column), False).to_numpy(zero_copy_only=False),
                           dtype=bool)
    rejected = np.flatnonzero(valid & ~fits)
    candidates = np.flatnonzero(fits)
    values = column.take(pa.array(candidates, pa.int64())).combine_chunks()
    failing: list[int] = []
    todo = [(0, len(values))]
    while todo:
        start, stop = todo.pop()
        if start >= stop:
            continue
        try:
            values.slice(start, stop - start).cast(target, safe=safe)
        except _CAST_ERRORS:
            if stop - start == 1:
                failing.append(start)
            else:
                middle = (start + stop) // 2
                todo += [(start, middle), (middle, stop)]
    residual = candidates[np.asarray(failing, dtype=np.int64)]
    return np.sort(np.concatenate([rejected, residual])).astype(np.int64)


def _to_timestamp(name: str, column: pa.ChunkedArray, naive_utc: bool
                  ) -> tuple[pa.ChunkedArray, list[Problem]]:
    source = column.type
    if pa.types.is_timestamp(source) and source.tz is not None:
        return column.cast(UTC_TIMESTAMP, safe=False), []
    if pa.types.is_timestamp(source) or pa.types.is_date(source):
        naive = column.cast(pa.timestamp("us"), safe=False)
        return _localize(name, naive, naive_utc)
    if not _is_text(source):
        return column, [_incompatible(name, column, "timestamp")]
    zoned = pc.fill_null(_matches(_ZONED_TEXT)(column), False)
    plain = pc.fill_null(_matches(_NAIVE_TEXT)(column), False)
    unreadable = _positions(pc.and_(pc.is_valid(column), pc.invert(pc.or_(zoned, plain))))
    problems: list[Problem] = []
    out_zoned, out_plain = None, None
    for mask, target in ((zoned, UTC_TIMESTAMP), (plain, pa.timestamp("us"))):
        subset = pc.if_else(mask, column, pa.scalar(None, pa.string()))
        try:
            converted = subset.cast(target)
        except _CAST_ERRORS:
            bad = _unconvertible(subset, target, None, True)
            unreadable = np.union1d(unreadable, bad)
            converted = None
        if target == UTC_TIMESTAMP:
            out_zoned = converted
        else:
            out_plain = converted
    if unreadable.size:
        problems.append(Problem(name, "has values that do not read as timestamps",
                                int(unreadable.size), _examples(column, unreadable),
                                "write them in ISO 8601, like 2024-05-01T13:45:00Z"))
    if out_zoned is None or out_plain is None:
        return column, problems
    localized, found = _localize(name, out_plain, naive_utc, shown=column)
    if found:
        return column, problems + found
    merged = pc.if_else(zoned, out_zoned, localized)
    if isinstance(merged, pa.Array):
        merged = pa.chunked_array([merged], UTC_TIMESTAMP)
    return merged, problems


def _localize(name: str, naive: pa.ChunkedArray, naive_utc: bool,
              shown: pa.ChunkedArray | None = None) -> tuple[pa.ChunkedArray, list[Problem]]:
    if naive_utc:
        return pc.assume_timezone(naive, "UTC"), []
    rows = _positions(pc.is_valid(naive))
    if not rows.size:
        return naive.cast(UTC_TIMESTAMP), []
    return naive, [Problem(
        name, "has timestamps without a time zone", int(rows.size),
        _examples(naive if shown is None else shown, rows),
        "give them one, or declare that the source's naive timestamps are UTC")]


def _incompatible(name: str, column: pa.ChunkedArray, kind: str) -> Problem:
    rows = _positions(pc.is_valid(column))
    return Problem(name, f"is {column.type}, which does not convert to {kind}",
                   int(rows.size), _examples(column, rows))


# --- vectorised checks --------------------------------------------------------------------


def _matches(pattern: str) -> Callable[[pa.ChunkedArray], pa.ChunkedArray]:
    def check(column: pa.ChunkedArray) -> pa.ChunkedArray:
        return pc.match_substring_regex(column, pattern)
    return check


def _whole_numbers(column: pa.ChunkedArray) -> pa.ChunkedArray:
    finite = pc.is_finite(column)
    whole = pc.equal(pc.floor(column), column)
    in_range = pc.and_(pc.greater_equal(column, -(2.0 ** 63)), pc.less(column, 2.0 ** 63))
    return pc.and_(pc.and_(finite, whole), in_range)


def _zero_or_one(column: pa.ChunkedArray) -> pa.ChunkedArray:
    return pc.is_in(column, pa.array([0, 1], column.type))


def _positions(mask: Any) -> np.ndarray:
    values = pc.fill_null(mask, False).to_numpy(zero_copy_only=False)
    return np.flatnonzero(np.asarray(values, dtype=bool)).astype(np.int64)


def _examples(column: pa.ChunkedArray, rows: np.ndarray) -> tuple[tuple[int, str], ...]:
    shown = rows[:_EXAMPLES]
    values = column.take(pa.array(shown, pa.int64())).to_pylist()
    return tuple((int(i), _show(v)) for i, v in zip(shown, values, strict=True))


def _show(value: Any) -> str:
    text = repr(value.isoformat() if hasattr(value, "isoformat") else value)
    return text if len(text) <= 40 else text[:37] + "..."


# --- schema inference ---------------------------------------------------------------------


def infer_schema(data: Any) -> dict[str, str]:
    """The declared-type view of a frame's columns (those of a type that has one).

    Columns holding lists, structs, binary data or only nulls have no declared type and are
    left out.
    """
    table = to_arrow(data)
    schema: dict[str, str] = {}
    for field in table.schema:
        kind = field.type.value_type if pa.types.is_dictionary(field.type) else field.type
        name = _kind_of(kind)
        if name is not None:
            schema[field.name] = name
    return schema


def _kind_of(kind: pa.DataType) -> str | None:
    if pa.types.is_boolean(kind):
        return "bool"
    if pa.types.is_integer(kind):
        return "int"
    if pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return "float"
    if _is_text(kind):
        return "string"
    if pa.types.is_timestamp(kind):
        return "timestamp"
    if pa.types.is_date(kind):
        return "date"
    return None

