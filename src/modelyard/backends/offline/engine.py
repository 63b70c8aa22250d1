"""The offline engine interface: point-in-time feature values for every row of a spine.

A *spine* is a table of entity keys and a timestamp per row (typically the labelled training
examples). For each spine row and each feature group the engine returns what was known about
that entity at that instant, and nothing from the future:

* **row features** take the values of the group's latest row (same keys) whose ``event_time``
  is at or before the spine timestamp. Rows sharing an ``event_time`` are resolved by the latest
  ``ingested_at``, then by the later position in the table. Null values in the chosen row stay
  null; the engine never reaches back to an older row. With a TTL, a chosen row older than the
  TTL yields nulls.
* **window aggregates** run over the group's rows with
  ``timestamp - window < event_time <= timestamp``.
* with ``as_of``, rows ingested after that instant do not exist.

The output is the spine itself, every column and every row in the spine's order, followed by
the feature columns of each group. Engines receive the plain specs below and know nothing of
feature definitions or of the registry.

A group's rows come either as a :class:`TableInput` (a Delta table, a version cut-off and the
SQL expressions of its columns), which the engine reads and computes where the table lies, so
that no history row passes through the caller, or as an in-memory Arrow table: the one case
where rows pass through the caller's process, used for groups with a Python ``transform`` and
for materialization's small batches.

**Full ties.** Rows of an Arrow table sharing keys, ``event_time`` and ``ingested_at`` are
resolved by the later position in the table. A Delta table's rows have no position an engine
can see everywhere (Spark reads files in any order), and a full tie there means two rows of one
ingestion for one entity and instant; they are resolved by the greater row, comparing the
values of the computed columns (:func:`tie_columns`) in order, nulls lowest. Every engine
applies both rules the same way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, get_args

import pyarrow as pa
import pyarrow.compute as pc

from modelyard.backends.offline.tables import TableRef
from modelyard.errors import InvalidInputError

__all__ = [
    "EVENT_TIME",
    "INGESTED_AT",
    "WINDOW_FUNCTIONS",
    "GroupInput",
    "OfflineEngine",
    "TableInput",
    "WindowFunction",
    "WindowSpec",
    "check_request",
    "epoch_us",
    "micros",
    "output_columns",
    "tie_columns",
    "window_type",
]

EVENT_TIME = "event_time"
INGESTED_AT = "ingested_at"

WindowFunction = Literal["mean", "sum", "count", "min", "max", "std", "last", "count_distinct"]
WINDOW_FUNCTIONS: frozenset[str] = frozenset(get_args(WindowFunction))

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US_PER_UNIT = {"s": 1_000_000, "ms": 1_000, "us": 1}


@dataclass(frozen=True)
class WindowSpec:
    """One time-window aggregation, written to the output column ``name``.

    The window of a spine row at ``ts`` holds the rows with ``ts - window_us < event_time <= ts``.
    Aggregates ignore nulls as SQL does: ``count`` of an empty window is 0 and every other
    function is null there; ``std`` is the sample standard deviation (null below two values);
    ``count_distinct`` counts distinct non-null values; ``last`` is the non-null value of the
    window's latest row (latest ``event_time``, then latest ``ingested_at``). ``column`` is None
    only for ``count``, which then counts rows.
    """

    name: str
    func: WindowFunction
    column: str | None
    window_us: int

    def __post_init__(self) -> None:
        if self.func not in WINDOW_FUNCTIONS:
            raise InvalidInputError(
                f"window {self.name!r}: unknown function {self.func!r}; "
                f"expected one of {', '.join(sorted(WINDOW_FUNCTIONS))}",
                column=self.name,
            )
        if self.column is None and self.func != "count":
            raise InvalidInputError(
                f"window {self.name!r}: {self.func} needs an input column", column=self.name
            )
        if self.window_us <= 0:
            raise InvalidInputError(
                f"window {self.name!r}: the window length must be positive, got "
                f"{self.window_us} microseconds",
                column=self.name,
            )


@dataclass(frozen=True, eq=False)
class TableInput:
    """A group's rows as they lie in a Delta table: the engine reads ``ref`` at ``version``
    (None: the latest) and computes ``columns``, each a (name, SQL expression over the stored
    columns) pair in DuckDB's dialect; ``schema`` holds the Arrow types of those columns (found
    by the caller from the table's schema alone), which the engine's output keeps."""

    ref: TableRef
    version: int | None
    columns: tuple[tuple[str, str], ...]
    schema: pa.Schema

    def __post_init__(self) -> None:
        if [name for name, _ in self.columns] != list(self.schema.names):
            raise InvalidInputError("a table input's schema must name its columns in order")


@dataclass(frozen=True, eq=False)
class GroupInput:
    """One feature group's history and what to compute from it.

    ``table`` (an Arrow table, or a :class:`TableInput` the engine reads itself) holds the key
    columns, ``event_time`` and ``ingested_at`` (timezone-aware timestamps) and the feature
    columns. ``row_features`` are taken as point-in-time values;
    ``windows`` are aggregated. Output columns are named after the row features and the windows,
    and must be unique across the spine and every group.
    """

    name: str
    keys: tuple[str, ...]
    table: pa.Table | TableInput
    row_features: tuple[str, ...] = ()
    windows: tuple[WindowSpec, ...] = ()
    ttl_us: int | None = None

    def __post_init__(self) -> None:
        if not self.keys:
            raise InvalidInputError(f"feature group {self.name!r} has no key columns")
        if self.ttl_us is not None and self.ttl_us < 0:
            raise InvalidInputError(
                f"feature group {self.name!r}: the TTL must not be negative, got {self.ttl_us}"
            )

    def output_names(self) -> list[str]:
        return [*self.row_features, *(w.name for w in self.windows)]

    @property
    def schema(self) -> pa.Schema:
        """The names and Arrow types of the group's columns."""
        return self.table.schema

    def output_types(self) -> dict[str, pa.DataType]:
        """The Arrow type of every output column, as every engine returns it."""
        schema = self.schema
        types = {name: schema.field(name).type for name in self.row_features}
        for spec in self.windows:
            column = None if spec.column is None else schema.field(spec.column).type
            types[spec.name] = window_type(spec, column)
        return types


