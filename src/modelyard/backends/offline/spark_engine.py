"""The Spark offline engine: point-in-time joins on a Spark Connect server, where the tables lie.

The engine speaks Spark Connect (``pyspark-client``, imported on first use) to a server given
as ``sc://host:15002``: Apache Spark 3.5+ or 4 with Delta Lake, or Sail. A group given as a
:class:`TableInput` is read by the server (``spark.read.format("delta")`` at the version
asked for, its storage options as reader options) and its columns computed there, their SQL
translated from DuckDB's dialect to Spark's; no history row reaches this process. What does:
the spine (sent once, as Arrow, with its keys, times and row numbers) and, back, one row of
feature values per spine row. A group given as an Arrow table (a Python ``transform``) is sent
to the server as it is.

* **Row features and ``last`` windows.** The group's rows, one per (keys, event time) after
  the tie rules, and the spine's rows are put in one sequence per key, ordered by time with
  history before spine at equal times; each spine row takes the last history row before it
  (``last(..., ignorenulls)`` over a running frame): one sort, no range join.
* **Other windows** join each spine row to its key's rows in ``(ts - longest window, ts]``
  and aggregate per spine row, one conditional aggregate per window.

Times are integer microseconds since the epoch (``unix_micros``), as in the DuckDB engine, so
both return the same values; each column then takes the Arrow type the DuckDB engine gives it.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

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
from modelyard.errors import ConfigurationError, InvalidDefinitionError, StorageError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

__all__ = ["SparkEngine", "to_spark_sql"]

_ROW = "__row"
_TS = "__ts"
_ET = "__et"
_ING = "__ing"
_IDX = "__idx"
_T = "__t"
_KIND = "__kind"
_PICK = "__pick"
_LOWEST = -(2**63) + 1  # ranks a missing ingestion time below every real one


def to_spark_sql(expression: str) -> str:
    """A feature's SQL expression, written in DuckDB's dialect, in Spark SQL."""
    import sqlglot
    from sqlglot.errors import SqlglotError

    try:
        return str(sqlglot.transpile(expression, read="duckdb", write="spark")[0])
    except SqlglotError as exc:
        raise InvalidDefinitionError(
            f"the SQL expression {expression!r} cannot be translated to Spark SQL: {exc}",
            field="expr", value=expression) from exc


@contextmanager
def _quiet() -> Iterator[None]:
    """pyspark warns, on import and on Arrow conversions, that it does not test pandas 3; the
    engine never converts through pandas."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas",
                                category=FutureWarning)
        yield


def _key(i: int) -> str:
    return f"__k{i}"


def _col(i: int) -> str:
    return f"__c{i}"


def _positions(rows: np.ndarray, length: int) -> pa.Array:
    """Take-indices of length ``length``: ``i`` at ``rows[i]``, null elsewhere."""
    picks = np.full(length, -1, dtype=np.int64)
    picks[rows] = np.arange(len(rows), dtype=np.int64)
    return pa.array(picks, mask=picks < 0)


class SparkEngine(OfflineEngine):
    """Point-in-time joins on the Spark Connect server at ``remote`` (``sc://host:port``)."""

    def __init__(self, remote: str) -> None:
        if not remote.startswith("sc://"):
            raise ConfigurationError(
                f"a Spark Connect address starts with sc:// (sc://host:15002), got {remote!r}")
        self.remote = remote
        self._session: SparkSession | None = None

    def session(self) -> SparkSession:
        """The Spark Connect session, opened on first use."""
        if self._session is None:
            try:
                with _quiet():
                    from pyspark.sql import SparkSession
            except ImportError as exc:
                raise ConfigurationError(
                    "engine = 'sc://...' needs the Spark Connect client: "
                    "pip install 'modelyard[spark]'") from exc
            try:
                with _quiet():
                    self._session = SparkSession.builder.remote(self.remote).getOrCreate()
            except Exception as exc:  # grpc and pyspark raise many kinds
                raise StorageError(
                    f"cannot reach the Spark Connect server at {self.remote}: "
                    f"{_first_line(exc)}") from exc
        return self._session

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
            [*(spine.column(key) for key in keys), times,
             pa.array(np.arange(spine.num_rows, dtype=np.int64))],
            names=[*(_key(i) for i in range(len(keys))), _TS, _ROW],
        )
        out = spine
        if not groups:
            return out
        spark = self.session()
        try:
            with _quiet():
                spine_df = _send(spark, frame)
                for group in groups:
                    call = _Group(spark, group, [keys.index(k) for k in group.keys], as_of_us)
                    found = call.features(spine_df, spine.num_rows, times)
                    for name in group.output_names():
                        out = out.append_column(name, found[name])
        except (ConfigurationError, InvalidDefinitionError, StorageError):
            raise
        except Exception as exc:  # the server's errors come in many classes
            raise _server_error(exc, groups) from exc
        return out


