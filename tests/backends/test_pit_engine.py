"""The point-in-time engines (DuckDB, and Spark Connect on a Sail server) on hand-made
adversarial histories: every test of an ``engine`` runs on both."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest

from modelyard.backends.offline.duckdb_engine import DuckDBEngine, WindowStrategy
from modelyard.backends.offline.engine import GroupInput, OfflineEngine, WindowSpec
from modelyard.errors import InvalidInputError

HOUR = 3_600_000_000
DAY = 24 * HOUR
T0 = datetime(2024, 1, 1, tzinfo=UTC)
STAMP = pa.timestamp("us", "UTC")


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def history(rows: list[dict[str, Any]], **types: pa.DataType) -> pa.Table:
    """A group table from dicts with ``event`` and ``ingested`` given in hours after T0."""
    columns: dict[str, list[Any]] = {}
    for row in rows:
        for name, value in row.items():
            columns.setdefault(name, []).append(value)
    data: dict[str, pa.Array] = {}
    for name, values in columns.items():
        if name in ("event", "ingested"):
            target = "event_time" if name == "event" else "ingested_at"
            data[target] = pa.array([at(v) for v in values], STAMP)
        else:
            data[name] = pa.array(values, types.get(name))
    return pa.table(data)


def spine(cids: list[Any], hours: list[float | None], zone: str = "UTC") -> pa.Table:
    return pa.table({
        "cid": pa.array(cids, pa.int64()),
        "ts": pa.array([None if h is None else at(h) for h in hours], pa.timestamp("us", zone)),
        "row": pa.array(range(len(cids)), pa.int64()),
    })


@pytest.fixture(params=["duckdb", pytest.param("spark", marks=pytest.mark.spark)])
def engine(request: pytest.FixtureRequest) -> OfflineEngine:
    if request.param == "spark":
        from modelyard.backends.offline.spark_engine import SparkEngine

        return SparkEngine(request.getfixturevalue("spark_remote"))
    return DuckDBEngine(threads=2)


def values(table: pa.Table, column: str) -> list[Any]:
    return list(table.column(column).to_pylist())


# --- row features ------------------------------------------------------------------------

def test_latest_row_at_or_before_each_spine_time(engine: OfflineEngine) -> None:
    table = history([
        {"cid": 1, "event": 0, "ingested": 0, "amount": 10.0},
        {"cid": 1, "event": 5, "ingested": 5, "amount": 50.0},
        {"cid": 1, "event": 9, "ingested": 9, "amount": 90.0},
    ])
    group = GroupInput("g", ("cid",), table, ("amount",))
    out = engine.point_in_time(spine([1, 1, 1, 1], [4.99, 5, 8, 100]), "ts", [group])
    assert values(out, "amount") == [10.0, 50.0, 50.0, 90.0]


def test_spine_order_and_columns_are_kept_exactly(engine: OfflineEngine) -> None:
    table = history([{"cid": c, "event": 0, "ingested": 0, "v": c * 10} for c in range(5)])
    group = GroupInput("g", ("cid",), table, ("v",))
    cids = [3, 0, 4, 3, 1, 2, 0, 3]
    base = spine(cids, [1.0] * len(cids)).append_column("text", pa.array(list("abcdefgh")))
    out = engine.point_in_time(base, "ts", [group])
    assert out.column_names == ["cid", "ts", "row", "text", "v"]
    assert out.select(base.column_names).equals(base)
    assert values(out, "v") == [c * 10 for c in cids]


def test_duplicate_event_times_resolved_by_latest_ingestion(engine: OfflineEngine) -> None:
    table = history([
        {"cid": 1, "event": 2, "ingested": 7, "amount": 2.7},   # the correction, stored first
        {"cid": 1, "event": 2, "ingested": 3, "amount": 2.3},
        {"cid": 1, "event": 2, "ingested": 5, "amount": 2.5},
        {"cid": 1, "event": 1, "ingested": 9, "amount": 1.9},   # late but older event
    ])
    group = GroupInput("g", ("cid",), table, ("amount",))
    out = engine.point_in_time(spine([1, 1], [1.5, 2]), "ts", [group])
    assert values(out, "amount") == [1.9, 2.7]


def test_full_ties_resolved_by_the_later_table_row(engine: OfflineEngine) -> None:
    table = history([
        {"cid": 1, "event": 2, "ingested": 3, "amount": 1.0},
        {"cid": 1, "event": 2, "ingested": 3, "amount": 2.0},
    ])
    group = GroupInput("g", ("cid",), table, ("amount",))
    for _ in range(3):
        assert values(engine.point_in_time(spine([1], [2]), "ts", [group]), "amount") == [2.0]


def test_as_of_hides_late_arriving_rows(engine: OfflineEngine) -> None:
    table = history([
        {"cid": 1, "event": 0, "ingested": 0, "amount": 1.0},
        {"cid": 1, "event": 5, "ingested": 30, "amount": 5.0},   # arrived a day late
        {"cid": 1, "event": 0, "ingested": 40, "amount": 1.5},   # restated even later
    ])
    group = GroupInput("g", ("cid",), table, ("amount",))
    frame = spine([1, 1], [6, 6])
    assert values(engine.point_in_time(frame, "ts", [group], as_of=at(10)), "amount") == [1.0, 1.0]
    assert values(engine.point_in_time(frame, "ts", [group], as_of=at(30)), "amount") == [5.0, 5.0]
    assert values(engine.point_in_time(frame, "ts", [group]), "amount") == [5.0, 5.0]
    first = values(engine.point_in_time(spine([1], [1]), "ts", [group], as_of=at(39)), "amount")
    last = values(engine.point_in_time(spine([1], [1]), "ts", [group], as_of=at(40)), "amount")
    assert (first, last) == ([1.0], [1.5])


def test_ttl_boundary_is_inclusive(engine: OfflineEngine) -> None:
    table = history([{"cid": 1, "event": 0, "ingested": 0, "amount": 1.0}])
    group = GroupInput("g", ("cid",), table, ("amount",), ttl_us=2 * HOUR)
    just_after = 2 + 1 / 3_600_000_000
    out = engine.point_in_time(spine([1, 1, 1], [0, 2, just_after]), "ts", [group])
    assert values(out, "amount") == [1.0, 1.0, None]


def test_ttl_does_not_fall_back_to_an_older_row(engine: OfflineEngine) -> None:
    table = history([
        {"cid": 1, "event": 0, "ingested": 0, "amount": 1.0},
        {"cid": 1, "event": 1, "ingested": 1, "amount": 2.0},
    ])
    group = GroupInput("g", ("cid",), table, ("amount",), ttl_us=0)
    assert values(engine.point_in_time(spine([1, 1], [1, 1.5]), "ts", [group]), "amount") == [
        2.0, None,
    ]


def test_null_values_in_the_chosen_row_stay_null(engine: OfflineEngine) -> None:
    table = history([
        {"cid": 1, "event": 0, "ingested": 0, "amount": 1.0, "kind": "a"},
        {"cid": 1, "event": 1, "ingested": 1, "amount": None, "kind": "b"},
    ])
    group = GroupInput("g", ("cid",), table, ("amount", "kind"))
    out = engine.point_in_time(spine([1], [2]), "ts", [group])
    assert (values(out, "amount"), values(out, "kind")) == ([None], ["b"])


def test_no_history_and_before_history_give_nulls(engine: OfflineEngine) -> None:
    table = history([{"cid": 1, "event": 5, "ingested": 5, "amount": 1.0}])
    windows = (WindowSpec("n_1d", "count", None, DAY), WindowSpec("sum_1d", "sum", "amount", DAY))
    group = GroupInput("g", ("cid",), table, ("amount",), windows)
    out = engine.point_in_time(spine([1, 2, None, 1], [4, 6, 6, None]), "ts", [group])
    assert values(out, "amount") == [None, None, None, None]
    assert values(out, "n_1d") == [0, 0, 0, 0]
    assert values(out, "sum_1d") == [None, None, None, None]


def test_spine_in_another_time_zone_is_the_same_instant(engine: OfflineEngine) -> None:
    table = history([
        {"cid": 1, "event": 0, "ingested": 0, "amount": 1.0},
        {"cid": 1, "event": 3, "ingested": 3, "amount": 2.0},
    ])
    group = GroupInput("g", ("cid",), table, ("amount",))
    utc = engine.point_in_time(spine([1, 1], [2.5, 3]), "ts", [group])
    tokyo = engine.point_in_time(spine([1, 1], [2.5, 3], "Asia/Tokyo"), "ts", [group])
    assert values(utc, "amount") == values(tokyo, "amount") == [1.0, 2.0]
    assert tokyo.schema.field("ts").type == pa.timestamp("us", "Asia/Tokyo")


def test_nanosecond_spine_just_before_an_event_does_not_see_it(engine: OfflineEngine) -> None:
    table = history([{"cid": 1, "event": 1, "ingested": 1, "amount": 1.0}])
    group = GroupInput("g", ("cid",), table, ("amount",))
    event_ns = int(at(1).timestamp()) * 1_000_000_000
    frame = pa.table({
        "cid": [1, 1, 1],
        "ts": pa.array([event_ns - 1, event_ns, event_ns + 999], pa.timestamp("ns", "UTC")),
    })
    assert values(engine.point_in_time(frame, "ts", [group]), "amount") == [None, 1.0, 1.0]


def test_composite_keys_and_groups_with_different_keys(engine: OfflineEngine) -> None:
    visits = history([
        {"cid": 1, "shop": "a", "event": 0, "ingested": 0, "visits": 1},
        {"cid": 1, "shop": "b", "event": 0, "ingested": 0, "visits": 2},
        {"cid": 2, "shop": "a", "event": 0, "ingested": 0, "visits": 3},
    ])
    customers = history([
        {"cid": 1, "event": 0, "ingested": 0, "age": 30},
        {"cid": 2, "event": 0, "ingested": 0, "age": 40},
    ])
    shops = history([{"shop": "b", "event": 0, "ingested": 0, "city": "Lyon"}])
    frame = pa.table({
        "cid": [2, 1, 1, 2], "shop": ["a", "b", "a", "b"],
        "ts": pa.array([at(1)] * 4, STAMP),
    })
    out = engine.point_in_time(frame, "ts", [
        GroupInput("visits", ("cid", "shop"), visits, ("visits",)),
        GroupInput("customers", ("cid",), customers, ("age",)),
        GroupInput("shops", ("shop",), shops, ("city",)),
    ])
    assert values(out, "visits") == [3, 2, 1, None]
    assert values(out, "age") == [40, 30, 30, 40]
    assert values(out, "city") == [None, "Lyon", None, "Lyon"]
    assert out.schema.field("visits").type == pa.int64()


def test_feature_types_survive_the_join(engine: OfflineEngine) -> None:
    table = history(
        [{"cid": 1, "event": 0, "ingested": 0, "f": 1.5, "small": 3, "flag": True,
          "when": at(-5)}],
        f=pa.float32(), small=pa.int16(), when=pa.timestamp("ms", "Europe/Paris"),
    )
    group = GroupInput("g", ("cid",), table, ("f", "small", "flag", "when"),
                       (WindowSpec("last_when", "last", "when", DAY),))
    out = engine.point_in_time(spine([1, 2], [1, 1]), "ts", [group])
    assert out.schema.field("f").type == pa.float32()
    assert out.schema.field("small").type == pa.int16()
    assert out.schema.field("flag").type == pa.bool_()
    assert out.schema.field("when").type == pa.timestamp("ms", "Europe/Paris")
    assert out.schema.field("last_when").type == pa.timestamp("ms", "Europe/Paris")
    assert values(out, "when") == [at(-5), None]
    assert values(out, "flag") == [True, None]


# --- windows -----------------------------------------------------------------------------

def test_window_edges_exclude_the_start_and_include_the_spine_time(
    engine: OfflineEngine,
) -> None:
    table = history([
        {"cid": 1, "event": 0, "ingested": 0, "x": 1.0},    # exactly ts - window: out
        {"cid": 1, "event": 1, "ingested": 1, "x": 2.0},
        {"cid": 1, "event": 24, "ingested": 24, "x": 4.0},  # exactly ts: in
        {"cid": 1, "event": 24.5, "ingested": 24.5, "x": 8.0},  # after ts: out
    ])
    group = GroupInput("g", ("cid",), table, windows=(
        WindowSpec("n", "count", None, DAY),
        WindowSpec("total", "sum", "x", DAY),
        WindowSpec("n_1us", "count", None, 1),
    ))
    out = engine.point_in_time(spine([1], [24]), "ts", [group])
    assert (values(out, "n"), values(out, "total"), values(out, "n_1us")) == ([2], [6.0], [1])


def test_every_window_function(engine: OfflineEngine) -> None:
    table = history([
        {"cid": 1, "event": 1, "ingested": 1, "x": 4.0, "tag": "a"},
        {"cid": 1, "event": 2, "ingested": 9, "x": 8.0, "tag": "b"},
        {"cid": 1, "event": 2, "ingested": 2, "x": 6.0, "tag": "a"},
        {"cid": 1, "event": 3, "ingested": 3, "x": None, "tag": None},
        {"cid": 1, "event": 50, "ingested": 50, "x": 100.0, "tag": "z"},  # in the future
    ])
    funcs = ["mean", "sum", "count", "min", "max", "std", "last", "count_distinct"]
    windows = tuple(WindowSpec(f, f, "x", DAY) for f in funcs)  # type: ignore[arg-type]
    windows += (
        WindowSpec("rows", "count", None, DAY),
        WindowSpec("tags", "count_distinct", "tag", DAY),
        WindowSpec("last_tag", "last", "tag", DAY),
    )
    group = GroupInput("g", ("cid",), table, windows=windows)
    out = engine.point_in_time(spine([1, 1], [4, 2]), "ts", [group]).to_pylist()
    assert {k: out[0][k] for k in [*funcs, "rows", "tags", "last_tag"]} == {
        "mean": 6.0, "sum": 18.0, "count": 3, "min": 4.0, "max": 8.0,
        "std": pytest.approx(2.0), "last": 8.0, "count_distinct": 3,
        "rows": 4, "tags": 2, "last_tag": "b",
    }
    assert out[1]["last"] == 8.0 and out[1]["rows"] == 3


def test_windows_respect_as_of(engine: OfflineEngine) -> None:
    table = history([
        {"cid": 1, "event": 1, "ingested": 1, "x": 1.0},
        {"cid": 1, "event": 2, "ingested": 20, "x": 10.0},
    ])
    group = GroupInput("g", ("cid",), table, windows=(WindowSpec("s", "sum", "x", DAY),))
    frame = spine([1], [3])
    assert values(engine.point_in_time(frame, "ts", [group], as_of=at(19)), "s") == [1.0]
    assert values(engine.point_in_time(frame, "ts", [group], as_of=at(20)), "s") == [11.0]


def test_integer_sums_stay_integers(engine: OfflineEngine) -> None:
    table = history([{"cid": 1, "event": 0, "ingested": 0, "n": 2**40},
                     {"cid": 1, "event": 1, "ingested": 1, "n": 2**40}])
    group = GroupInput("g", ("cid",), table, windows=(WindowSpec("s", "sum", "n", DAY),))
    out = engine.point_in_time(spine([1], [2]), "ts", [group])
    assert out.schema.field("s").type == pa.int64()
    assert values(out, "s") == [2**41]


def test_empty_spine_and_empty_history(engine: OfflineEngine) -> None:
    table = history([{"cid": 1, "event": 0, "ingested": 0, "x": 1.0}])
    empty = table.slice(0, 0)
    windows = (WindowSpec("n", "count", None, DAY),)
    out = engine.point_in_time(spine([], []), "ts", [GroupInput("g", ("cid",), table, ("x",))])
    assert out.num_rows == 0 and out.column_names == ["cid", "ts", "row", "x"]
    out = engine.point_in_time(
        spine([1], [1]), "ts", [GroupInput("g", ("cid",), empty, ("x",), windows)]
    )
    assert (values(out, "x"), values(out, "n")) == ([None], [0])


def test_window_strategies_agree_where_auto_switches() -> None:
    """One key with a long history: the range join would touch every pair, so ``auto``
    streams; all three strategies must give the same numbers, also for a sparse spine."""
    events = [
        {"cid": c, "event": h / 4, "ingested": h / 4, "x": float(h % 7), "n": h % 5}
        for c in (1, 2) for h in range(400)
    ]
    table = history(events)
    funcs = ["mean", "sum", "count", "min", "max", "std", "last", "count_distinct"]
    windows = tuple(
        WindowSpec(f"{f}_{h}", f, "n" if f == "sum" else "x", h * HOUR)  # type: ignore[arg-type]
        for f in funcs for h in (1, 24)
    )
    group = GroupInput("g", ("cid",), table, windows=windows)
    dense = spine([1] * 60 + [2] * 60, [i * 1.7 for i in range(120)])
    sparse = spine([1, 2, 3], [50, 99.9, 10])
    for frame in (dense, sparse):
        results = [
            DuckDBEngine(threads=2, windows=strategy).point_in_time(frame, "ts", [group])
            for strategy in ("join", "stream", "auto")
        ]
        names = [w.name for w in windows]
        first = results[0].select(names).to_pylist()
        for other in results[1:]:
            assert other.schema == results[0].schema
            for mine, theirs in zip(other.select(names).to_pylist(), first, strict=True):
                assert mine == pytest.approx(theirs)
    counts = values(results[0], "count_24")
    assert counts == [96, 96, 0]



@pytest.mark.parametrize("strategy", ["join", "stream"])
def test_windows_over_a_key_column_see_only_history(strategy: WindowStrategy) -> None:
    table = history([
        {"cid": 1, "shop": "a", "event": 0, "ingested": 0},
        {"cid": 1, "shop": "a", "event": 1, "ingested": 1},
    ])
    group = GroupInput("g", ("cid", "shop"), table, windows=(
        WindowSpec("shops", "count_distinct", "shop", DAY),
        WindowSpec("last_shop", "last", "shop", DAY),
        WindowSpec("rows", "count", None, DAY),
    ))
    frame = pa.table({"cid": [1, 1, 2], "shop": ["a", "b", "a"],
                      "ts": pa.array([at(2)] * 3, STAMP)})
    out = DuckDBEngine(windows=strategy).point_in_time(frame, "ts", [group])
    assert values(out, "shops") == [1, 0, 0]
    assert values(out, "last_shop") == ["a", None, None]
    assert values(out, "rows") == [2, 0, 0]


# --- invalid input -----------------------------------------------------------------------

def _group(**changes: Any) -> GroupInput:
    table = history([{"cid": 1, "event": 0, "ingested": 0, "x": 1.0}])
    fields: dict[str, Any] = {"name": "g", "keys": ("cid",), "table": table,
                              "row_features": ("x",)}
    fields.update(changes)
    return GroupInput(**fields)


@pytest.mark.parametrize(
    ("frame", "timestamp", "group", "column"),
    [
        (spine([1], [1]), "when", _group(), "when"),
        (pa.table({"cid": [1], "ts": pa.array([datetime(2024, 1, 1)], pa.timestamp("us"))}),
         "ts", _group(), "ts"),
        (pa.table({"cid": [1], "ts": ["2024-01-01"]}), "ts", _group(), "ts"),
        (spine([1], [1]).drop_columns(["cid"]), "ts", _group(), "cid"),
        (pa.table({"cid": ["1"], "ts": pa.array([at(1)], STAMP)}), "ts", _group(), "cid"),
        (spine([1], [1]), "ts", _group(keys=("cid", "shop")), "shop"),
        (spine([1], [1]), "ts", _group(row_features=("missing",)), "missing"),
        (spine([1], [1]), "ts", _group(row_features=("row",)), "row"),
        (spine([1], [1]), "ts",
         _group(table=history([{"cid": 1, "event": 0, "ingested": 0, "x": 1.0}])
                .drop_columns(["ingested_at"])), "ingested_at"),
    ],
    ids=["missing-ts", "naive-ts", "string-ts", "missing-key", "key-type", "key-in-table",
         "missing-feature", "taken-name", "missing-ingested_at"],
)
def test_invalid_requests_name_the_column(
    engine: OfflineEngine, frame: pa.Table, timestamp: str, group: GroupInput, column: str,
) -> None:
    with pytest.raises(InvalidInputError, match=repr(column)) as raised:
        engine.point_in_time(frame, timestamp, [group])
    assert raised.value.details["column"] == column


def test_naive_as_of_is_rejected(engine: OfflineEngine) -> None:
    with pytest.raises(InvalidInputError, match="timezone-aware"):
        engine.point_in_time(spine([1], [1]), "ts", [_group()], as_of=datetime(2024, 1, 1))


def test_same_output_name_in_two_groups_is_rejected(engine: OfflineEngine) -> None:
    with pytest.raises(InvalidInputError, match="'x'"):
        engine.point_in_time(spine([1], [1]), "ts", [_group(), _group(name="other")])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (dict(name="w", func="median", column="x", window_us=DAY), "unknown function"),
        (dict(name="w", func="mean", column=None, window_us=DAY), "needs an input column"),
        (dict(name="w", func="count", column=None, window_us=0), "must be positive"),
    ],
)
def test_invalid_window_specs(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        WindowSpec(**spec)
