"""`modelyard features plan|apply|list|show|ingest|profile|forget` on a project's features.py,
on both metadata backends."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from modelyard import DataValidationError, InvalidInputError, NotFoundError, Yard

from .conftest import Invoke, run_main, sqlite_only

T0 = datetime(2025, 1, 1, tzinfo=UTC)

DEFINITIONS = '''
from modelyard import Entity, Feature, FeatureGroup, Source

customer = Entity("customer", key="customer_id", description="A policy holder")
policy = Entity("policy", key="policy_id")
visit = Entity("visit", key=["customer_id", "site"])
claims = Source.frame("claims", timestamp="event_time", schema={
    "customer_id": "int", "event_time": "timestamp", "claim_amount": "float"})
policies = Source.frame("policies", timestamp="event_time", schema={
    "policy_id": "string", "event_time": "timestamp", "premium": "float"})
claim_stats = FeatureGroup("claim_stats", entity=customer, source=claims, ttl="90d",
                           features=[
    Feature("amount", "claim_amount"),
    Feature("amount_30d_mean", "mean(claim_amount)", window="30d"),
])
policy_stats = FeatureGroup("policy_stats", entity=policy, source=policies, features=[
    Feature("premium", "premium"),
])
'''

EXTRA_FEATURE = '''    Feature("claims_90d", "count(*)", window="90d"),
])
policy_stats ='''


@pytest.fixture
def features_file(project: Path) -> Path:
    path = project / "features.py"
    path.write_text(DEFINITIONS)
    return path


@pytest.fixture
def applied(yard: Yard, features_file: Path, invoke: Invoke, store_uri: str) -> Yard:
    result = invoke("features", "apply", "--uri", store_uri)
    assert result.exit_code == 0, result.output
    return yard


def claims_frame(n: int, first: int = 0) -> pd.DataFrame:
    """``n`` clean claims: spread-out amounts, one claim per customer."""
    amounts = [12.0, 15.0, 11.0, 14.0, 13.0, 16.0, 12.5, 14.5]
    return pd.DataFrame({
        "customer_id": [first + i + 1 for i in range(n)],
        "event_time": [T0 + timedelta(days=first + i) for i in range(n)],
        "claim_amount": [amounts[i % len(amounts)] for i in range(n)],
    })


def odd_claims() -> pd.DataFrame:
    """A batch with an outlier, a copy of a column on another scale, a tiny-scaled column
    and a constant one."""
    n = 30
    amount = [100.0 + i % 7 for i in range(n)]
    amount[3] = 5000.0
    return pd.DataFrame({
        "customer_id": [i % 5 + 1 for i in range(n)],
        "event_time": [T0 + timedelta(days=i) for i in range(n)],
        "claim_amount": amount,
        "claim_cents": [a * 100 for a in amount],
        "rate": [0.0001 * (i % 3) for i in range(n)],
        "region": ["north"] * n,
    })


# --- plan and apply -----------------------------------------------------------------------


def test_plan_apply_reapply_and_update(
    invoke: Invoke, yard: Yard, features_file: Path, store_uri: str
) -> None:
    planned = invoke("features", "plan", "--uri", store_uri)
    assert planned.exit_code == 0, planned.output
    assert "+ create entity customer (v1)" in planned.output
    assert "+ create source claims (v1)" in planned.output
    assert "+ create feature group claim_stats (v1)" in planned.output
    assert "7 changes to apply." in planned.output
    assert yard.features.list_definitions() == []  # plan stores nothing

    applied = invoke("features", "apply", "--uri", store_uri)
    assert applied.exit_code == 0, applied.output
    assert "+ create feature group policy_stats (v1)" in applied.output
    assert "7 changes applied." in applied.output
    assert {(r.kind, r.name, r.version) for r in yard.features.list_definitions()} >= {
        ("entity", "visit", 1), ("source", "policies", 1), ("feature_group", "claim_stats", 1)}

    again = invoke("features", "apply", "--uri", store_uri)
    assert again.exit_code == 0, again.output
    assert "unchanged feature group claim_stats (v1)" in again.output
    assert "create" not in again.output and "update" not in again.output
    assert "Nothing to change." in again.output

    features_file.write_text(DEFINITIONS.replace("])\npolicy_stats =", EXTRA_FEATURE))
    replanned = invoke("features", "plan", "--uri", store_uri)
    assert "~ update feature group claim_stats (v1 -> v2)" in replanned.output
    assert "unchanged source claims (v1)" in replanned.output
    assert "1 change to apply." in replanned.output
    assert [r.version for r in yard.features.history("feature_group", "claim_stats")] == [1]

    updated = invoke("features", "apply", "--uri", store_uri)
    assert "~ update feature group claim_stats (v1 -> v2)" in updated.output
    assert "1 change applied." in updated.output
    assert yard.features.group("claim_stats").feature("claims_90d").window == "90d"

    shown = invoke("features", "show", "claim_stats", "--uri", store_uri)
    assert "Feature group claim_stats (v2)" in shown.output
    assert "v1, v2" in shown.output and "claims_90d" in shown.output
    first = invoke("features", "show", "claim_stats", "-v", "1", "--uri", store_uri)
    assert "Feature group claim_stats (v1)" in first.output
    assert "claims_90d" not in first.output


@sqlite_only
def test_plan_reads_the_given_files_and_says_when_there_are_none(
    invoke: Invoke, yard: Yard, project: Path, store_uri: str
) -> None:
    nothing = invoke("features", "plan", "--uri", store_uri)
    assert isinstance(nothing.exception, InvalidInputError)
    assert "no definitions to read" in nothing.exception.message
    elsewhere = project / "defs" / "claims.py"
    elsewhere.parent.mkdir()
    elsewhere.write_text(DEFINITIONS)
    planned = invoke("features", "plan", str(elsewhere.parent), "--uri", store_uri)
    assert planned.exit_code == 0, planned.output
    assert "+ create feature group policy_stats (v1)" in planned.output


# --- list and show ------------------------------------------------------------------------


def test_list_and_show_with_commits(invoke: Invoke, applied: Yard, store_uri: str) -> None:
    listed = invoke("features", "list", "--uri", store_uri)
    assert listed.exit_code == 0, listed.output
    rows = {tuple(line.split()[:3]) for line in listed.output.splitlines()}
    assert {("entity", "customer", "v1"), ("source", "claims", "v1"),
            ("feature", "group", "claim_stats")} <= rows
    assert "A policy holder" in listed.output

    empty = invoke("features", "show", "claim_stats", "--uri", store_uri)
    assert "No commits yet" in empty.output

    first = applied.ingest("claims", claims_frame(3))
    second = applied.ingest("claims", claims_frame(4, first=3))
    applied.features.forget("customer", [1, 5])
    shown = invoke("features", "show", "claim_stats", "--uri", store_uri)
    assert shown.exit_code == 0, shown.output
    assert "entity    customer (keys: customer_id)" in shown.output
    assert "source    claims (frame), timestamp event_time" in shown.output
    assert "amount_30d_mean   mean(claim_amount)   30d" in shown.output
    commits = [line.split() for line in shown.output.split("Commits of claims")[1]
               .splitlines() if line.split() and len(line.split()[0]) == 8]
    assert [(c[0], c[4], c[5]) for c in commits[1:]] == [
        (second.commit_id[:8], "ingest", "+4"), (first.commit_id[:8], "ingest", "+3")]
    assert commits[0][4:6] == ["forget", "-2"]

    newest = invoke("features", "show", "claim_stats", "-n", "1", "--uri", store_uri)
    assert second.commit_id[:8] not in newest.output
    assert "2 older commit(s) not shown" in newest.output


# --- ingest -------------------------------------------------------------------------------


def test_ingest_parquet_and_csv_files(
    invoke: Invoke, applied: Yard, project: Path, store_uri: str
) -> None:
    claims_frame(3).to_parquet(project / "claims.parquet")
    frame = claims_frame(4, first=3)
    frame["event_time"] = frame["event_time"].map(lambda t: t.isoformat())
    frame.to_csv(project / "claims.csv", index=False)

    from_parquet = invoke("features", "ingest", "claims", "claims.parquet", "--uri", store_uri)
    assert from_parquet.exit_code == 0, from_parquet.output
    assert "Committed 3 rows to claims in" in from_parquet.output
    from_csv = invoke("features", "ingest", "claim_stats", str(project / "claims.csv"),
                      "--uri", store_uri)
    assert from_csv.exit_code == 0, from_csv.output
    assert "Committed 4 rows to claims (the source of claim_stats)" in from_csv.output
    assert "modelyard features profile claims" in from_csv.output

    commits = applied.features.commits("claims")
    assert [(c.operation, c.rows) for c in commits] == [("ingest", 3), ("ingest", 4)]
    assert commits[1].commit_id[:8] in from_csv.output
    table = applied.features.tables.read("claims").to_pandas()
    assert sorted(table["customer_id"]) == list(range(1, 8))
    assert table["event_time"].dt.tz is not None


def test_a_bad_file_is_refused_whole_with_the_validation_message(
    applied: Yard, project: Path, store_uri: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (project / "bad.csv").write_text(
        "customer_id,event_time,claim_amount\n"
        "1,2025-01-01T00:00:00+00:00,10.5\n"
        ",2025-01-02T00:00:00+00:00,12\n"
        "3,2025-01-03T00:00:00+00:00,lots\n")
    code, out, err = run_main(monkeypatch, capsys, "features", "ingest", "claims", "bad.csv",
                           "--uri", store_uri)
    assert code == 1 and "Committed" not in out
    assert err.startswith("error: the batch has 2 problems")
    assert "customer_id" in err and "claim_amount" in err and "'lots'" in err
    assert "Traceback" not in err
    assert applied.features.commits("claims") == []

    (project / "broken.parquet").write_bytes(b"not parquet at all")
    code, _, err = run_main(monkeypatch, capsys, "features", "ingest", "claims",
                         "broken.parquet", "--uri", store_uri)
    assert code == 1 and err.startswith("error: cannot read broken.parquet as parquet")
    code, _, err = run_main(monkeypatch, capsys, "features", "ingest", "claims", "nowhere.csv",
                         "--uri", store_uri)
    assert code == 1 and err.startswith("error: no file at nowhere.csv")
    assert applied.features.commits("claims") == []


@sqlite_only
def test_a_bad_frame_error_is_the_library_error(
    invoke: Invoke, applied: Yard, project: Path, store_uri: str
) -> None:
    frame = claims_frame(2)
    frame["event_time"] = frame["event_time"].dt.tz_localize(None)  # naive: refused
    frame.to_parquet(project / "naive.parquet")
    result = invoke("features", "ingest", "claims", "naive.parquet", "--uri", store_uri)
    assert isinstance(result.exception, DataValidationError)
    assert "event_time" in result.exception.message
    assert applied.features.commits("claims") == []


# --- profile ------------------------------------------------------------------------------


def test_profile_shows_the_table_and_the_warnings(
    invoke: Invoke, applied: Yard, store_uri: str
) -> None:
    odd = applied.ingest("claims", odd_claims())
    result = invoke("features", "profile", "claims", "--uri", store_uri)
    assert result.exit_code == 0, result.output
    assert f"Profile of claims, commit {odd.commit_id[:8]}" in result.output
    assert "30 rows" in result.output
    header = next(line.split() for line in result.output.splitlines()
                  if line.startswith("column"))
    assert header == ["column", "type", "count", "nulls", "distinct", "min", "mean", "p50",
                      "max", "distribution"]
    rows = {line.split()[0]: line.split() for line in result.output.splitlines() if line}
    assert rows["claim_amount"][1:5] == ["double", "30", "0", "8"]
    assert rows["claim_amount"][5] == "100" and rows["claim_amount"][8] == "5000"
    assert rows["customer_id"][1:5] == ["int64", "30", "0", "5"]
    assert "north (30)" in result.output and "2025-01-30" in result.output
    warnings = result.output.split("Warnings")[1]
    assert "outliers    claim_amount: 1 row(s) outside 1.5 IQR" in warnings
    assert "scales      claim_cents spreads" in warnings and "than rate" in warnings
    assert "correlated  claim_amount ~ claim_cents: pearson +1.000" in warnings
    assert "constant    region: one value in every row" in warnings

    clean = applied.ingest("claims", claims_frame(8, first=40))
    newest = invoke("features", "profile", "claim_stats", "--uri", store_uri)
    assert f"commit {clean.commit_id[:8]}" in newest.output
    assert "Nothing flagged" in newest.output and "Warnings" not in newest.output
    chosen = invoke("features", "profile", "claims", "--commit", odd.commit_id[:10],
                    "--uri", store_uri)
    assert f"commit {odd.commit_id[:8]}" in chosen.output and "Warnings" in chosen.output


def test_profile_json(invoke: Invoke, applied: Yard, store_uri: str) -> None:
    odd = applied.ingest("claims", odd_claims())
    result = invoke("features", "profile", "claims", "--json", "--uri", store_uri)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["source"] == "claims"
    assert data["commit"]["commit_id"] == odd.commit_id
    assert data["commit"]["rows"] == 30
    assert data["profile"] == applied.features.commit_profile("claims")
    assert data["profile"]["columns"]["claim_amount"]["max"] == 5000.0
    report = data["report"]
    assert report["constant"] == ["region"]
    assert [(c["a"], c["b"]) for c in report["correlated"]] == [
        ("claim_amount", "claim_cents")]
    assert report["scale_gap"]["largest"] == "claim_cents"
    assert report["scale_gap"]["smallest"] == "rate"
    outliers = {o["column"]: o for o in report["outliers"]}
    assert outliers["claim_amount"]["iqr"] == 1


def test_profile_after_a_forget_reports_the_rows_left(
    invoke: Invoke, applied: Yard, store_uri: str
) -> None:
    odd = applied.ingest("claims", odd_claims())
    applied.features.forget("customer", [4])  # customer 4 holds the outlier (row 3)
    result = invoke("features", "profile", "claims", "--json", "--uri", store_uri)
    data = json.loads(result.output)
    assert data["commit"]["commit_id"] == odd.commit_id  # the newest ingestion, not the forget
    assert data["profile"]["rows"] == 30  # as stored at ingestion
    assert data["report"]["rows"] == 24  # on the rows still held
    assert all(o["iqr"] == 0 for o in data["report"]["outliers"])


# --- forget -------------------------------------------------------------------------------


def test_forget_converts_keys_to_the_key_type(
    invoke: Invoke, applied: Yard, store_uri: str
) -> None:
    applied.ingest("claims", claims_frame(4))
    removed = invoke("features", "forget", "customer", "1", "3", "--uri", store_uri)
    assert removed.exit_code == 0, removed.output
    assert "Removed 2 rows of 2 customer key(s)" in removed.output
    left = applied.features.tables.read("claims").to_pandas()
    assert sorted(left["customer_id"]) == [2, 4]
    spine = pd.DataFrame({"customer_id": [1, 2], "ts": [T0 + timedelta(days=5)] * 2})
    features = applied.training_set(spine, ["claim_stats:amount"], timestamp="ts").to_pandas()
    assert pd.isna(features["amount"][0]) and features["amount"][1] == 15.0

    applied.ingest("policies", pd.DataFrame({
        "policy_id": ["007", "7", "42"], "event_time": [T0] * 3, "premium": [1.0, 2.0, 3.0]}))
    text_key = invoke("features", "forget", "policy", "007", "--uri", store_uri)
    assert "Removed 1 row of 1 policy key(s)" in text_key.output
    assert sorted(applied.features.tables.read("policies")["policy_id"].to_pylist()) == [
        "42", "7"]
    assert applied.features.store.forget_log("policy")[-1]["rows_removed"] == 1


@sqlite_only
def test_forget_refuses_bad_keys_and_composite_entities(
    invoke: Invoke, applied: Yard, store_uri: str
) -> None:
    applied.ingest("claims", claims_frame(2))
    bad = invoke("features", "forget", "customer", "1", "abc", "--uri", store_uri)
    assert isinstance(bad.exception, InvalidInputError)
    assert bad.exception.message == "'abc' is not a valid customer_id (int64) for entity " \
                                    "'customer'"
    composite = invoke("features", "forget", "visit", "1", "--uri", store_uri)
    assert isinstance(composite.exception, InvalidInputError)
    assert "composite key (customer_id, site)" in composite.exception.message
    assert "yard.features.forget('visit', {'customer_id': [...], 'site': [...]})" in (
        composite.exception.message)
    assert applied.features.tables.read("claims").num_rows == 2
    assert applied.features.store.forget_log("customer") == []


def test_forget_before_any_data_types_keys_from_the_declared_schema(
    invoke: Invoke, applied: Yard, store_uri: str
) -> None:
    keys = applied.features.typed_keys("customer", ["12", "-3"])
    assert keys.column("customer_id").to_pylist() == [12, -3]
    assert str(keys.schema.field("customer_id").type) == "int64"
    result = invoke("features", "forget", "customer", "12", "--uri", store_uri)
    assert result.exit_code == 0, result.output
    assert "Removed 0 rows" in result.output


# --- unknown names ------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "message"), [
    (("show", "nope"), "no feature group named 'nope'"),
    (("profile", "nope"), "no source or feature group named 'nope' is applied"),
    (("ingest", "nope", "x.csv"), "no source or feature group named 'nope' is applied"),
    (("forget", "nope", "1"), "no entity named 'nope'"),
    (("profile", "claims"), "source 'claims' has no data yet"),
])
def test_unknown_names_are_one_clear_error(
    invoke: Invoke, applied: Yard, store_uri: str, args: tuple[str, ...], message: str
) -> None:
    result = invoke("features", *args, "--uri", store_uri)
    assert result.exit_code == 1
    assert isinstance(result.exception, NotFoundError)
    assert result.exception.message.startswith(message)


@sqlite_only
def test_an_unknown_commit_is_not_found(invoke: Invoke, applied: Yard, store_uri: str) -> None:
    applied.ingest("claims", claims_frame(2))
    result = invoke("features", "profile", "claims", "--commit", "zzzz", "--uri", store_uri)
    assert isinstance(result.exception, NotFoundError)
    assert result.exception.message == ("no ingestion of 'claims' with an id starting with "
                                        "'zzzz'")


def test_ingesting_the_same_file_again_writes_nothing(
    invoke: Invoke, applied: Yard, project: Path, store_uri: str
) -> None:
    claims_frame(3).to_parquet(project / "claims.parquet")
    first = invoke("features", "ingest", "claims", "claims.parquet", "--uri", store_uri)
    assert first.exit_code == 0, first.output
    again = invoke("features", "ingest", "claims", "claims.parquet", "--uri", store_uri)
    assert again.exit_code == 0, again.output
    commit = applied.features.commits("claims")[0]
    assert "Already committed" in again.output and commit.commit_id[:8] in again.output
    assert len(applied.features.commits("claims")) == 1
    forced = invoke("features", "ingest", "claims", "claims.parquet", "--no-idempotency",
                    "--uri", store_uri)
    assert forced.exit_code == 0 and "Committed 3 rows" in forced.output
    claims_frame(4).to_parquet(project / "claims.parquet")  # other content: another key
    other = invoke("features", "ingest", "claims", "claims.parquet", "--uri", store_uri)
    assert other.exit_code == 0 and "Committed 4 rows" in other.output
    named = invoke("features", "ingest", "claims", "claims.parquet", "--idempotency-key",
                   "nightly-1", "--uri", store_uri)
    assert named.exit_code == 0 and "Committed 4 rows" in named.output
    assert [c.rows for c in applied.features.commits("claims")] == [3, 3, 4, 4]


@sqlite_only
def test_a_key_and_no_idempotency_are_refused_together(
    applied: Yard, project: Path, store_uri: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    claims_frame(2).to_parquet(project / "claims.parquet")
    code, _, err = run_main(monkeypatch, capsys, "features", "ingest", "claims",
                            "claims.parquet", "--idempotency-key", "k", "--no-idempotency",
                            "--uri", store_uri)
    assert code != 0 and "--no-idempotency" in err
    assert applied.features.commits("claims") == []
