"""The point-in-time engines against a brute-force reference on random small histories.

The reference reads the semantics straight off the spec, one spine row at a time: the latest
visible row at or before the spine time (ties by ingestion time, then table position for an
Arrow table, the row's values for a Delta table), the TTL, ``as_of``, and every window function
over ``(ts - window, ts]``. Each engine (DuckDB with either window strategy, Spark Connect on
Sail) runs on groups given as Arrow tables and as Delta tables it reads itself.
"""

from __future__ import annotations

import math
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelyard.backends.offline.duckdb_engine import DuckDBEngine
from modelyard.backends.offline.engine import (
    WINDOW_FUNCTIONS,
    GroupInput,
    OfflineEngine,
    TableInput,
    WindowSpec,
)
from modelyard.backends.offline.tables import TableRef

HOUR = 3_600_000_000
BASE = datetime(2024, 3, 1, tzinfo=UTC)
ZONES = ["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata"]


def moment(hours: int) -> datetime:
    return BASE + timedelta(microseconds=hours * HOUR)


@dataclass
class Row:
    keys: tuple[Any, ...]
    event: int
    ingested: int
    x: float | None
    n: int | None


@dataclass
class Case:
    keys: tuple[str, ...]
    rows: list[Row]
    windows: tuple[WindowSpec, ...]
    ttl: int | None
    delta: bool = False  # full ties by the row's values (x, then n; nulls lowest)

    def tie(self, i: int, row: Row) -> Any:
        if not self.delta:
            return i
        return tuple((0, 0.0) if v is None else (1, v) for v in (row.x, row.n))


# --- reference ---------------------------------------------------------------------------

def _visible(case: Case, keys: tuple[Any, ...], as_of: int | None) -> list[tuple[int, Row]]:
    return [
        (i, r) for i, r in enumerate(case.rows)
        if r.keys == keys and (as_of is None or r.ingested <= as_of)
    ]


def _row_features(case: Case, keys: tuple[Any, ...], ts: int | None,
                  as_of: int | None) -> dict[str, Any]:
    empty = {"x": None, "n": None}
    if ts is None or any(k is None for k in keys):
        return empty
    seen = [(i, r) for i, r in _visible(case, keys, as_of) if r.event <= ts]
    if not seen:
        return empty
    _, row = max(seen, key=lambda p: (p[1].event, p[1].ingested, case.tie(*p)))
    if case.ttl is not None and (ts - row.event) * HOUR > case.ttl:
        return empty
    return {"x": row.x, "n": row.n}


def _aggregate(case: Case, spec: WindowSpec, rows: list[tuple[int, Row]]) -> Any:
    if spec.column is None:
        return len(rows)
    values = [(i, r, getattr(r, spec.column)) for i, r in rows]
    present = [v for _, _, v in values if v is not None]
    if spec.func == "count":
        return len(present)
    if spec.func == "count_distinct":
        return len(set(present))
    if not present:
        return None
    if spec.func == "last":
        picked = [(r.event, r.ingested, case.tie(i, r), v) for i, r, v in values
                  if v is not None]
        return max(picked)[3]
    functions: dict[str, Callable[[list[Any]], Any]] = {
        "sum": sum, "min": min, "max": max, "mean": statistics.fmean,
        "std": lambda v: statistics.stdev(v) if len(v) > 1 else None,
    }
    return functions[spec.func](present)


def _windows(case: Case, keys: tuple[Any, ...], ts: int | None,
             as_of: int | None) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for spec in case.windows:
        rows: list[tuple[int, Row]] = []
        if ts is not None and all(k is not None for k in keys):
            length = spec.window_us // HOUR
            rows = [
                (i, r) for i, r in _visible(case, keys, as_of) if ts - length < r.event <= ts
            ]
        found[spec.name] = _aggregate(case, spec, rows)
    return found


def _same(expected: Any, actual: Any) -> bool:
    if expected is None or actual is None:
        return expected is None and actual is None
    if isinstance(expected, float) or isinstance(actual, float):
        return math.isclose(expected, actual, rel_tol=1e-9, abs_tol=1e-9)
    return bool(expected == actual)


# --- strategies --------------------------------------------------------------------------



