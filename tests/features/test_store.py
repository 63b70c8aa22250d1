"""The feature store end to end through the public API, on SQLite and PostgreSQL metadata;
the tests on ingested claims run with the offline tables on the local disk and in S3."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

import modelyard
from modelyard import (
    DataValidationError,
    Entity,
    Feature,
    FeatureGroup,
    InvalidDefinitionError,
    InvalidInputError,
    NotFoundError,
    Source,
    Yard,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


customer = Entity("customer", key="customer_id")
claims = Source.frame("claims", timestamp="event_time",
                      schema={"customer_id": "int", "event_time": "timestamp",
                              "claim_amount": "float"})
stats = FeatureGroup("claim_stats", entity=customer, source=claims, ttl="60d", features=[
    Feature("amount", "claim_amount"),
    Feature("amount_x2", "claim_amount * 2"),
    Feature("amount_7d_sum", "sum(claim_amount)", window="7d"),
    Feature("claims_30d", "count(*)", window="30d"),
])


def claims_frame(rows: list[tuple[int, datetime, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["customer_id", "event_time", "claim_amount"])


def spine(rows: list[tuple[int, datetime]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["customer_id", "ts"])


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def fyard(request: pytest.FixtureRequest, yard: Yard, store_uri: str) -> Iterator[Yard]:
    """claim_stats applied and four claims ingested, in the project's offline folder or in
    an S3 bucket of its own."""
    made = yard
    if request.param == "s3":
        bucket = request.getfixturevalue("s3_bucket")
        made = modelyard.connect(store_uri, offline_uri=f"s3://{bucket}/offline",
                                 capture_packages=False, capture_git=False)
    try:
        made.apply([customer, claims, stats])
        made.ingest("claims", claims_frame([
            (1, day(0), 10.0), (1, day(5), 20.0), (1, day(9), 40.0), (2, day(3), 7.0),
        ]))
        yield made
    finally:
        if made is not yard:
            made.close()


def test_apply_versions_and_plan(yard: Yard) -> None:
    first = yard.apply([stats])
    assert [(c.kind, c.name, c.action, c.version) for c in first] == [
        ("entity", "customer", "create", 1), ("source", "claims", "create", 1),
        ("feature_group", "claim_stats", "create", 1)]
    assert all(c.action == "unchanged" for c in yard.apply([stats]))  # re-apply: no-op
    changed = FeatureGroup("claim_stats", entity=customer, source=claims, ttl="60d",
                           features=[*stats.features, Feature("big", "claim_amount > 100")])
    plan = yard.features.plan([changed])
    assert [c.action for c in plan] == ["unchanged", "unchanged", "update"]
    assert yard.features.group("claim_stats").features == stats.features  # plan stored nothing
    applied = yard.apply([changed])
    assert applied[-1].version == 2 and applied[-1].previous == 1
    assert [f.name for f in yard.features.group("claim_stats", 1).features] == [
        f.name for f in stats.features]
    assert yard.features.group("claim_stats").feature("big").expr == "claim_amount > 100"
    assert [r.version for r in yard.features.history("feature_group", "claim_stats")] == [1, 2]


@pytest.mark.parametrize("window", ["7 days", "-3d", "0d", "3", "d"])
def test_bad_window_strings(window: str) -> None:
    with pytest.raises(InvalidDefinitionError, match="window"):
        Feature("f", "sum(x)", window=window)


def test_bad_definitions(yard: Yard) -> None:
    with pytest.raises(InvalidDefinitionError, match="aggregate"):
        Feature("f", "claim_amount + 1", window="7d")
    with pytest.raises(InvalidDefinitionError, match="only count"):
        Feature("f", "sum(*)", window="7d")
    broken = FeatureGroup("g", entity=customer, source=claims,
                          features=[Feature("f", "claim_amount * ")])
    with pytest.raises(InvalidDefinitionError, match="does not parse"):
        yard.apply([broken])
    unknown = FeatureGroup("g", entity=customer, source=claims,
                           features=[Feature("f", "no_such_column + 1")])
    with pytest.raises(InvalidDefinitionError, match="uses column 'no_such_column', which"):
        yard.apply([unknown])
    assert yard.features.list_definitions() == []  # nothing applied from a failed apply


@pytest.mark.parametrize("expr", ["sum(claim_amount)", "count(*)",
                                  "claim_amount - lag(claim_amount) OVER (ORDER BY event_time)",
                                  "row_number() OVER ()"])
@pytest.mark.parametrize("declared", [True, False])
def test_a_feature_expression_must_be_row_level(yard: Yard, expr: str, declared: bool) -> None:
    source = claims if declared else Source.frame("loose", timestamp="event_time")
    group = FeatureGroup("g", entity=customer, source=source, features=[Feature("f", expr)])
    with pytest.raises(InvalidDefinitionError, match="computed from one row"):
        yard.apply([group])
    fine = FeatureGroup("g", entity=customer, source=source,
                        features=[Feature("f", "CASE WHEN claim_amount > 5 THEN 1 END")])
    yard.apply([fine])


def test_training_set_point_in_time(fyard: Yard) -> None:
    rows = spine([(1, day(9)), (2, day(1)), (1, day(5)), (3, day(4)), (1, day(100)),
                  (1, day(4.5))])
    ts = fyard.training_set(rows, ["claim_stats:*"], timestamp="ts")
    df = ts.to_pandas()
    assert list(df["customer_id"]) == [1, 2, 1, 3, 1, 1]  # spine order kept
    assert list(df["amount"][:3]) == [40.0, None, 20.0] or (
        df["amount"][0] == 40.0 and pd.isna(df["amount"][1]) and df["amount"][2] == 20.0)
    assert df["amount_x2"][0] == 80.0
    assert df["amount_7d_sum"][0] == 60.0  # day 5 and day 9; day 0 is outside 7 days
    assert df["claims_30d"][0] == 3
    assert pd.isna(df["amount"][3]) and df["claims_30d"][3] == 0  # no history
    assert pd.isna(df["amount"][4])  # older than the 60 day TTL
    assert df["amount"][5] == 10.0  # day 5 is in the future of day 4.5
    assert len(ts) == 6 and ts.features[0] == "claim_stats@v1:amount"


def test_training_set_lineage_and_as_of(fyard: Yard, tmp_path: Path) -> None:
    rows = spine([(1, day(20))])
    before = fyard.training_set(rows, ["claim_stats:amount"], timestamp="ts")
    again = fyard.training_set(rows, ["claim_stats:amount"], timestamp="ts")
    assert before.training_set_id == again.training_set_id
    cut = datetime.now(UTC)
    fyard.ingest("claims", claims_frame([(1, day(15), 99.0)]))  # a late-arriving row
    after = fyard.training_set(rows, ["claim_stats:amount"], timestamp="ts")
    assert after.to_pandas()["amount"][0] == 99.0
    assert after.training_set_id != before.training_set_id
    then = fyard.training_set(rows, ["claim_stats:amount"], timestamp="ts", as_of=cut)
    assert then.to_pandas()["amount"][0] == 40.0  # what was known at `cut`
    record = fyard.features.get_training_set(after.training_set_id)
    assert record.spec["features"] == ["claim_stats@v1:amount"]
    assert record.spec["commits"]["claims"] == fyard.features.commits("claims")[-1].commit_id
    with fyard.start_run("pit") as run:
        run.log_training_set(after)
    assert fyard.get_run(run.run_id).tags["modelyard.training_set"] == after.training_set_id


def test_bad_training_set_requests(fyard: Yard) -> None:
    good = spine([(1, day(9))])
    with pytest.raises(NotFoundError, match="no feature 'nope'"):
        fyard.training_set(good, ["claim_stats:nope"], timestamp="ts")
    with pytest.raises(NotFoundError):
        fyard.training_set(good, ["no_group:*"], timestamp="ts")
    with pytest.raises(InvalidInputError, match="not valid"):
        fyard.training_set(good, ["claim_stats"], timestamp="ts")
    with pytest.raises(InvalidInputError, match="timestamp"):
        fyard.training_set(good[["customer_id"]], ["claim_stats:*"])
    naive = pd.DataFrame({"customer_id": [1], "ts": [datetime(2025, 1, 9)]})
    with pytest.raises(InvalidInputError, match="naive"):
        fyard.training_set(naive, ["claim_stats:*"], timestamp="ts")
    wrong_type = pd.DataFrame({"customer_id": ["1"], "ts": [day(9)]})
    with pytest.raises(InvalidInputError, match="customer_id"):
        fyard.training_set(wrong_type, ["claim_stats:*"], timestamp="ts")
    with pytest.raises(InvalidInputError, match="key column"):
        fyard.training_set(pd.DataFrame({"ts": [day(9)]}), ["claim_stats:*"], timestamp="ts")


def test_a_bad_batch_is_refused_whole(fyard: Yard) -> None:
    before = fyard.features.commits("claims")
    bad = claims_frame([(1, day(30), 1.0), (None, day(31), 2.0)])  # type: ignore[list-item]
    with pytest.raises(DataValidationError, match="customer_id"):
        fyard.ingest("claims", bad)
    naive = pd.DataFrame({"customer_id": [1], "event_time": [datetime(2025, 2, 1)],
                          "claim_amount": [1.0]})
    with pytest.raises(DataValidationError, match="event_time"):
        fyard.ingest("claims", naive)
    assert fyard.features.commits("claims") == before


def test_profile_stored_per_commit(fyard: Yard) -> None:
    profile = fyard.features.commit_profile("claims")
    assert profile  # stored at ingestion, for monitoring to use as the reference
    assert "claim_amount" in str(profile)


def test_period_without_spine(fyard: Yard) -> None:
    ts = fyard.training_set(features=["claim_stats:amount"], start=day(0), end=day(6))
    df = ts.to_pandas()
    assert sorted(zip(df["customer_id"], df["amount"], strict=True)) == [
        (1, 10.0), (1, 20.0), (2, 7.0)]


def test_forget_deletes_everywhere(fyard: Yard) -> None:
    removed = fyard.features.forget("customer", [1])
    assert removed == 3
    df = fyard.training_set(spine([(1, day(9)), (2, day(9))]), ["claim_stats:amount"],
                            timestamp="ts").to_pandas()
    assert pd.isna(df["amount"][0]) and df["amount"][1] == 7.0
    log = fyard.features.store.forget_log("customer")
    assert log[-1]["rows_removed"] == 3 and log[-1]["details"]["sources"] == {"claims": 3}


def test_file_source_and_transform(yard: Yard, project: Path) -> None:
    data = claims_frame([(1, day(0), 10.0), (1, day(2), 30.0)])
    (project / "data").mkdir()
    data.to_parquet(project / "data" / "claims.parquet")
    files = Source.parquet("data/claims.parquet", timestamp="event_time", name="claim_files")

    @modelyard.transform
    def with_log_amount(df: pd.DataFrame) -> pd.DataFrame:
        import numpy as np

        return df.assign(log_amount=np.log(df["claim_amount"]))

    group = FeatureGroup("claim_logs", entity=customer, source=files,
                         transform=with_log_amount,
                         features=[Feature("log_amount", "log_amount")])
    yard.apply([group])
    commit = yard.ingest(group)
    assert commit.rows == 2
    df = yard.training_set(spine([(1, day(1)), (1, day(3))]), ["claim_logs:log_amount"],
                           timestamp="ts").to_pandas()
    assert df["log_amount"].tolist() == pytest.approx([math.log(10.0), math.log(30.0)])
    stored = yard.features.group("claim_logs").transform
    assert stored is not None and "np.log" in stored.code


def test_declared_expectations_block_a_bad_batch(yard: Yard) -> None:
    checked = FeatureGroup("checked", entity=customer, source=claims, features=[
        Feature("amount", "claim_amount", min=0, max=1000, not_null=True),
        Feature("kind", "CASE WHEN claim_amount > 500 THEN 'big' ELSE 'small' END",
                allowed=["big", "small"]),
    ])
    yard.apply([checked])
    yard.ingest("claims", claims_frame([(1, day(0), 10.0), (2, day(1), 900.0)]))
    before = yard.features.commits("claims")
    with pytest.raises(DataValidationError, match="amount") as caught:
        yard.ingest("claims", claims_frame([(1, day(2), 5.0), (3, day(2), -4.0),
                                            (4, day(3), 2000.0)]))
    assert "2" in caught.value.message  # two rows out of range
    assert yard.features.commits("claims") == before  # refused whole
    assert yard.features.group("checked").feature("amount").expect == (
        ("range", (0, 1000)), ("not_null", True))
    with pytest.raises(InvalidDefinitionError, match="row-level"):
        Feature("w", "sum(claim_amount)", window="7d", min=0)


def test_training_set_outputs(fyard: Yard) -> None:
    import polars as pl
    import pyarrow as pa

    ts = fyard.training_set(spine([(1, day(9)), (2, day(9))]), ["claim_stats:amount"],
                            timestamp="ts")
    arrow = ts.to_arrow()
    assert isinstance(arrow, pa.Table) and arrow.column_names == ["customer_id", "ts", "amount"]
    assert arrow.schema.field("ts").type.tz == "UTC"
    frame = ts.to_polars()
    assert isinstance(frame, pl.DataFrame) and frame["amount"].to_list() == [40.0, 7.0]
    assert ts.to_pandas()["amount"].tolist() == [40.0, 7.0]


def test_as_of_a_commit_id(fyard: Yard) -> None:
    first = fyard.features.commits("claims")[-1]
    fyard.ingest("claims", claims_frame([(1, day(15), 99.0)]))
    rows = spine([(1, day(20))])
    then = fyard.training_set(rows, ["claim_stats:amount"], timestamp="ts",
                              as_of=first.commit_id)
    assert then.to_pandas()["amount"][0] == 40.0  # the later commit is not seen
    assert then.as_of is not None
    with pytest.raises(InvalidInputError, match="neither an ISO date-time nor"):
        fyard.training_set(rows, ["claim_stats:amount"], timestamp="ts", as_of="nope")


def test_sql_source(yard: Yard, store_uri: str, tmp_path: Path) -> None:
    import sqlalchemy as sa

    external = (store_uri if store_uri.startswith("postgresql")
                else f"sqlite:///{tmp_path / 'external.db'}")
    engine = sa.create_engine(external)
    stamp = "TIMESTAMPTZ" if external.startswith("postgresql") else "TEXT"
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE ext_claims (customer_id INTEGER, "
                             f"event_time {stamp}, claim_amount DOUBLE PRECISION)"))
        conn.execute(sa.text("INSERT INTO ext_claims VALUES "
                             "(1, '2025-01-01T00:00:00+00:00', 5.0), "
                             "(1, '2025-01-03T00:00:00+00:00', 7.0)"))
    engine.dispose()
    source = Source.sql("SELECT * FROM ext_claims WHERE claim_amount > 0", external,
                        timestamp="event_time", name="ext_claims",
                        schema={"customer_id": "int", "event_time": "timestamp",
                                "claim_amount": "float"})
    group = FeatureGroup("ext_stats", entity=customer, source=source,
                         features=[Feature("total_7d", "sum(claim_amount)", window="7d")])
    yard.apply([group])
    assert yard.ingest("ext_stats").rows == 2
    df = yard.training_set(spine([(1, day(1)), (1, day(3))]), ["ext_stats:total_7d"],
                           timestamp="ts").to_pandas()
    assert df["total_7d"].tolist() == [5.0, 12.0]
