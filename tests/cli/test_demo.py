"""`modelyard demo` end to end, on a temporary path, as a user would run it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import modelyard
from modelyard.cli.app import app


def _demo(path: Path, *extra: str) -> str:
    result = CliRunner().invoke(app, ["demo", "--path", str(path), "--customers", "800",
                                      *extra])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def _features(path: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    monkeypatch.chdir(path)
    result = CliRunner().invoke(app, ["features", *args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def test_demo_trains_tracks_and_reruns(tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "demo-project"
    out = _demo(path, "--seed", "7", "--today", "2023-05-20")
    assert (path / "modelyard.toml").is_file()
    assert (path / "features.py").is_file()
    for name in ("policyholders", "claims"):
        assert (path / "data" / f"{name}.parquet").is_file()
    for text in ("1. Data", "2. Features", "+ create feature group claim_history",
                 "3. Ingestion", "4. Training set", "5. Candidates", "6. Best candidate",
                 "modelyard runs list -e claims-demo", "modelyard runs show",
                 "modelyard features list", "modelyard features show claim_history"):
        assert text in out, text

    with modelyard.connect(project=path) as yard:
        runs = yard.search_runs("claims-demo")
        parents = runs[runs["parent_run_id"].isna()]
        assert len(parents) == 1
        children = runs[runs["parent_run_id"] == parents["run_id"].iloc[0]]
        assert len(children) >= 3
        assert set(children["status"]) == {"finished"}
        assert children["metrics.r2"].notna().all()
        assert children["metrics.r2"].nunique() == len(children)  # models really differ
        assert (children["params.data.version"] == parents["params.data.version"].iloc[0]).all()
        best = yard.best_run("claims-demo", "r2")
        assert best.info.run_id in set(children["run_id"])
        assert best.metrics["r2"].value == children["metrics.r2"].max() > 0.5
        assert best.info.run_id in out
        first_version = parents["params.data.version"].iloc[0]
        training_set = best.tags["modelyard.training_set"]
        assert set(children["tags.modelyard.training_set"]) == {training_set}
        assert training_set[:12] in out
        commits = {s: yard.features.commits(s)[-1].commit_id
                   for s in ("policyholders", "claims")}

    # the project's features.py is what the store holds: the features commands work there
    assert "Nothing to change." in _features(path, monkeypatch, "plan")
    listed = _features(path, monkeypatch, "list")
    for name in ("customer", "policyholders", "claims", "customer_profile", "claim_history"):
        assert name in listed
    shown = _features(path, monkeypatch, "show", "claim_history")
    for text in ("claims_30d", "amount_90d_sum", "90d", commits["claims"][:8]):
        assert text in shown, text

    # a re-run starts a clean project: the earlier run's store and files are cleared; the
    # same seed on the same today (here from the environment) makes the same data
    (path / "notes.txt").write_text("kept")
    monkeypatch.setenv("MODELYARD_DEMO_TODAY", "2023-05-20")
    out = _demo(path, "--seed", "7")
    monkeypatch.delenv("MODELYARD_DEMO_TODAY")
    text = " ".join(out.split())
    assert "A clean project: an earlier demo's .modelyard" in text
    assert "Today is 2023-05-20 (set for the demo)" in text
    assert "6. Best candidate" in out and "+ create feature group claim_history" in out
    assert (path / "notes.txt").read_text() == "kept"
    with modelyard.connect(project=path) as yard:
        runs = yard.search_runs("claims-demo")
        again = {s: [c.commit_id for c in yard.features.commits(s)] for s in commits}
        versions = [v.version for v in yard.models.versions("claims-model")]
        served = yard.read_predictions("claims-model")
        metrics = yard.get_run(runs[runs["parent_run_id"].isna()]["run_id"].iloc[0]).metrics
    assert all(len(ids) == 1 and ids != [commits[s]] for s, ids in again.items())
    parents = runs[runs["parent_run_id"].isna()]
    assert len(parents) == 1  # the first run's runs are gone
    assert set(parents["params.data.version"]) == {first_version}  # same seed, same data
    assert set(parents["params.demo.today"]) == {"2023-05-20"}
    assert versions == sorted(versions) and versions[0] == 1
    live = served[~served["request_id"].str.startswith("claim-")]
    answered = metrics["serving_requests"].value + (  # the serving step's, the retraining's
        metrics["retraining_server_answers"].value if "retraining_server_answers" in metrics
        else 0)
    assert len(live) == answered < 600  # one run's live traffic, not two


def test_demo_refuses_a_folder_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("precious")
    result = CliRunner().invoke(app, ["demo", "--path", str(tmp_path), "--customers", "300"])
    assert isinstance(result.exception, modelyard.InvalidInputError)
    assert "did not make" in result.exception.message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]


def test_demo_refuses_a_malformed_today(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--path", str(tmp_path / "d"),
                                      "--today", "2024-02-30"])
    assert isinstance(result.exception, modelyard.InvalidInputError)
    assert result.exception.details["field"] == "today"
    assert not (tmp_path / "d").exists()


def test_demo_without_sklearn_says_what_to_install(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn", None)
    result = CliRunner().invoke(app, ["demo", "--path", str(tmp_path / "d")])
    assert isinstance(result.exception, modelyard.ConfigurationError)
    assert "modelyard[sklearn]" in result.exception.message
    assert not (tmp_path / "d").exists()  # refused before touching anything


def test_demo_refuses_too_few_customers(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--path", str(tmp_path / "d"),
                                      "--customers", "5"])
    assert result.exit_code == 2
    assert not (tmp_path / "d").exists()


def test_demo_has_help() -> None:
    result = CliRunner().invoke(app, ["demo", "--help"])
    assert result.exit_code == 0
    for option in ("--path", "--seed", "--customers", "--today", "MODELYARD_DEMO_TODAY"):
        assert option in result.output
    assert "clean project" in " ".join(result.output.split())
