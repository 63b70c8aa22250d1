"""The demo's features: the definitions file, ingestion (reused or replaced), the training
set and its lineage, and point-in-time correctness checked by brute force."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

import modelyard
from modelyard import Yard
from modelyard.demo import claims_features
from modelyard.demo.data import generate
from modelyard.demo.feature_store import (
    COMMIT_TAG,
    Ingestion,
    definitions_text,
    ingest_file,
    profile_warnings,
    read_definitions,
    sources,
    write_definitions,
)
from modelyard.demo.files import DATA_FOLDER, DataFile, write_table
from modelyard.demo.training import (
    FEATURE_REFS,
    ROW_TIME,
    build_training_set,
    claims_spine,
    model_frame,
    split_bounds,
)
from modelyard.features.definitions import Entity, FeatureGroup, Source
from modelyard.features.request import RequestFeatureGroup

if TYPE_CHECKING:
    from demo.conftest import SmallDemo

DAY = pd.Timedelta(days=1)
SEVERITY_RANK = {"minor": 1, "moderate": 2, "major": 3, "total_loss": 4}


def _module_definitions() -> list[object]:
    return [v for v in vars(claims_features).values()
            if isinstance(v, (Entity, Source, FeatureGroup, RequestFeatureGroup))]


# --- the definitions file -------------------------------------------------------------------


def test_features_py_holds_the_very_definitions_of_the_demo(tmp_path: Path) -> None:
    path, backup = write_definitions(tmp_path)
    assert path == tmp_path / "features.py" and backup is None
    assert path.read_text("utf-8") == definitions_text()
    loaded = read_definitions(path)
    assert loaded == _module_definitions()
    assert {d.name for d in loaded} == {"customer", "policyholders", "claims",
                                       "customer_profile", "claim_history", "claim_timing"}
    history = next(d for d in loaded if isinstance(d, FeatureGroup)
                   and d.name == "claim_history")
    windows = {f.window for f in history.features if f.window}
    assert {"30d", "90d"} <= windows
    assert [s.name for s in sources(loaded)] == ["policyholders", "claims"]
    assert write_definitions(tmp_path) == (path, None)  # the same file: left as it is


def test_a_different_features_py_is_kept_aside(tmp_path: Path) -> None:
    (tmp_path / "features.py").write_text("# my own features\n")
    path, backup = write_definitions(tmp_path)
    assert backup == tmp_path / "features.py.bak"
    assert backup.read_text() == "# my own features\n"
    path.write_text("# edited again\n")
    _, second = write_definitions(tmp_path)
    assert second == tmp_path / "features.py.bak2"
    assert second.read_text() == "# edited again\n"
    assert path.read_text("utf-8") == definitions_text()


# --- ingestion ------------------------------------------------------------------------------


def _write_data(root: Path, customers: int, seed: int) -> dict[str, DataFile]:
    data = generate(customers, seed)
    folder = root / DATA_FOLDER
    return {"policyholders": write_table(data.policyholders, folder, "policyholders"),
            "claims": write_table(data.claims, folder, "claims")}


def _ingest_all(yard: Yard, root: Path, files: dict[str, DataFile]) -> dict[str, Ingestion]:
    definitions = read_definitions(write_definitions(root)[0])
    yard.apply(definitions)
    done = {}
    with yard.start_run("claims-demo", name="claims-demo") as run:
        run.log_params({f"data.{f.name}.sha256": f.sha256 for f in files.values()})
        for source in sources(definitions):
            done[source.name] = ingest_file(yard, "claims-demo", source, files[source.name])
            run.set_tag(COMMIT_TAG.format(source=source.name),
                        done[source.name].commit.commit_id)
    return done


def test_ingestion_is_reused_for_the_same_file_and_replaced_for_another(
        yard: Yard, project: Path) -> None:
    files = _write_data(project, 250, seed=1)
    first = _ingest_all(yard, project, files)
    claims = first["claims"]
    assert not claims.reused and claims.replaced == 0
    assert claims.commit.rows == files["claims"].rows

    again = _ingest_all(yard, project, files)  # same files: nothing new is ingested
    assert again["claims"].reused
    assert again["claims"].commit == claims.commit
    assert len(yard.features.commits("claims")) == 1

    other = _write_data(project, 300, seed=2)  # other data: the table starts afresh
    replaced = _ingest_all(yard, project, other)["claims"]
    assert not replaced.reused
    assert replaced.replaced == files["claims"].rows
    assert yard.features.tables.read("claims").num_rows == other["claims"].rows
    assert [c.commit_id for c in yard.features.commits("claims")] == [
        replaced.commit.commit_id]


def test_profile_warnings_name_columns(yard: Yard, project: Path) -> None:
    done = _ingest_all(yard, project, _write_data(project, 250, seed=3))
    report = done["claims"].report
    assert report.rows == done["claims"].commit.rows
    found = profile_warnings(report)
    assert 0 < len(found) <= 3
    assert any("claim_value" in line for line in found)
    assert all("customer_id" not in line and "claim_id" not in line for line in found)


# --- the demo's feature store, after a small run --------------------------------------------


def test_the_demo_applies_its_definitions_and_commits_both_sources(
        small_demo: SmallDemo) -> None:
    result = small_demo.result
    assert result.definitions_file == result.root / "features.py"
    assert result.definitions_file.read_text("utf-8") == definitions_text()
    with modelyard.connect(project=result.root) as yard:
        stored = {(r.kind, r.name): r.version for r in yard.features.list_definitions()}
        assert stored == {("entity", "customer"): 1, ("source", "policyholders"): 1,
                          ("source", "claims"): 1, ("feature_group", "customer_profile"): 1,
                          ("feature_group", "claim_history"): 1,
                          ("request_group", "claim_timing"): 1}
        parent = yard.get_run(result.parent_run_id)
        for name, rows in (("policyholders", small_demo.config.customers),
                           ("claims", len(small_demo.data.claims))):
            commits = yard.features.commits(name)
            assert [c.commit_id for c in commits] == [result.commits[name]]
            assert commits[0].rows == rows
            assert parent.tags[COMMIT_TAG.format(source=name)] == result.commits[name]
            assert yard.features.commit_profile(name)["rows"] == rows


def test_the_training_set_is_recorded_and_tagged_on_every_candidate(
        small_demo: SmallDemo) -> None:
    result = small_demo.result
    with modelyard.connect(project=result.root) as yard:
        record = yard.features.get_training_set(str(result.training_set_id))
        assert record.spec["commits"] == result.commits
        assert record.spec["label"] == "claim_value"
        assert record.spec["timestamp"] == ROW_TIME
        assert any(f.startswith("claim_history@v1:") for f in record.spec["features"])
        assert any(f.startswith("customer_profile@v1:") for f in record.spec["features"])
        assert len(result.candidate_run_ids) >= 3
        for run_id in result.candidate_run_ids:
            run = yard.get_run(run_id)
            assert run.tags["modelyard.training_set"] == result.training_set_id
            lineage = json.loads(yard.tracking.read_artifact(
                run_id, "modelyard/training_set.json"))
            assert lineage["training_set_id"] == result.training_set_id
        rows = int(record.spec["rows"])
        parent = yard.get_run(result.parent_run_id)
        assert rows == int(parent.params["train.rows"]) + int(parent.params["valid.rows"])


@pytest.fixture(scope="module")
def rebuilt(small_demo: SmallDemo) -> pd.DataFrame:
    """The demo's training set built again from its project, as the models took it."""
    cfg, data = small_demo.config, small_demo.data
    _, end = split_bounds(data.start, cfg.train_months, cfg.valid_months)
    with modelyard.connect(project=small_demo.result.root) as yard:
        training_set = build_training_set(yard, data.claims, end)
    assert training_set.training_set_id == small_demo.result.training_set_id  # reproducible
    return model_frame(training_set)


