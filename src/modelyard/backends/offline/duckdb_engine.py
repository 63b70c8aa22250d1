"""The embedded offline engine: point-in-time joins in DuckDB over Arrow tables.

Every call opens its own in-memory DuckDB connection, registers the Arrow inputs (DuckDB scans
them in place) and runs, per feature group, at most two queries whose results come back in
the spine's row order and are appended to the untouched spine as columns:

* **row features**: rows tied on ``(keys, event_time)`` are reduced to the latest ingested one
  (a narrow window over keys and times finds the losers, which an anti join drops), then an
  ``ASOF LEFT JOIN`` picks, for each spine row, the latest remaining row at or before its time.
* **windows**: the spine rows and the group's rows form one stream partitioned by key and
  ordered by time; each aggregate runs over a ``RANGE`` frame ending at the current time, so a
  spine row sees exactly the rows in ``(ts - window, ts]``. Windows of equal length share one
  frame; all share one sort.

Times are handled as integer microseconds since the epoch, so every comparison is exact and
independent of time zones.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from modelyard.backends.offline.engine import (
    EVENT_TIME,
    INGESTED_AT,
    GroupInput,
    OfflineEngine,
    WindowSpec,
    check_request,
    epoch_us,
)

__all__ = ["DuckDBEngine"]

_ROW = "__modelyard_row"
_TS = "__modelyard_ts"
_ET = "__modelyard_event_time"
_ING = "__modelyard_ingested_at"
_IDX = "__modelyard_index"
_SPINE = "__modelyard_spine"

_US_PER_UNIT = {"s": 1_000_000, "ms": 1_000, "us": 1}


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _micros(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Integer microseconds since the epoch; nanoseconds are floored, which keeps every
    ``event_time <= ts`` and ``ts - window < event_time`` comparison exact."""
    unit = column.type.unit
    raw = column.cast(pa.int64())
    if unit == "ns":
        quotient = pc.divide(raw, 1_000)
        below = pc.less(pc.subtract(raw, pc.multiply(quotient, 1_000)), 0)
        return pc.if_else(below, pc.subtract(quotient, 1), quotient)
    factor = _US_PER_UNIT[unit]
    return raw if factor == 1 else pc.multiply_checked(raw, factor)


def _index(length: int) -> pa.Array:
    return pa.array(np.arange(length, dtype=np.int64))


def _unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))


class DuckDBEngine(OfflineEngine):
    """Point-in-time joins with DuckDB.

    ``threads`` caps DuckDB's worker threads (default: one per core); ``memory_limit`` (for
    example ``"4GB"``) caps its memory, beyond which it spills to ``temp_directory``.
    """

    def __init__(
        self,
        threads: int | None = None,
        memory_limit: str | None = None,
        temp_directory: str | None = None,
    ) -> None:
        self.threads = threads
        self.memory_limit = memory_limit
        self.temp_directory = temp_directory

    def _connect(self) -> duckdb.DuckDBPyConnection:
        config: dict[str, Any] = {"preserve_insertion_order": False}
        if self.threads is not None:
            config["threads"] = self.threads
        if self.memory_limit is not None:
            config["memory_limit"] = self.memory_limit
        if self.temp_directory is not None:
            config["temp_directory"] = self.temp_directory
        return duckdb.connect(":memory:", config=config)

    def point_in_time(
        self,
        spine: pa.Table,
        timestamp: str,
        groups: Sequence[GroupInput],
        as_of: datetime | None = None,
    ) -> pa.Table:
        check_request(spine, timestamp, groups)
        as_of_us = epoch_us(as_of) if as_of is not None else None
        keys = _unique(key for group in groups for key in group.keys)
        frame = pa.table(
            [*(spine.column(key) for key in keys), _micros(spine.column(timestamp)),
             _index(spine.num_rows)],
            names=[*keys, _TS, _ROW],
        )
        out = spine
        con = self._connect()
        try:
            con.register(_SPINE, frame)
            for number, group in enumerate(groups):
                for name, column in _group_features(con, number, group, as_of_us, len(frame)):
                    out = out.append_column(name, column)
        finally:
            con.close()
        return out


def _history(group: GroupInput) -> pa.Table:
    """The group's table as the queries read it: keys, integer times, a row index, inputs."""
    table = group.table
    inputs = _unique([
        *group.row_features, *(w.column for w in group.windows if w.column is not None)
    ])
    return pa.table(
        [
            *(table.column(key) for key in group.keys),
            _micros(table.column(EVENT_TIME)),
            _micros(table.column(INGESTED_AT)),
            _index(table.num_rows),
            *(table.column(name) for name in inputs),
        ],
        names=[*group.keys, _ET, _ING, _IDX, *inputs],
    )