class OfflineEngine(ABC):
    """Computes training-set features as of each spine row."""

    @abstractmethod
    def point_in_time(
        self,
        spine: pa.Table,
        timestamp: str,
        groups: Sequence[GroupInput],
        as_of: datetime | None = None,
    ) -> pa.Table:
        """The spine's columns in the spine's row order, then each group's feature columns.

        ``timestamp`` names the spine's timezone-aware timestamp column. With ``as_of``, rows
        ingested after that instant are invisible, which replays what was known then.
        """


# --- shared checks -----------------------------------------------------------------------

_KeyFamily = Literal["integer", "string", "binary", "float", "bool", "temporal", "other"]


def _key_family(dtype: pa.DataType) -> _KeyFamily:
    if pa.types.is_dictionary(dtype):
        return _key_family(dtype.value_type)
    if pa.types.is_integer(dtype):
        return "integer"
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or _is_string_view(dtype):
        return "string"
    if pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype):
        return "binary"
    if pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return "float"
    if pa.types.is_boolean(dtype):
        return "bool"
    if pa.types.is_temporal(dtype):
        return "temporal"
    return "other"


def _is_string_view(dtype: pa.DataType) -> bool:
    check = getattr(pa.types, "is_string_view", None)
    return bool(check(dtype)) if check is not None else False


def _check_aware_timestamp(table: pa.Table, column: str, where: str) -> None:
    if column not in table.column_names:
        raise InvalidInputError(f"{where} has no timestamp column {column!r}", column=column)
    dtype = table.schema.field(column).type
    if not pa.types.is_timestamp(dtype):
        raise InvalidInputError(
            f"{where} column {column!r} must be a timezone-aware timestamp, got {dtype}",
            column=column,
        )
    if dtype.tz is None:
        raise InvalidInputError(
            f"{where} column {column!r} is a naive timestamp; give it a timezone "
            "(UTC or any other)",
            column=column,
        )


