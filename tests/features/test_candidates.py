"""The rows a materialization keeps from its streaming pass give the engine exactly the values
the whole table gives: row features (ties on event time and ingestion time included), every
window function, composite and text keys, nanosecond times, null keys and times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelyard import Entity, Feature, FeatureGroup, Source
from modelyard.backends.offline.duckdb_engine import DuckDBEngine
from modelyard.backends.offline.engine import micros
from modelyard.features.candidates import Candidates, TooManyRows
from modelyard.features.codec import epoch_us
from modelyard.features.materialize import values_at
from modelyard.features.training import INGESTED_AT, SelectedGroup

BASE = datetime(2024, 5, 1, tzinfo=UTC)
KEYS = ("region", "cid")
entity = Entity("shop", list(KEYS))
source = Source.frame("sales", timestamp="ts")
ROW_FEATURES = [Feature("amount", "amount"), Feature("double", "amount * 2")]
WINDOW_FEATURES = [
    Feature("sum_2h", "sum(amount)", window="2h"),
    Feature("n_6h", "count(*)", window="6h"),
    Feature("last_note_3h", "last(note)", window="3h"),
    Feature("mean_1d", "mean(amount)", window="1d"),
]


def _group(windows: bool) -> FeatureGroup:
    features = ROW_FEATURES + (WINDOW_FEATURES if windows else [])
    return FeatureGroup("sales_stats", entity=entity, source=source, features=features)


def _rows(seed: int, n: int, unit: str) -> pa.Table:
    rng = np.random.default_rng(seed)
    minutes = rng.integers(0, 3 * 24 * 60, n)
    minutes[: n // 4] = minutes[n // 4: 2 * (n // 4)]  # ties on event time
    nanos = minutes.astype(np.int64) * 60_000_000_000 + rng.integers(0, 1_500, n)
    stamps = pa.array(nanos + epoch_us(BASE) * 1_000, pa.timestamp("ns", tz="UTC"))
    if unit != "ns":
        micros = minutes.astype(np.int64) * 60_000_000 + rng.integers(0, 2, n)
        stamps = pa.array(micros + epoch_us(BASE), pa.timestamp("us", tz="UTC"))
    ingested = rng.integers(0, 3, n) * 1_000_000 + epoch_us(BASE + timedelta(days=10))
    region = rng.choice(["north", "south", "east"], n).tolist()
    cid = rng.integers(0, 6, n)
    nulls = rng.random(n)
    return pa.table({
        "region": pa.array([None if x < 0.03 else r for x, r in zip(nulls, region, strict=True)],
                           pa.string()),
        "cid": pa.array(cid, pa.int64(), mask=(nulls > 0.97)),
        "ts": pa.array(stamps, mask=(rng.random(n) < 0.03)),
        "amount": pa.array(np.round(rng.gamma(2.0, 10.0, n), 1)),
        "note": pa.array([None if x < 0.3 else f"n{i}" for i, x in
                          enumerate(rng.random(n))], pa.string()),
        INGESTED_AT: pa.array(ingested, pa.timestamp("us", tz="UTC")),
    })


def _keys(table: pa.Table) -> pa.Table:
    keys = table.select(list(KEYS)).group_by(list(KEYS)).aggregate([])
    keys = keys.filter(pa.compute.and_(pa.compute.is_valid(keys["region"]),
                                       pa.compute.is_valid(keys["cid"])))
    return keys.select(list(KEYS)).sort_by([(k, "ascending") for k in KEYS])


def _kept(raw: pa.Table, group: FeatureGroup, at_us: int, batches: list[int],
          limit: int = 10**9) -> pa.Table:
    window = max((f.window_us or 0 for f in group.features), default=0)
    kept = Candidates(list(KEYS), "ts", at_us, window, limit)
    start = 0
    for size in batches:
        kept.add(raw.slice(start, size))
        start += size
    kept.add(raw.slice(start))
    return kept.table(raw.schema)


def _values(raw: pa.Table, group: FeatureGroup, keys: pa.Table, at_us: int) -> pa.Table:
    selected = SelectedGroup(group, 1, tuple(f.name for f in group.features))
    return values_at(DuckDBEngine(), selected, raw, keys, at_us)


@settings(max_examples=60, deadline=None, database=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 400),
       at_minute=st.integers(-60, 4 * 24 * 60), windows=st.booleans(),
       unit=st.sampled_from(["us", "ns"]),
       batches=st.lists(st.integers(0, 150), max_size=5),
       edge=st.sampled_from([None, "1d", "6h", "0h"]))
def test_kept_rows_give_the_whole_tables_values(seed: int, n: int, at_minute: int,
                                                windows: bool, unit: str,
                                                batches: list[int], edge: str | None) -> None:
    raw = _rows(seed, n, unit)
    group = _group(windows)
    at_us = epoch_us(BASE + timedelta(minutes=at_minute)) + seed % 3 - 1  # around the minute
    if edge is not None:  # a window's edge (or T itself) right at one of the rows
        times = raw.column("ts").drop_null()
        if len(times):
            row_us = micros(times)[seed % len(times)].as_py()
            at_us = row_us + int(edge[:-1]) * {"d": 86_400, "h": 3_600}[edge[-1]] * 10**6
    keys = _keys(raw)
    kept = _kept(raw, group, at_us, batches)
    assert kept.num_rows <= raw.num_rows
    _assert_same(_values(kept, group, keys, at_us), _values(raw, group, keys, at_us))


def _assert_same(got: pa.Table, want: pa.Table) -> None:
    """Equal, floats within rounding (a mean over other input rows may sum in another
    order)."""
    assert got.schema == want.schema and got.num_rows == want.num_rows
    for name in want.column_names:
        if pa.types.is_floating(want.schema.field(name).type):
            a = got.column(name).to_numpy(zero_copy_only=False).astype(float)
            b = want.column(name).to_numpy(zero_copy_only=False).astype(float)
            assert np.allclose(a, b, rtol=1e-12, atol=0, equal_nan=True), name
        else:
            assert got.column(name).equals(want.column(name)), name


def test_without_windows_one_row_per_entity_is_kept_unless_tied() -> None:
    raw = _rows(7, 2_000, "us")
    at_us = epoch_us(BASE + timedelta(days=5))
    kept = _kept(raw, _group(False), at_us, [300, 300, 300])
    visible = _keys(raw).num_rows
    assert visible <= kept.num_rows < visible * 4  # the latest rows, and rows tied with them
    assert kept.schema == raw.schema


def test_a_row_after_the_instant_is_never_kept_and_no_rows_give_an_empty_table() -> None:
    raw = _rows(3, 200, "us")
    before_all = epoch_us(BASE) - 1
    kept = _kept(raw, _group(True), before_all, [50])
    assert kept.num_rows == 0 and kept.schema == raw.schema


def test_too_many_rows_is_raised_past_the_limit() -> None:
    raw = _rows(5, 1_000, "us")
    at_us = epoch_us(BASE + timedelta(days=5))
    with pytest.raises(TooManyRows):
        _kept(raw, _group(True), at_us, [100] * 9, limit=50)


def test_keep_all_keeps_every_row_in_order() -> None:
    raw = _rows(11, 500, "us")
    kept = Candidates(list(KEYS), "ts", epoch_us(BASE), 0, 10**9, keep_all=True)
    for start in range(0, 500, 128):
        kept.add(raw.slice(start, 128).to_batches()[0])
    assert kept.table(raw.schema).equals(raw)