def _group_features(
    con: duckdb.DuckDBPyConnection, number: int, group: GroupInput, as_of_us: int | None,
    rows: int,
) -> list[tuple[str, pa.ChunkedArray]]:
    view = f"__modelyard_group_{number}"
    con.register(view, _history(group))
    visible = _visible(group, as_of_us)
    types = {field.name: field.type for field in group.table.schema}
    found: list[tuple[str, pa.ChunkedArray]] = []
    queries: list[tuple[str, dict[str, pa.DataType]]] = []
    if group.row_features:
        queries.append((
            _row_feature_sql(view, group, visible),
            {name: types[name] for name in group.row_features},
        ))
    if group.windows:
        queries.append((
            _window_sql(view, group, visible),
            {w.name: types[w.column] for w in group.windows
             if w.column is not None and w.func in ("min", "max", "last")},
        ))
    for sql, restore in queries:
        result = con.sql(sql).to_arrow_table()
        if result.num_rows != rows:
            raise RuntimeError(
                f"feature group {group.name!r}: {result.num_rows} result rows for {rows} "
                "spine rows"
            )
        for name in result.column_names:
            column = result.column(name)
            if name in restore and column.type != restore[name]:
                column = column.cast(restore[name])
            found.append((name, column))
    con.unregister(view)
    return found


def _visible(group: GroupInput, as_of_us: int | None) -> str:
    """The rows of a group that exist for the query: keyed, timed, ingested by ``as_of``."""
    conditions = [f"{_q(key)} IS NOT NULL" for key in group.keys]
    conditions.append(f"{_q(_ET)} IS NOT NULL")
    if as_of_us is not None:
        conditions.append(f"{_q(_ING)} <= {as_of_us}")
    return " AND ".join(conditions)


def _row_feature_sql(view: str, group: GroupInput, visible: str) -> str:
    keys = [_q(key) for key in group.keys]
    et, ing, idx = _q(_ET), _q(_ING), _q(_IDX)
    losers = (
        f"SELECT {idx} FROM {view} WHERE {visible} QUALIFY row_number() OVER ("
        f"PARTITION BY {', '.join(keys)}, {et} "
        f"ORDER BY {ing} DESC NULLS LAST, {idx} DESC) > 1"
    )
    latest = f"SELECT * FROM {view} ANTI JOIN ({losers}) USING ({idx}) WHERE {visible}"
    on = " AND ".join([*(f"s.{k} = h.{k}" for k in keys), f"s.{_q(_TS)} >= h.{et}"])
    selected = []
    for name in group.row_features:
        value = f"h.{_q(name)}"
        if group.ttl_us is not None:
            value = f"CASE WHEN s.{_q(_TS)} - h.{et} <= {group.ttl_us} THEN {value} END"
        selected.append(f"{value} AS {_q(name)}")
    return (
        f"SELECT {', '.join(selected)} FROM {_SPINE} s ASOF LEFT JOIN ({latest}) h ON {on} "
        f"ORDER BY s.{_q(_ROW)}"
    )


def _aggregate(spec: WindowSpec, frame: str, integer_input: bool) -> str:
    column = _q(spec.column) if spec.column is not None else _q(_IDX)
    if spec.func == "sum" and integer_input:
        return f"CAST(sum({column}) OVER {frame} AS BIGINT)"
    calls = {
        "mean": f"avg({column})",
        "sum": f"sum({column})",
        "std": f"stddev_samp({column})",
        "count_distinct": f"count(DISTINCT {column})",
        "last": f"arg_max({column}, struct_pack({_q(_TS)}, {_q(_IDX)}))",
    }
    return f"{calls.get(spec.func, f'{spec.func}({column})')} OVER {frame}"


def _window_sql(view: str, group: GroupInput, visible: str) -> str:
    keys = ", ".join(_q(key) for key in group.keys)
    inputs = _unique(w.column for w in group.windows if w.column is not None)
    stream = (
        f"SELECT {keys}, {_q(_TS)}, {_q(_ROW)} FROM {_SPINE} UNION ALL BY NAME "
        f"SELECT {keys}, {_q(_ET)} AS {_q(_TS)}, {_q(_ING)}, {_q(_IDX)}"
        f"{''.join(', ' + _q(c) for c in inputs)} FROM {view} WHERE {visible}"
    )
    schema = group.table.schema
    frames: dict[int, str] = {}
    selected = []
    for spec in group.windows:
        frame = frames.setdefault(spec.window_us, f"w{len(frames)}")
        integer = spec.column is not None and pa.types.is_integer(schema.field(spec.column).type)
        selected.append(f"{_aggregate(spec, frame, integer)} AS {_q(spec.name)}")
    definitions = ", ".join(
        f"{frame} AS (PARTITION BY {keys} ORDER BY {_q(_TS)} "
        f"RANGE BETWEEN {length - 1} PRECEDING AND CURRENT ROW)"
        for length, frame in frames.items()
    )
    names = ", ".join(_q(spec.name) for spec in group.windows)
    return (
        f"SELECT {names} FROM (SELECT {_q(_ROW)}, {', '.join(selected)} FROM ({stream}) "
        f"WINDOW {definitions}) WHERE {_q(_ROW)} IS NOT NULL ORDER BY {_q(_ROW)}"
    )