def _check_group(spine: pa.Table, group: GroupInput) -> None:
    where = f"feature group {group.name!r}"
    table = group.schema.empty_table()
    for key in group.keys:
        if key not in spine.column_names:
            raise InvalidInputError(f"the spine has no key column {key!r} of {where}", column=key)
        if key not in table.column_names:
            raise InvalidInputError(f"{where} has no key column {key!r}", column=key)
        left, right = spine.schema.field(key).type, table.schema.field(key).type
        if _key_family(left) != _key_family(right) or _key_family(left) == "other":
            raise InvalidInputError(
                f"key column {key!r} is {left} in the spine but {right} in {where}",
                column=key,
            )
    _check_aware_timestamp(table, EVENT_TIME, where)
    _check_aware_timestamp(table, INGESTED_AT, where)
    inputs = [*group.row_features, *(w.column for w in group.windows if w.column is not None)]
    for column in inputs:
        if column not in table.column_names:
            raise InvalidInputError(f"{where} has no feature column {column!r}", column=column)


def output_columns(spine: pa.Table, groups: Sequence[GroupInput]) -> list[str]:
    """The feature columns the engine appends, checked to be unique and new to the spine."""
    seen = set(spine.column_names)
    names: list[str] = []
    for group in groups:
        for name in group.output_names():
            if name in seen:
                raise InvalidInputError(
                    f"output column {name!r} of feature group {group.name!r} is already taken "
                    "by the spine or another feature",
                    column=name,
                )
            seen.add(name)
            names.append(name)
    return names


def check_request(spine: pa.Table, timestamp: str, groups: Sequence[GroupInput]) -> None:
    """Raise InvalidInputError, naming the column, for a request no engine can answer."""
    _check_aware_timestamp(spine, timestamp, "the spine")
    for group in groups:
        _check_group(spine, group)
    output_columns(spine, groups)


def epoch_us(moment: datetime) -> int:
    """Microseconds since the Unix epoch of a timezone-aware datetime."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidInputError(f"as_of must be timezone-aware, got naive {moment.isoformat()}")
    return (moment - _EPOCH) // timedelta(microseconds=1)


def micros(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Integer microseconds since the epoch of a timestamp column; nanoseconds are floored,
    which keeps every ``event_time <= ts`` and ``ts - window < event_time`` comparison exact."""
    unit = column.type.unit
    raw = column.cast(pa.int64())
    if unit == "ns":
        quotient = pc.divide(raw, 1_000)
        below = pc.less(pc.subtract(raw, pc.multiply(quotient, 1_000)), 0)
        return pc.if_else(below, pc.subtract(quotient, 1), quotient)
    factor = _US_PER_UNIT[unit]
    return raw if factor == 1 else pc.multiply_checked(raw, factor)


def window_type(spec: WindowSpec, column: pa.DataType | None) -> pa.DataType:
    """The Arrow type of a window's values: counts are 64-bit integers, means and standard
    deviations doubles, sums of integers 64-bit integers (of decimals 38-digit decimals, of
    anything else doubles); ``min``, ``max`` and ``last`` keep the column's type."""
    if spec.func in ("count", "count_distinct"):
        return pa.int64()
    assert column is not None
    if spec.func in ("mean", "std"):
        return pa.float64()
    if spec.func == "sum":
        if pa.types.is_integer(column):
            return pa.int64()
        if pa.types.is_decimal(column):
            return pa.decimal128(38, column.scale)
        return pa.float64()
    return column


def tie_columns(group: GroupInput) -> list[str]:
    """The columns, in order, whose values resolve a full tie between rows of a Delta table
    (see the module docstring): every computed column but the keys and the times whose type
    both SQL engines order the same way (numbers, strings, booleans, dates and times)."""
    skip = {*group.keys, EVENT_TIME, INGESTED_AT}
    return [f.name for f in group.schema if f.name not in skip and _orderable(f.type)]


def _orderable(dtype: pa.DataType) -> bool:
    return bool(
        pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype)
        or pa.types.is_boolean(dtype) or pa.types.is_temporal(dtype)
        or _key_family(dtype) in ("string", "binary")
    )
