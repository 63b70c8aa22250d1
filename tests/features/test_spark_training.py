"""Training sets through the public API with ``engine = "sc://..."``: the Spark Connect
server (Sail) reads the project's Delta tables and returns what the DuckDB engine returns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

import modelyard
from modelyard import ConfigurationError, Entity, Feature, FeatureGroup, Source

pytestmark = pytest.mark.spark

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


customer = Entity("customer", key="customer_id")
claims = Source.frame("claims", timestamp="event_time",
                      schema={"customer_id": "int", "event_time": "timestamp",
                              "claim_amount": "float", "kind": "string"})
stats = FeatureGroup("claim_stats", entity=customer, source=claims, ttl="60d", features=[
    Feature("amount", "claim_amount"),
    Feature("amount_x2", "claim_amount * 2"),
    Feature("big", "CASE WHEN claim_amount > 15 THEN upper(kind) ELSE 'small' END"),
    Feature("amount_7d_sum", "sum(claim_amount)", window="7d"),
    Feature("amount_30d_std", "std(claim_amount)", window="30d"),
    Feature("kinds_30d", "count_distinct(kind)", window="30d"),
    Feature("last_kind", "last(kind)", window="30d"),
    Feature("claims_30d", "count(*)", window="30d"),
])


def test_training_set_on_spark_equals_duckdb(project: Path, spark_remote: str) -> None:
    rows = pd.DataFrame({
        "customer_id": [1, 1, 1, 2, 1, 1],
        "event_time": [day(0), day(5), day(9), day(3), day(9), day(12)],
        "claim_amount": [10.0, 20.0, 40.0, 7.0, 30.0, None],
        "kind": ["a", "b", "b", "c", "a", None],
    })
    spine = pd.DataFrame({"customer_id": [1, 2, 1, 3, 1, 1, 2],
                          "ts": [day(9), day(1), day(5), day(4), day(100), day(12.5), day(4)]})
    with modelyard.connect() as yard:
        yard.apply([customer, claims, stats])
        yard.ingest("claims", rows.iloc[:4])
        cut = datetime.now(UTC)
        yard.ingest("claims", rows.iloc[4:])
        local = yard.training_set(spine, ["claim_stats:*"], timestamp="ts")
        then = yard.training_set(spine, ["claim_stats:*"], timestamp="ts", as_of=cut)
    with modelyard.connect(engine=spark_remote) as yard:
        assert yard.settings.engine == spark_remote
        remote = yard.training_set(spine, ["claim_stats:*"], timestamp="ts")
        remote_then = yard.training_set(spine, ["claim_stats:*"], timestamp="ts", as_of=cut)
    assert remote.training_set_id == local.training_set_id
    assert remote.table.schema == local.table.schema
    pd.testing.assert_frame_equal(remote.to_pandas(), local.to_pandas())
    pd.testing.assert_frame_equal(remote_then.to_pandas(), then.to_pandas())
    frame = remote.to_pandas()
    # day 9 has two rows of different ingestions: the later one (30.0) wins
    assert frame["amount"][0] == 30.0 and frame["big"][0] == "A"
    assert frame["claims_30d"][0] == 4 and frame["kinds_30d"][0] == 2
    assert frame["last_kind"][5] == "a"  # day 12's row has no kind
    assert remote_then.to_pandas()["amount"][0] == 40.0  # before the second ingestion


def test_engine_setting_is_checked(project: Path) -> None:
    with modelyard.connect(engine="spark") as yard, \
            pytest.raises(ConfigurationError, match="sc://host:15002"):
        yard.features.engine  # noqa: B018
