"""The embedded offline engine: point-in-time joins in DuckDB over Arrow tables.

Every call opens its own in-memory DuckDB connection and registers the Arrow inputs, which
DuckDB scans in place. The spine goes in as its keys, its time and a row number; the result is
the untouched spine with each feature column appended in the spine's row order.

* **Row features.** An ``ASOF JOIN`` over keys and event times finds, for each spine row, the
  latest event time at or before it; the history rows at exactly that time then compete on
  ingestion time and table position (a hash join and a small aggregate). Only keys, times and
  row numbers pass through DuckDB: the chosen rows' values are gathered from the Arrow table by
  position, so wide feature rows are never sorted and every type comes back as it went in.
* **``last`` windows** are the same search restricted to rows where the column is not null,
  kept when the row is younger than the window.
* **Other windows** are either a range join (each spine row joined to its key's rows in
  ``(ts - window, ts]``, aggregated per spine row with one ``FILTER`` per window) or a stream
  (spine and history rows in one sort per key, aggregates over ``RANGE`` frames). The join
  touches every (spine row, history row) pair of a key and is the faster of the two until that
  count grows well past the two tables' sizes, where the stream's one sort wins; ``auto``
  counts the pairs first and picks.

Times are integer microseconds since the epoch, so every comparison is exact and independent
of time zones.

A group given as a :class:`TableInput` is read here, in this process: its Delta table at the
version given, the columns computed by DuckDB over the table's files (rows ingested after
``as_of`` skipped as they are scanned), sorted so that table position breaks full ties by the
row's values as every engine does; the steps above then run on that table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import duckdb
import numpy as np
import pyarrow as pa

from modelyard.backends.offline.engine import (
    EVENT_TIME,
    INGESTED_AT,
    GroupInput,
    OfflineEngine,
    TableInput,
    WindowSpec,
    check_request,
    epoch_us,
    micros,
    tie_columns,
)
from modelyard.errors import InvalidDefinitionError, StorageError

__all__ = ["DuckDBEngine", "WindowStrategy"]

WindowStrategy = Literal["auto", "join", "stream"]

_ROW = "__modelyard_row"
_TS = "__modelyard_ts"
_ET = "__modelyard_event_time"
_ING = "__modelyard_ingested_at"
_IDX = "__modelyard_index"
_SPINE = "__modelyard_spine"
_LOWEST = -(2**63) + 1  # ranks a missing ingestion time below every real one
# ``auto`` joins while the key-equal (spine row, history row) pairs stay under this many
# times the rows of both tables; past it the stream's single sort is faster (measured).
_JOIN_PAIRS_PER_ROW = 32


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _keys(keys: Iterable[str], alias: str = "") -> str:
    return ", ".join(f"{alias}{_q(key)}" for key in keys)


def _index(length: int) -> pa.Array:
    return pa.array(np.arange(length, dtype=np.int64))


def _positions(targets: np.ndarray, sources: np.ndarray, length: int) -> pa.Array:
    """Take-indices of length ``length``: ``sources[i]`` at ``targets[i]``, null elsewhere."""
    picks = np.full(length, -1, dtype=np.int64)
    picks[targets] = sources
    return pa.array(picks, mask=picks < 0)


class DuckDBEngine(OfflineEngine):
    """Point-in-time joins with DuckDB.

    ``threads`` caps DuckDB's worker threads (default: one per core); ``memory_limit`` (for
    example ``"4GB"``) caps its memory, beyond which it spills to ``temp_directory``.
    ``windows`` chooses how window aggregates are computed (see the module docstring); every
    choice gives the same values.
    """

    def __init__(
        self,
        threads: int | None = None,
        memory_limit: str | None = None,
        temp_directory: str | None = None,
        windows: WindowStrategy = "auto",
    ) -> None:
        self.threads = threads
        self.memory_limit = memory_limit
        self.temp_directory = temp_directory
        self.windows = windows

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
        keys = list(dict.fromkeys(key for group in groups for key in group.keys))
        times = micros(spine.column(timestamp))
        frame = pa.table(
            [*(spine.column(key) for key in keys), times, _index(spine.num_rows)],
            names=[*keys, _TS, _ROW],
        )
        out = spine
        con = self._connect()
        try:
            con.register(_SPINE, frame)
            call = _Call(con, spine.num_rows, times.fill_null(0).to_numpy(), as_of_us,
                         self.windows)
            for number, group in enumerate(groups):
                for name, column in call.features(number, group):
                    out = out.append_column(name, column)
        finally:
            con.close()
        return out


@dataclass
class _Call:
    con: duckdb.DuckDBPyConnection
    rows: int
    ts: np.ndarray  # the spine's times, microseconds (0 where null: such rows never match)
    as_of_us: int | None
    strategy: WindowStrategy

    def features(self, number: int, group: GroupInput) -> list[tuple[str, pa.ChunkedArray]]:
        view = f"__modelyard_group_{number}"
        group = self._resolved(group, view)
        self.con.register(view, _history(group))
        try:
            visible = _visible(group, self.as_of_us)
            found = self._row_features(view, group, visible)
            found.update(self._last_windows(view, group, visible))
            found.update(self._aggregates(view, group, visible))
        finally:
            self.con.unregister(view)
        return [(name, found[name]) for name in group.output_names()]

    def _resolved(self, group: GroupInput, view: str) -> GroupInput:
        """The group with its rows in memory: a table input read and computed here."""
        source = group.table
        if not isinstance(source, TableInput):
            return group
        raw = f"{view}_raw"
        self.con.register(raw, _dataset(group.name, source))
        try:
            table = self.con.sql(_read_sql(group, source, raw, self.as_of_us)).to_arrow_table()
        except duckdb.Error as exc:
            raise InvalidDefinitionError(
                f"feature group {group.name!r}: cannot compute its columns from "
                f"{_where(source)}: {str(exc).strip().splitlines()[0]}", field="expr",
            ) from exc
        finally:
            self.con.unregister(raw)
        if table.schema != source.schema:
            table = table.cast(source.schema)
        return GroupInput(group.name, group.keys, table, group.row_features, group.windows,
                          group.ttl_us)

    def _latest(self, view: str, group: GroupInput, visible: str) -> tuple[np.ndarray, ...]:
        """(spine row, history row, its event time) for every spine row with a match."""
        result = self.con.sql(_latest_sql(view, group.keys, visible)).to_arrow_table()
        return tuple(result.column(i).to_numpy() for i in range(3))

    def _row_features(self, view: str, group: GroupInput,
                      visible: str) -> dict[str, pa.ChunkedArray]:
        if not group.row_features:
            return {}
        rows, picks, event = self._latest(view, group, visible)
        if group.ttl_us is not None:
            fresh = self.ts[rows] - event <= group.ttl_us
            rows, picks = rows[fresh], picks[fresh]
        chosen = _rows(group).select(list(group.row_features))
        taken = chosen.take(_positions(rows, picks, self.rows))
        return {name: taken.column(name) for name in group.row_features}

    def _last_windows(self, view: str, group: GroupInput,
                      visible: str) -> dict[str, pa.ChunkedArray]:
        found: dict[str, pa.ChunkedArray] = {}
        lasts = [w for w in group.windows if w.func == "last" and w.column is not None]
        for column in dict.fromkeys(w.column for w in lasts if w.column is not None):
            present = f"{visible} AND {_q(column)} IS NOT NULL"
            rows, picks, event = self._latest(view, group, present)
            age = self.ts[rows] - event
            for spec in (w for w in lasts if w.column == column):
                inside = age < spec.window_us
                positions = _positions(rows[inside], picks[inside], self.rows)
                found[spec.name] = _rows(group).column(column).take(positions)
        return found

    def _aggregates(self, view: str, group: GroupInput,
                    visible: str) -> dict[str, pa.ChunkedArray]:
        specs = [w for w in group.windows if w.func != "last"]
        if not specs:
            return {}
        if self._joins(view, group, visible):
            sql = _window_join_sql(view, group, specs, visible)
        else:
            sql = _window_stream_sql(view, group, specs, visible)
        result = self.con.sql(sql).to_arrow_table()
        rows = result.column(_ROW).to_numpy()
        positions = _positions(rows, np.arange(len(rows), dtype=np.int64), self.rows)
        schema = group.table.schema
        found = {}
        for spec in specs:
            column = result.column(spec.name).take(positions)
            if spec.func in ("count", "count_distinct"):
                column = column.fill_null(0)
            elif spec.func in ("min", "max") and spec.column is not None:
                column = column.cast(schema.field(spec.column).type)
            found[spec.name] = column
        return found

    def _joins(self, view: str, group: GroupInput, visible: str) -> bool:
        if self.strategy != "auto":
            return self.strategy == "join"
        keys = _keys(group.keys)
        on = " AND ".join(f"h.{_q(k)} = s.{_q(k)}" for k in group.keys)
        history = f"SELECT {keys}, count(*) AS n FROM {view} WHERE {visible} GROUP BY ALL"
        spine = f"SELECT {keys}, count(*) AS n FROM {_SPINE} GROUP BY ALL"
        pairs, history_rows = self.con.sql(
            f"SELECT coalesce(sum(h.n * s.n), 0), coalesce(sum(h.n), 0) "
            f"FROM ({history}) h LEFT JOIN ({spine}) s ON {on}"
        ).fetchall()[0]
        return int(pairs) <= _JOIN_PAIRS_PER_ROW * (self.rows + int(history_rows))


def _where(source: TableInput) -> str:
    at = "latest version" if source.version is None else f"version {source.version}"
    return f"the Delta table at {source.ref.uri} ({at})"


def _dataset(name: str, source: TableInput) -> Any:
    """The table's files at the version asked for, as a pyarrow dataset DuckDB scans."""
    from deltalake import DeltaTable
    from deltalake.exceptions import DeltaError

    try:
        table = DeltaTable(source.ref.uri, version=source.version,
                           storage_options=source.ref.options())
        return table.to_pyarrow_dataset()
    except (DeltaError, OSError) as exc:
        raise StorageError(f"feature group {name!r}: cannot read {_where(source)}: "
                           f"{str(exc).strip().splitlines()[0]}") from exc


