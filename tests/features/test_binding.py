"""Feature expressions bound to their source's columns: at plan/apply where the columns are
known without reading the rows, else at the first ingestion, before anything is written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

import modelyard
from modelyard import (
    Entity,
    Feature,
    FeatureGroup,
    InvalidDefinitionError,
    Source,
    Yard,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)
customer = Entity("customer", key="customer_id")
sqlite_only = pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)
pytestmark = sqlite_only  # binding happens before any metadata is read or written


def rows(n: int = 3) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": list(range(n)),
                         "event_time": [T0 + timedelta(days=i) for i in range(n)],
                         "claim_amount": [10.0 * (i + 1) for i in range(n)],
                         "claim_kind": ["glass", "fire", "theft"][:n]})


def misspelt(source: Source) -> FeatureGroup:
    return FeatureGroup("claim_stats", entity=customer, source=source, features=[
        Feature("amount_30d_mean", "mean(claim_amout)", window="30d"),
        Feature("claims_90d", "count(*)", window="90d"),
    ])


@pytest.fixture
def parquet_source(project: Path) -> Source:
    (project / "data").mkdir()
    rows().to_parquet(project / "data" / "claims.parquet")
    return Source.parquet("data/claims.parquet", timestamp="event_time")


def test_a_misspelt_column_is_refused_at_plan_with_the_closest_name(
        yard: Yard, parquet_source: Source) -> None:
    with pytest.raises(InvalidDefinitionError) as caught:
        yard.features.plan([customer, parquet_source, misspelt(parquet_source)])
    message = caught.value.message
    assert message.startswith("feature group 'claim_stats', feature 'amount_30d_mean' uses "
                              "column 'claim_amout', which source 'claims' does not have; "
                              "did you mean 'claim_amount'?")
    assert "read from data/claims.parquet" in message and "Binder" not in message
    assert "_ingested_at" not in message  # system columns are not offered
    assert caught.value.details["columns"] == ["claim_amout"]
    assert caught.value.details["suggestion"] == "claim_amount"
    assert caught.value.__cause__ is None  # no DuckDB exception chained behind it
    with pytest.raises(InvalidDefinitionError, match="claim_amout"):
        yard.apply([customer, parquet_source, misspelt(parquet_source)])
    assert yard.features.list_definitions() == []  # nothing stored


def test_every_unknown_column_is_named_and_a_row_level_one_too(
        yard: Yard, parquet_source: Source) -> None:
    group = FeatureGroup("g", entity=customer, source=parquet_source, features=[
        Feature("ok", "claim_amount * 2"),
        Feature("ratio", "claim_amout / nb_claims + claim_amount"),
    ])
    with pytest.raises(InvalidDefinitionError) as caught:
        yard.apply([group])
    assert caught.value.details["columns"] == ["claim_amout", "nb_claims"]
    assert "feature 'ratio' uses columns 'claim_amout', 'nb_claims'" in caught.value.message
    assert "did you mean 'claim_amount' for 'claim_amout'?" in caught.value.message


def test_a_window_aggregate_must_fit_the_column_type(yard: Yard, parquet_source: Source
                                                     ) -> None:
    group = FeatureGroup("g", entity=customer, source=parquet_source, features=[
        Feature("kind_mean", "mean(claim_kind)", window="7d")])
    with pytest.raises(InvalidDefinitionError, match="mean needs numbers") as caught:
        yard.apply([group])
    assert "feature 'kind_mean'" in caught.value.message
    fine = FeatureGroup("g", entity=customer, source=parquet_source, features=[
        Feature("kinds", "count_distinct(claim_kind)", window="7d"),
        Feature("last_kind", "last(claim_kind)", window="7d"),
        Feature("amount", "CASE WHEN Claim_Amount > 5 THEN claim_amount END"),
        Feature("recent", "event_time > TIMESTAMPTZ '2025-01-02 00:00:00+00'"),
    ])
    yard.apply([fine])
    yard.ingest(fine)
    spine = pd.DataFrame({"customer_id": [1], "ts": [T0 + timedelta(days=5)]})
    got = yard.training_set(spine, ["g:*"], timestamp="ts").to_pandas()
    assert got[["kinds", "last_kind", "amount", "recent"]].iloc[0].tolist() == [
        1, "fire", 20.0, False]


def test_a_csv_source_is_bound_to_its_header(yard: Yard, project: Path) -> None:
    rows().to_csv(project / "claims.csv", index=False)
    source = Source.csv("claims.csv", timestamp="event_time")
    with pytest.raises(InvalidDefinitionError, match=r"read from claims\.csv") as caught:
        yard.features.plan([misspelt(source)])
    assert caught.value.details["suggestion"] == "claim_amount"


def test_a_source_without_a_known_schema_is_bound_at_its_first_ingestion(yard: Yard) -> None:
    pushed = Source.frame("claims", timestamp="event_time")  # no schema, no rows yet
    yard.apply([misspelt(pushed)])  # nothing to bind to yet
    with pytest.raises(InvalidDefinitionError) as caught:
        yard.ingest("claims", rows())
    assert "'claim_amout', which source 'claims' does not have; did you mean " \
           "'claim_amount'? (its columns, in this batch:" in caught.value.message
    assert yard.features.commits("claims") == []  # nothing written
    good = FeatureGroup("claim_stats", entity=customer, source=pushed, features=[
        Feature("amount_30d_mean", "mean(claim_amount)", window="30d")])
    yard.apply([good])
    yard.ingest("claims", rows())
    # the rows ingested so far now tell the columns at plan time
    with pytest.raises(InvalidDefinitionError, match="in the rows ingested so far"):
        yard.features.plan([misspelt(pushed)])
    # a later batch may lack a column earlier rows have
    yard.ingest("claims", rows().drop(columns=["claim_amount"]))
    assert len(yard.features.commits("claims")) == 2


def test_a_declared_schema_is_the_contract(yard: Yard, project: Path) -> None:
    (project / "data").mkdir()
    rows().to_parquet(project / "data" / "claims.parquet")
    declared = Source.parquet("data/claims.parquet", timestamp="event_time", schema={
        "customer_id": "int", "event_time": "timestamp", "claim_amount": "float"})
    group = FeatureGroup("g", entity=customer, source=declared,
                         features=[Feature("kind", "upper(claim_kind)")])
    with pytest.raises(InvalidDefinitionError, match="as declared: claim_amount, customer_id"):
        yard.apply([group])


def test_a_transformed_group_is_bound_to_the_transform_output_at_ingestion(
        yard: Yard, parquet_source: Source) -> None:
    @modelyard.transform
    def with_log(df: pd.DataFrame) -> pd.DataFrame:
        import numpy as np

        return df.assign(log_amount=np.log(df["claim_amount"]))

    declared = Source.frame("pushed", timestamp="event_time", schema={
        "customer_id": "int", "event_time": "timestamp", "claim_amount": "float"})
    good = FeatureGroup("logs", entity=customer, source=declared, transform=with_log,
                        features=[Feature("log_amount", "log_amount")])
    yard.apply([good])  # log_amount is not declared: the transform makes it
    bad = FeatureGroup("logs2", entity=customer, source=declared, transform=with_log,
                       features=[Feature("log_amount", "log_amonut * 2")])
    yard.apply([bad])
    with pytest.raises(InvalidDefinitionError) as caught:
        yard.ingest("pushed", rows().drop(columns=["claim_kind"]))
    assert "feature group 'logs2', feature 'log_amount' uses column 'log_amonut'" \
           in caught.value.message
    assert "did you mean 'log_amount'? (its columns, after transform 'with_log'" \
           in caught.value.message
    assert yard.features.commits("pushed") == []


def test_the_cli_says_it_in_one_line(yard: Yard, project: Path, parquet_source: Source,
                                     store_uri: str, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    from modelyard.cli.app import main

    (project / "features.py").write_text(
        "from modelyard import Entity, Feature, FeatureGroup, Source\n"
        "customer = Entity('customer', key='customer_id')\n"
        "claims = Source.parquet('data/claims.parquet', timestamp='event_time')\n"
        "stats = FeatureGroup('claim_stats', entity=customer, source=claims, features=[\n"
        "    Feature('amount_30d_mean', 'mean(claim_amout)', window='30d')])\n")
    for command in ("plan", "apply"):
        monkeypatch.setattr("sys.argv", ["modelyard", "features", command, "--uri", store_uri])
        with pytest.raises(SystemExit) as stop:
            main()
        err = capsys.readouterr().err
        assert stop.value.code != 0
        assert "did you mean 'claim_amount'?" in err and "Traceback" not in err
    assert yard.features.list_definitions() == []


def test_a_request_feature_is_bound_to_its_request_columns_and_inputs(yard: Yard) -> None:
    from modelyard import RequestFeatureGroup

    def request(expr: str) -> RequestFeatureGroup:
        return RequestFeatureGroup(
            "claim_request", request={"claim_amount": "float"},
            inputs=["claim_stats:amount_30d_mean"], features=[Feature("ratio", expr)])

    yard.features.plan([request("claim_amount / nullif(amount_30d_mean, 0)")])
    with pytest.raises(InvalidDefinitionError) as caught:
        yard.features.plan([request("claim_amout / amount_30d_mean")])
    assert caught.value.message.startswith(
        "request feature group 'claim_request', feature 'ratio' uses column 'claim_amout', "
        "which request feature group 'claim_request' does not have; did you mean "
        "'claim_amount'? (its columns, request columns and inputs: claim_amount, "
        "amount_30d_mean)")


def test_a_definition_file_error_names_the_file_and_line(project: Path, store_uri: str
                                                         ) -> None:
    from modelyard.features.discovery import load_definitions

    path = project / "features.py"
    path.write_text("from modelyard import Feature\n\n"
                    "ok = Feature('a', 'x + 1')\n"
                    "bad = Feature('b', 'sum(*)', window='7d')\n")
    with pytest.raises(InvalidDefinitionError) as caught:
        load_definitions([path])
    assert caught.value.message == f"{path}:4: window feature 'b': only count takes *"
    assert caught.value.details == {"field": "expr", "path": str(path)}


def test_a_training_set_over_a_version_stored_unbound_names_the_column(yard: Yard) -> None:
    pushed = Source.frame("claims", timestamp="event_time")
    good = FeatureGroup("claim_stats", entity=customer, source=pushed, features=[
        Feature("amount_30d_mean", "mean(claim_amount)", window="30d")])
    yard.apply([good])
    yard.ingest("claims", rows())
    yard.features.definitions.apply([misspelt(pushed)])  # the registry alone binds nothing
    spine = pd.DataFrame({"customer_id": [1], "ts": [T0 + timedelta(days=5)]})
    with pytest.raises(InvalidDefinitionError) as caught:
        yard.training_set(spine, ["claim_stats:amount_30d_mean"], timestamp="ts")
    assert caught.value.message.startswith(
        "feature group 'claim_stats', feature 'amount_30d_mean' uses column 'claim_amout', "
        "which source 'claims' does not have; did you mean 'claim_amount'? (its columns, in "
        "the stored rows:")
    assert "__w_" not in caught.value.message