def sometimes_null(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly values, now and then a null."""
    return st.tuples(st.integers(0, 7), values).map(lambda p: None if p[0] == 0 else p[1])


maybe_float = sometimes_null(st.integers(-5, 5).map(float))
maybe_int = sometimes_null(st.integers(-3, 3))


@st.composite
def cases(draw: st.DrawFn, composite: bool) -> Case:
    keys = ("cid", "shop") if composite else ("cid",)
    key = st.tuples(st.integers(0, 2), st.sampled_from(["a", "b"])) if composite \
        else st.tuples(st.integers(0, 2))
    size = draw(st.integers(0, 30))
    rows = draw(st.lists(
        st.builds(
            lambda k, e, lag, x, n: Row(k, e, e + lag, x, n),
            key, st.integers(0, 10), st.integers(0, 6), maybe_float, maybe_int,
        ),
        min_size=size, max_size=size,
    ))
    specs = draw(st.lists(
        st.builds(
            lambda func, column, hours: (func, column, hours),
            st.sampled_from(sorted(WINDOW_FUNCTIONS)), st.sampled_from(["x", "n"]),
            st.integers(1, 10),
        ),
        min_size=1, max_size=5,
    ))
    windows = tuple(
        WindowSpec(f"{'_'.join(keys)}_w{i}", func, column, hours * HOUR)
        for i, (func, column, hours) in enumerate(specs)
    )
    if draw(st.booleans()):
        windows += (WindowSpec(f"{'_'.join(keys)}_rows", "count", None, 3 * HOUR),)
    ttl = draw(st.one_of(st.none(), st.integers(0, 5).map(lambda h: h * HOUR)))
    return Case(keys, rows, windows, ttl)


def _group(case: Case, suffix: str, folder: str) -> GroupInput:
    columns: dict[str, pa.Array] = {}
    for j, key in enumerate(case.keys):
        dtype = pa.int64() if key == "cid" else pa.string()
        columns[key] = pa.array([r.keys[j] for r in case.rows], dtype)
    stamp = pa.timestamp("us", "UTC")
    columns["event_time"] = pa.array([moment(r.event) for r in case.rows], stamp)
    columns["ingested_at"] = pa.array([moment(r.ingested) for r in case.rows], stamp)
    columns["x" + suffix] = pa.array([r.x for r in case.rows], pa.float64())
    columns["n" + suffix] = pa.array([r.n for r in case.rows], pa.int64())
    windows = tuple(
        WindowSpec(w.name, w.func, None if w.column is None else w.column + suffix, w.window_us)
        for w in case.windows
    )
    table: pa.Table | TableInput = pa.table(columns)
    if case.delta:
        table = _stored(table, folder)
    return GroupInput(
        name="g" + suffix, keys=case.keys, table=table,
        row_features=("x" + suffix, "n" + suffix), windows=windows, ttl_us=case.ttl,
    )


def _stored(table: pa.Table, folder: str) -> TableInput:
    """The rows written as a Delta table (in shuffled batches, so that no file order can stand
    in for the tie rule), given to the engine as a reference."""
    from deltalake import write_deltalake

    uri = f"{folder}/{table.column_names[-1]}"
    half = table.num_rows // 2
    for part in (table.slice(half), table.slice(0, half)):
        write_deltalake(uri, part, mode="append")
    columns = tuple((name, '"' + name + '"') for name in table.column_names)
    return TableInput(TableRef(uri), None, columns, table.schema)


spine_row = st.tuples(
    sometimes_null(st.integers(0, 2)), st.sampled_from(["a", "b"]),
    sometimes_null(st.integers(-1, 13)),
)
spines = st.integers(0, 20).flatmap(
    lambda size: st.lists(spine_row, min_size=size, max_size=size)
)


@pytest.fixture(params=[
    "duckdb-join", "duckdb-stream",
    pytest.param("spark", marks=[pytest.mark.spark, pytest.mark.slow]),
])
def engine(request: pytest.FixtureRequest) -> OfflineEngine:
    if request.param == "spark":
        from modelyard.backends.offline.spark_engine import SparkEngine

        return SparkEngine(request.getfixturevalue("spark_remote"))
    return DuckDBEngine(threads=2, windows="join" if request.param == "duckdb-join" else "stream")


@pytest.mark.parametrize("stored", [False, True], ids=["arrow", "delta"])
@settings(max_examples=25, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    single=cases(composite=False),
    composite=cases(composite=True),
    spine_rows=spines,
    zone=st.sampled_from(ZONES),
    as_of=st.one_of(st.none(), st.integers(0, 18)),
)
def test_engine_matches_brute_force_reference(
    engine: OfflineEngine, stored: bool, single: Case, composite: Case,
    spine_rows: list[tuple[int | None, str, int | None]], zone: str, as_of: int | None,
) -> None:
    single.delta = composite.delta = stored
    spine = pa.table({
        "cid": pa.array([r[0] for r in spine_rows], pa.int64()),
        "shop": pa.array([r[1] for r in spine_rows], pa.string()),
        "ts": pa.array(
            [None if r[2] is None else moment(r[2]) for r in spine_rows],
            pa.timestamp("us", zone),
        ),
        "label": pa.array(range(len(spine_rows)), pa.int64()),
    })
    with tempfile.TemporaryDirectory() as folder:
        groups = [_group(single, "_1", folder), _group(composite, "_2", folder)]
        result = engine.point_in_time(
            spine, "ts", groups, as_of=None if as_of is None else moment(as_of)
        )

    assert result.num_rows == spine.num_rows
    assert result.select(spine.column_names).equals(spine)
    as_of_h = as_of
    for i, (cid, shop, ts) in enumerate(spine_rows):
        for case, suffix in ((single, "_1"), (composite, "_2")):
            keys = (cid, shop) if len(case.keys) == 2 else (cid,)
            expected = {
                name + suffix: value
                for name, value in _row_features(case, keys, ts, as_of_h).items()
            }
            expected.update(_windows(case, keys, ts, as_of_h))
            for name, value in expected.items():
                actual = result.column(name)[i].as_py()
                assert _same(value, actual), (
                    f"row {i} ({keys}, t={ts}) column {name}: expected {value}, got {actual}"
                )