def _read_sql(group: GroupInput, source: TableInput, raw: str, as_of_us: int | None) -> str:
    body = ", ".join(f"({expr}) AS {_q(name)}" for name, expr in source.columns)
    sql = f"SELECT * FROM (SELECT {body} FROM {raw})"
    if as_of_us is not None:
        sql += f" WHERE epoch_us({_q(INGESTED_AT)}) <= {as_of_us}"
    order = [*group.keys, EVENT_TIME, INGESTED_AT, *tie_columns(group)]
    return sql + " ORDER BY " + ", ".join(f"{_q(c)} ASC NULLS FIRST" for c in order)


def _rows(group: GroupInput) -> pa.Table:
    """The rows of a group already read (see ``_Call._resolved``)."""
    assert isinstance(group.table, pa.Table)
    return group.table


def _history(group: GroupInput) -> pa.Table:
    """The group's table as the queries read it: keys, integer times, a row index, inputs."""
    table = _rows(group)
    inputs = list(dict.fromkeys(
        w.column for w in group.windows if w.column is not None and w.column not in group.keys
    ))
    return pa.table(
        [
            *(table.column(key) for key in group.keys),
            micros(table.column(EVENT_TIME)),
            micros(table.column(INGESTED_AT)),
            _index(table.num_rows),
            *(table.column(name) for name in inputs),
        ],
        names=[*group.keys, _ET, _ING, _IDX, *inputs],
    )