def test_the_spine_reads_each_claim_just_before_it_was_filed(small_demo: SmallDemo) -> None:
    claims = small_demo.data.claims
    spine = claims_spine(claims, claims["event_time"].max() + DAY)
    assert len(spine) == len(claims)
    assert (spine[ROW_TIME] < spine["event_time"]).all()
    assert (spine["event_time"] - spine[ROW_TIME] == pd.Timedelta(microseconds=1)).all()
    assert FEATURE_REFS == ("customer_profile:*", "claim_history:*", "claim_timing:*")


def _brute_force(claims: pd.DataFrame, row: pd.Series) -> dict[str, object]:
    """The window features of ``row`` from the raw claims: only the customer's claims at or
    before the row's time (strictly before the claim itself), inside each window."""
    at = row[ROW_TIME]
    own = claims[(claims["customer_id"] == row["customer_id"]) & (claims["event_time"] <= at)]
    assert (own["event_time"] < row["event_time"]).all()

    def within(days: int) -> pd.DataFrame:
        return own[own["event_time"] > at - days * DAY]

    d30, d90, d365 = within(30), within(90), within(365)
    last = own["event_time"].max() if len(own) else pd.NaT
    return {
        "claims_30d": len(d30), "claims_90d": len(d90), "claims_365d": len(d365),
        "amount_30d_mean": d30["claim_value"].mean(),
        "amount_90d_sum": d90["claim_value"].sum() if len(d90) else np.nan,
        "amount_365d_mean": d365["claim_value"].mean(),
        "amount_365d_max": d365["claim_value"].max(),
        "severity_90d_max": d90["incident_severity"].map(SEVERITY_RANK).max(),
        "serious_claims_365d": int(d365["incident_severity"].isin(
            ["major", "total_loss"]).sum()) if len(d365) else np.nan,
        "last_claim_at": last if len(own) and at - last <= 365 * DAY else pd.NaT,
    }