def _send(spark: SparkSession, table: pa.Table) -> DataFrame:
    """An Arrow table as a DataFrame on the server (its schema given: Spark infers none from
    an empty table)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    return spark.createDataFrame(table, schema=from_arrow_schema(table.schema))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _server_error(exc: Exception, groups: Sequence[GroupInput]) -> Exception:
    names = ", ".join(repr(g.name) for g in groups)
    text = _first_line(exc)
    if type(exc).__name__ in ("AnalysisException", "ParseException"):
        return InvalidDefinitionError(
            f"the Spark server cannot compute feature group(s) {names}: {text}", field="expr")
    return StorageError(f"the Spark server failed on feature group(s) {names}: {text}")


class _Group:
    """One group's features: the history read on the server, then the three computations."""

    def __init__(self, spark: SparkSession, group: GroupInput, spine_keys: list[int],
                 as_of_us: int | None) -> None:
        from pyspark.sql import functions as F

        self.group = group
        self.spine_keys = spine_keys
        schema = group.schema
        # every computed column but the times gets a positional name on the server
        self.names = {f.name: _col(i) for i, f in enumerate(schema)
                      if f.name not in (EVENT_TIME, INGESTED_AT)}
        for i, key in enumerate(group.keys):
            self.names[key] = _key(i)
        history = self._read(spark)
        visible = F.col(_ET).isNotNull()
        for i in range(len(group.keys)):
            visible = visible & F.col(_key(i)).isNotNull()
        if as_of_us is not None:
            visible = visible & (F.col(_ING) <= F.lit(as_of_us))
        self.history = history.where(visible)
        self.order = [F.col(_ING).desc()]
        if isinstance(group.table, TableInput):
            self.order += [F.col(self.names[c]).desc_nulls_last() for c in tie_columns(group)]
        else:
            self.order.append(F.col(_IDX).desc())

    def _read(self, spark: SparkSession) -> DataFrame:
        from pyspark.sql import functions as F

        source = self.group.table
        if isinstance(source, TableInput):
            reader = spark.read.format("delta").options(**(source.ref.options() or {}))
            if source.version is not None:
                reader = reader.option("versionAsOf", source.version)
            raw = reader.load(source.ref.uri)
            computed = raw.selectExpr(*(
                f"{to_spark_sql(expr)} AS `{self._server_name(name)}`"
                for name, expr in source.columns
            ))
            times = [F.unix_micros(F.col(self._server_name(EVENT_TIME))).alias(_ET),
                     F.coalesce(F.unix_micros(F.col(self._server_name(INGESTED_AT))),
                                F.lit(_LOWEST)).alias(_ING)]
            return computed.select(*(F.col(c) for c in self.names.values()), *times)
        table = source
        columns = [table.column(name) for name in self.names]
        ingested = micros(table.column(INGESTED_AT)).fill_null(_LOWEST)
        rows = pa.table(
            [*columns, micros(table.column(EVENT_TIME)), ingested,
             pa.array(np.arange(table.num_rows, dtype=np.int64))],
            names=[*self.names.values(), _ET, _ING, _IDX])
        return _send(spark, rows)

    def _server_name(self, name: str) -> str:
        if name == EVENT_TIME:
            return "__event_time"
        if name == INGESTED_AT:
            return "__ingested_at"
        return self.names[name]

    def features(self, spine: DataFrame, rows: int, times: pa.ChunkedArray
                 ) -> dict[str, pa.ChunkedArray | pa.Array]:
        from pyspark.sql import functions as F

        group = self.group
        keyed = F.col(_TS).isNotNull()
        for i in self.spine_keys:
            keyed = keyed & F.col(_key(i)).isNotNull()
        self.spine = spine.where(keyed).select(
            *(F.col(_key(s)).alias(_key(g)) for g, s in enumerate(self.spine_keys)),
            F.col(_TS), F.col(_ROW))
        ts = times.fill_null(0).to_numpy()
        types = group.output_types()
        found: dict[str, pa.ChunkedArray | pa.Array] = {}
        if group.row_features:
            found.update(self._row_features(rows, ts))
        found.update(self._last_windows(rows, ts))
        found.update(self._aggregates(rows))
        for name, column in list(found.items()):
            if column.type != types[name]:
                found[name] = column.cast(types[name])
        return found

    def _latest(self, columns: list[str], present: Column | None) -> pa.Table:
        """(spine row, event time, columns...) of each spine row's latest history row."""
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        keys = [_key(i) for i in range(len(self.group.keys))]
        history = self.history if present is None else self.history.where(present)
        same = Window.partitionBy(*keys, _ET).orderBy(*self.order)
        best = history.withColumn("__rank", F.row_number().over(same)).where("__rank = 1")
        pick = F.struct(F.col(_ET).alias(_ET), *(F.col(c).alias(c) for c in columns))
        events = best.select(*keys, F.col(_ET).alias(_T), F.lit(0).alias(_KIND),
                             F.lit(None).cast("long").alias(_ROW), pick.alias(_PICK))
        asks = self.spine.select(*keys, F.col(_TS).alias(_T), F.lit(1).alias(_KIND),
                                 F.col(_ROW))
        running = (Window.partitionBy(*keys).orderBy(_T, _KIND)
                   .rowsBetween(Window.unboundedPreceding, Window.currentRow))
        merged = events.unionByName(asks, allowMissingColumns=True)
        chosen = merged.select(F.col(_ROW), F.col(_KIND),
                               F.last(_PICK, ignorenulls=True).over(running).alias(_PICK))
        result = chosen.where(f"{_KIND} = 1 AND {_PICK} IS NOT NULL").select(
            F.col(_ROW), *(F.col(f"{_PICK}.{c}").alias(c) for c in [_ET, *columns]))
        return result.toArrow()

    def _row_features(self, rows: int, ts: np.ndarray) -> dict[str, pa.Array]:
        group = self.group
        columns = [self.names[name] for name in group.row_features]
        result = self._latest(columns, None)
        at = result.column(_ROW).to_numpy()
        if group.ttl_us is not None:
            fresh = ts[at] - result.column(_ET).to_numpy() <= group.ttl_us
            result, at = result.filter(pa.array(fresh)), at[fresh]
        taken = result.take(_positions(at, rows))
        return {name: taken.column(self.names[name]) for name in group.row_features}

    def _last_windows(self, rows: int, ts: np.ndarray) -> dict[str, pa.Array]:
        from pyspark.sql import functions as F

        found: dict[str, pa.Array] = {}
        lasts = [w for w in self.group.windows if w.func == "last" and w.column is not None]
        for column in dict.fromkeys(w.column for w in lasts if w.column is not None):
            name = self.names[column]
            result = self._latest([name], F.col(name).isNotNull())
            at = result.column(_ROW).to_numpy()
            age = ts[at] - result.column(_ET).to_numpy()
            for spec in (w for w in lasts if w.column == column):
                inside = age < spec.window_us
                kept = result.column(name).filter(pa.array(inside))
                found[spec.name] = kept.take(_positions(at[inside], rows))
        return found

    def _aggregates(self, rows: int) -> dict[str, pa.Array]:
        from pyspark.sql import functions as F

        specs = [w for w in self.group.windows if w.func != "last"]
        if not specs:
            return {}
        longest = max(spec.window_us for spec in specs)
        s, h = self.spine.alias("s"), self.history.alias("h")
        on = [F.col(f"s.{_key(i)}") == F.col(f"h.{_key(i)}")
              for i in range(len(self.group.keys))]
        on += [F.col(f"h.{_ET}") <= F.col(f"s.{_TS}"),
               F.col(f"h.{_ET}") > F.col(f"s.{_TS}") - F.lit(longest)]
        joined = s.join(h, on=on, how="inner")
        calls = [self._aggregate(spec).alias(f"__a{i}") for i, spec in enumerate(specs)]
        result = joined.groupBy(F.col(f"s.{_ROW}").alias(_ROW)).agg(*calls).toArrow()
        positions = _positions(result.column(_ROW).to_numpy(), rows)
        found: dict[str, pa.Array] = {}
        for i, spec in enumerate(specs):
            column = result.column(f"__a{i}").take(positions)
            if spec.func in ("count", "count_distinct"):
                column = column.fill_null(0)
            found[spec.name] = column
        return found

    def _aggregate(self, spec: WindowSpec) -> Column:
        from pyspark.sql import functions as F

        inside = F.col(f"h.{_ET}") > F.col(f"s.{_TS}") - F.lit(spec.window_us)
        if spec.column is None:
            return F.count(F.when(inside, F.lit(1)))
        value = F.when(inside, F.col(f"h.{self.names[spec.column]}"))
        calls: dict[str, Any] = {
            "mean": F.avg, "sum": F.sum, "count": F.count, "min": F.min, "max": F.max,
            "std": F.stddev_samp, "count_distinct": F.count_distinct,
        }
        return calls[spec.func](value)  # type: ignore[no-any-return]