def _visible(group: GroupInput, as_of_us: int | None) -> str:
    """The rows of a group that exist for the query: keyed, timed, ingested by ``as_of``."""
    conditions = [f"{_q(key)} IS NOT NULL" for key in group.keys]
    conditions.append(f"{_q(_ET)} IS NOT NULL")
    if as_of_us is not None:
        conditions.append(f"{_q(_ING)} <= {as_of_us}")
    return " AND ".join(conditions)


def _latest_sql(view: str, keys: Sequence[str], visible: str) -> str:
    """The ASOF join finds each spine row's latest event time; the rows at exactly that time
    compete on ingestion time, then on table position."""
    et, ing, idx, ts, row = _q(_ET), _q(_ING), _q(_IDX), _q(_TS), _q(_ROW)
    on = " AND ".join([*(f"s.{_q(k)} = h.{_q(k)}" for k in keys), f"s.{ts} >= h.{et}"])
    matched = (
        f"SELECT s.{row}, {_keys(keys, 's.')}, h.{et} FROM {_SPINE} s "
        f"ASOF JOIN (SELECT {_keys(keys)}, {et} FROM {view} WHERE {visible}) h ON {on}"
    )
    candidates = (
        f"SELECT {_keys(keys)}, {et}, coalesce({ing}, {_LOWEST}) AS {ing}, {idx} "
        f"FROM {view} WHERE {visible}"
    )
    same = " AND ".join([*(f"m.{_q(k)} = h.{_q(k)}" for k in keys), f"m.{et} = h.{et}"])
    return (
        f"SELECT m.{row}, struct_extract(max(struct_pack(o := h.{ing}, i := h.{idx})), 'i'), "
        f"any_value(m.{et}) FROM ({matched}) m JOIN ({candidates}) h ON {same} "
        f"GROUP BY m.{row}"
    )