def test_window_features_see_only_earlier_claims(small_demo: SmallDemo,
                                                 rebuilt: pd.DataFrame) -> None:
    claims = small_demo.data.claims
    with_history = rebuilt[rebuilt["claims_365d"] > 0]
    sample = pd.concat([with_history.sample(150, random_state=0),
                        rebuilt[rebuilt["claims_365d"] == 0].sample(30, random_state=0)])
    assert (sample["claims_30d"] > 0).sum() >= 5  # short windows are exercised too
    for _, row in sample.iterrows():
        expected = _brute_force(claims, row)
        for name, value in expected.items():
            got = row[name]
            if pd.isna(value):
                assert pd.isna(got), (name, row["claim_id"], got)
            elif isinstance(value, pd.Timestamp):
                assert got == value, (name, row["claim_id"])
            else:
                assert float(got) == pytest.approx(float(value)), (name, row["claim_id"])
        since = row["days_since_last_claim"]
        last = expected["last_claim_at"]
        if isinstance(last, pd.Timestamp) and not pd.isna(last):
            assert since == pytest.approx((row["event_time"] - last) / DAY, rel=1e-12)
        else:
            assert pd.isna(since)


def test_profile_features_are_the_policy_holders_attributes(small_demo: SmallDemo,
                                                            rebuilt: pd.DataFrame) -> None:
    people = small_demo.data.policyholders.set_index("customer_id")
    columns = ["age", "region", "vehicle_type", "vehicle_age", "vehicle_value",
               "annual_mileage_km", "policy_tenure_years", "credit_band", "gender"]
    expected = people.loc[rebuilt["customer_id"], columns].reset_index(drop=True)
    pd.testing.assert_frame_equal(rebuilt[columns].reset_index(drop=True), expected,
                                  check_dtype=False)
