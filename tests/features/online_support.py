"""Shared data and helpers of the online feature store tests."""

from __future__ import annotations

import math
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

import modelyard
from modelyard import (
    Entity,
    Feature,
    FeatureGroup,
    Source,
    Yard,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)
STAMP = pa.timestamp("us", tz="UTC")
US = timedelta(microseconds=1)


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


customer = Entity("customer", "customer_id")
events = Source.frame("events", timestamp="ts")
stats = FeatureGroup("stats", entity=customer, source=events, ttl="5d", features=[
    Feature("amount", "amount"),
    Feature("kind", "kind"),
    Feature("seen", "ts"),
    Feature("on_day", "day"),
    Feature("amount_sum_3d", "sum(amount)", window="3d"),
    Feature("events_7d", "count(*)", window="7d"),
])
totals = FeatureGroup("totals", entity=customer, source=events, features=[
    Feature("doubled", "amount * 2"),
    Feature("amount_max_10d", "max(amount)", window="10d"),
])
ROW = ["amount", "kind", "seen", "on_day"]
WINDOW = ["amount_sum_3d", "events_7d"]
ALL = [f"stats:{n}" for n in ROW + WINDOW]


def event_rows(keys: list[int], start: float, end: float, per_key: int, seed: int
               ) -> pa.Table:
    """``per_key`` events per customer at random instants between day ``start`` and ``end``."""
    rng = random.Random(seed)
    rows: list[tuple[int, datetime, float, str, date]] = []
    for key in keys:
        for _ in range(per_key):
            ts = day(start) + timedelta(minutes=rng.randint(0, int((end - start) * 1440)))
            amount = float("nan") if rng.random() < 0.08 else round(rng.uniform(1, 100), 2)
            rows.append((key, ts, amount, rng.choice(["glass", "theft", "fire"]), ts.date()))
    return table(rows)


def table(rows: list[tuple[int, datetime, float, str, date]]) -> pa.Table:
    keys, ts, amounts, kinds, days = (list(c) for c in zip(*rows, strict=True)) if rows else (
        [], [], [], [], [])
    return pa.table({"customer_id": pa.array(keys, pa.int64()), "ts": pa.array(ts, STAMP),
                     "amount": pa.array(amounts, pa.float64()), "kind": pa.array(kinds),
                     "day": pa.array(days, pa.date32())})


KEYS = list(range(1, 41))
AT = day(12)


def connect(project: Path, online_uri: str, **settings: Any) -> Yard:
    return modelyard.connect(project=project, online_uri=online_uri, capture_git=False,
                             capture_packages=False, **settings)


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
    if isinstance(a, datetime) and isinstance(b, datetime):
        return a.astimezone(UTC) == b.astimezone(UTC)
    return bool(a == b) and type(a) is type(b)


def training_rows(yard: Yard, keys: list[int], at: datetime, features: list[str]
                  ) -> dict[int, dict[str, Any]]:
    spine = pa.table({"customer_id": pa.array(keys, pa.int64()),
                      "ts": pa.array([at] * len(keys), STAMP)})
    rows = yard.training_set(spine, features).table.to_pylist()
    return {r["customer_id"]: r for r in rows}


def assert_online_equals_training(yard: Yard, keys: list[int], at: datetime,
                                  features: list[str] = ALL) -> dict[str, list[Any]]:
    online = yard.online_features(features, {"customer_id": keys}, at=at).to_dict()
    offline = training_rows(yard, keys, at, features)
    names = [f.split(":", 1)[1] for f in features]
    for i, key in enumerate(keys):
        for name in names:
            assert same(online[name][i], offline[key][name]), (key, name, online[name][i],
                                                                offline[key][name])
    return online


def stored(yard: Yard, table_name: str = "stats@v1") -> dict[str, bytes | None]:
    store = yard.features.online.store
    keys = sorted(store.keys(table_name))
    return dict(zip(keys, store.read([(table_name, keys)])[0], strict=True))


def last_event(rows: pa.Table, key: int, at: datetime) -> datetime | None:
    times = [r["ts"] for r in rows.to_pylist() if r["customer_id"] == key and r["ts"] <= at]
    return max(times) if times else None


def fail_third_write(yard: Yard) -> None:
    """Make the third write to the yard's online store fail, as a full disk would."""
    store = yard.features.online.store
    write = store.write
    calls = {"n": 0}

    def failing(table_name: str, rows: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk went away")
        return write(table_name, rows)

    store.write = failing  # type: ignore[method-assign]