def _aggregate(spec: WindowSpec, column: str) -> str:
    """The aggregate call of one window over ``column`` (the event marker for ``count(*)``)."""
    calls = {
        "mean": f"avg({column})",
        "std": f"stddev_samp({column})",
        "count_distinct": f"count(DISTINCT {column})",
    }
    return calls.get(spec.func, f"{spec.func}({column})")  # sum, count, min, max


def _typed(spec: WindowSpec, group: GroupInput, call: str) -> str:
    """Sums of integers stay 64-bit integers (DuckDB would widen them to 128 bits)."""
    column = spec.column
    if (spec.func == "sum" and column is not None
            and pa.types.is_integer(group.table.schema.field(column).type)):
        return f"CAST({call} AS BIGINT)"
    return call


def _window_join_sql(view: str, group: GroupInput, specs: Sequence[WindowSpec],
                     visible: str) -> str:
    et, ts, row = _q(_ET), _q(_TS), _q(_ROW)
    longest = max(spec.window_us for spec in specs)
    on = " AND ".join([
        *(f"s.{_q(k)} = h.{_q(k)}" for k in group.keys),
        f"h.{et} <= s.{ts}", f"h.{et} > s.{ts} - {longest}",
    ])
    selected = []
    for spec in specs:
        column = f"h.{_q(spec.column if spec.column is not None else _IDX)}"
        call = f"{_aggregate(spec, column)} FILTER (WHERE h.{et} > s.{ts} - {spec.window_us})"
        selected.append(f"{_typed(spec, group, call)} AS {_q(spec.name)}")
    return (
        f"SELECT s.{row}, {', '.join(selected)} FROM {_SPINE} s "
        f"JOIN (SELECT * FROM {view} WHERE {visible}) h ON {on} GROUP BY s.{row}"
    )


def _window_stream_sql(view: str, group: GroupInput, specs: Sequence[WindowSpec],
                       visible: str) -> str:
    """Spine rows carry only keys, time and row number; inputs are renamed so that they are
    null on spine rows, even where a window aggregates a key column."""
    keys = _keys(group.keys)
    inputs = {
        column: _q(f"__modelyard_input_{i}")
        for i, column in enumerate(dict.fromkeys(w.column for w in specs if w.column is not None))
    }
    stream = (
        f"SELECT {keys}, {_q(_TS)}, {_q(_ROW)} FROM {_SPINE} UNION ALL BY NAME "
        f"SELECT {keys}, {_q(_ET)} AS {_q(_TS)}, {_q(_IDX)}"
        f"{''.join(f', {_q(c)} AS {alias}' for c, alias in inputs.items())} "
        f"FROM {view} WHERE {visible}"
    )
    frames: dict[int, str] = {}
    selected = []
    for spec in specs:
        frame = frames.setdefault(spec.window_us, f"w{len(frames)}")
        column = inputs[spec.column] if spec.column is not None else _q(_IDX)
        call = f"{_aggregate(spec, column)} OVER {frame}"
        selected.append(f"{_typed(spec, group, call)} AS {_q(spec.name)}")
    definitions = ", ".join(
        f"{frame} AS (PARTITION BY {keys} ORDER BY {_q(_TS)} "
        f"RANGE BETWEEN {length - 1} PRECEDING AND CURRENT ROW)"
        for length, frame in frames.items()
    )
    return (
        f"SELECT * FROM (SELECT {_q(_ROW)}, {', '.join(selected)} FROM ({stream}) "
        f"WINDOW {definitions}) WHERE {_q(_ROW)} IS NOT NULL"
    )
