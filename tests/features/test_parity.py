"""Train/serve parity: for random entities and times T, the value served online after
materializing at T equals the value a training set computes for (entity, T) — for plain,
windowed, TTL-bound and request-time features, on both online stores."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import modelyard
from modelyard import Entity, Feature, FeatureGroup, RequestFeatureGroup, Source

BASE = datetime(2024, 3, 1, tzinfo=UTC)
STAMP = pa.timestamp("us", tz="UTC")

customer = Entity("customer", "customer_id")
claims = Source.frame("claims", timestamp="ts")
history = FeatureGroup(
    "history", entity=customer, source=claims, ttl="5d",
    features=[
        Feature("amount", "amount"),
        Feature("kind", "kind"),
        Feature("big", "amount > 50"),
        Feature("amount_sum_3d", "sum(amount)", window="3d"),
        Feature("amount_mean_10d", "mean(amount)", window="10d"),
        Feature("claims_7d", "count(*)", window="7d"),
        Feature("amount_max_1d", "max(amount)", window="1d"),
        Feature("amount_std_10d", "std(amount)", window="10d"),
        Feature("kinds_10d", "count_distinct(kind)", window="10d"),
        Feature("last_kind_10d", "last(kind)", window="10d"),
    ])
request = RequestFeatureGroup(
    "claim_request", request={"claim_amount": "float"},
    inputs=["history:amount_mean_10d", "history:claims_7d"],
    features=[Feature("to_mean", "claim_amount / nullif(amount_mean_10d, 0)"),
              Feature("per_claim", "claim_amount / (claims_7d + 1)")])
FEATURES = ["history:*", "claim_request:to_mean", "claim_request:per_claim"]


def _events(rng: np.random.Generator, n: int, entities: int) -> pa.Table:
    minutes = rng.integers(0, 20 * 24 * 60, n)
    minutes[: n // 10] = minutes[n // 10: 2 * (n // 10)]  # ties on event time
    amounts = np.round(rng.gamma(2.0, 30.0, n), 2)
    amounts[rng.random(n) < 0.05] = np.nan
    return pa.table({
        "customer_id": pa.array(rng.integers(0, entities, n), pa.int64()),
        "ts": pa.array([BASE + timedelta(minutes=int(m)) for m in minutes], STAMP),
        "amount": pa.array(amounts, pa.float64()),
        "kind": pa.array(rng.choice(["glass", "theft", "collision"], n).tolist()),
    })


@pytest.fixture
def parity_yard(project: Path, online_uri: str) -> Iterator[Any]:
    yard = modelyard.connect(project=project, online_uri=online_uri, capture_git=False,
                             capture_packages=False)
    yard.apply([history, request])
    try:
        yield yard
    finally:
        yard.close()


def _same(online: Any, offline: Any) -> bool:
    if online is None or offline is None:
        return online is None and offline is None
    if isinstance(online, float) or isinstance(offline, float):
        return (math.isnan(online) and math.isnan(offline)) or math.isclose(
            online, offline, rel_tol=1e-12, abs_tol=1e-12)
    return bool(online == offline)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_online_values_equal_training_set_values(parity_yard: Any, seed: int) -> None:
    yard = parity_yard
    rng = np.random.default_rng(seed)
    events = _events(rng, 600, 40)
    half = events.num_rows // 2
    yard.ingest(claims, events.slice(0, half))
    yard.ingest(claims, events.slice(half))  # two commits, so ties cross ingestions
    picker = random.Random(seed)
    times = sorted(BASE + timedelta(minutes=picker.randrange(0, 22 * 24 * 60))
                   for _ in range(4))
    times.append(BASE + timedelta(days=19, hours=3))  # some entities expired, some not
    compared = 0
    for at in sorted(times):
        yard.materialize("history", at=at)
        ids = picker.sample(range(45), 25)  # a few never seen
        amounts = [round(picker.uniform(1, 500), 2) for _ in ids]
        online = yard.online_features(FEATURES, {"customer_id": ids},
                                      request={"claim_amount": amounts}, at=at)
        spine = pa.table({"customer_id": pa.array(ids, pa.int64()),
                          "claim_amount": pa.array(amounts, pa.float64()),
                          "at": pa.array([at] * len(ids), STAMP)})
        offline = yard.training_set(spine, FEATURES, timestamp="at").to_arrow()
        served = online.to_dict()
        assert list(online.values) == [c for c in offline.column_names
                                       if c not in ("customer_id", "claim_amount", "at")]
        for name in online.values:
            want = offline.column(name).to_pylist()
            for row, (got, exp) in enumerate(zip(served[name], want, strict=True)):
                assert _same(got, exp), (seed, at, ids[row], name, got, exp)
                compared += 1
    assert compared > 500


def test_expired_rows_match_the_training_set_ttl(parity_yard: Any) -> None:
    yard = parity_yard
    rows = pa.table({"customer_id": pa.array([1, 1, 2], pa.int64()),
                     "ts": pa.array([BASE, BASE + timedelta(days=1), BASE], STAMP),
                     "amount": [10.0, 20.0, 30.0], "kind": ["glass", "theft", "glass"]})
    yard.ingest(claims, rows)
    at = BASE + timedelta(days=5)  # customer 2's row is exactly 5 days old: still fresh
    yard.materialize("history", at=at)
    later = at + timedelta(days=1)  # then customer 2 has expired, customer 1 is fresh
    for when, statuses in ((at, ["found", "found"]), (later, ["found", "expired"])):
        online = yard.online_features(["history:amount", "history:amount_mean_10d"],
                                      {"customer_id": [1, 2]}, at=when)
        assert online.status == statuses
        spine = pa.table({"customer_id": pa.array([1, 2], pa.int64()),
                          "at": pa.array([when, when], STAMP)})
        offline = yard.training_set(spine, ["history:amount"], timestamp="at").to_arrow()
        if when == at:
            assert online.values["amount"] == offline.column("amount").to_pylist()
        else:  # the online value was computed at `at`; the TTL is applied when read
            assert online.values["amount"] == [20.0, None]
            assert offline.column("amount").to_pylist() == [20.0, None]
        assert online.values["amount_mean_10d"] == [15.0, 30.0]  # windows stay


def test_check_skew_finds_no_skew_then_a_tampered_value(parity_yard: Any) -> None:
    import msgpack

    from modelyard.features.codec import decode

    yard = parity_yard
    yard.ingest(claims, _events(np.random.default_rng(7), 300, 30))
    yard.materialize("history", at=BASE + timedelta(days=12))
    report = yard.features.online.check_skew("history", sample=30, seed=1)
    assert report.ok and report.sampled == 30
    assert all(f.compared == 30 for f in report.features)
    store = yard.features.online.store
    key = store.keys("history@v1", limit=1)[0]
    raw = store.read([("history@v1", [key])])[0][0]
    stored = decode(raw)
    values = list(stored.values)
    values[3] = -1.0  # amount_sum_3d: a sum of positive amounts (or NaN) never is
    store.write("history@v1", [(key, raw[:16] + msgpack.packb(
        [stored.event_us, stored.snapshot_us, *values]))])
    report = yard.features.online.check_skew("history", sample=100, seed=1)
    assert not report.ok
    bad = {f.feature: f for f in report.features}["amount_sum_3d"]
    assert bad.mismatches == 1 and bad.examples[0]["key"] == key
