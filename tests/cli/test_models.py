"""`modelyard models ...` on a real project: every command, a refused promotion in the
report's words, a forced one, a rollback, lineage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from registry.support import MODEL, holdout, linear, mean_only, setup_features, training_set

import modelyard
from modelyard.cli.render import format_number
from modelyard.registry.gates import MetricGate, RegressionGate

from .conftest import Invoke, fits, narrow, run_main, words


@pytest.fixture
def registered(project: Path) -> Path:
    """Two versions of the model (a good one, then a mean-only one), holdout data on disk."""
    with modelyard.connect(capture_git=False, capture_packages=False) as yard:
        rows = setup_features(yard)
        ts = training_set(yard, rows)
        with yard.start_run("claims") as run:
            run.log_model(linear(ts), MODEL, training_set=ts, onnx=False)
        yard.models.register(mean_only(ts), MODEL, training_set=ts, onnx=False)
        yard.models.set_gates(MODEL, [MetricGate("r2", ">=", 0.5, data="holdout"),
                                      RegressionGate(("rmse",), data="holdout")])
    path = project / "holdout.parquet"
    holdout(rows).to_parquet(path)
    return path


def test_models_commands(registered: Path, invoke: Invoke, monkeypatch: pytest.MonkeyPatch,
                         capsys: pytest.CaptureFixture[str]) -> None:
    listed = invoke("models", "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output)[0]["latest"] == 2
    assert MODEL in invoke("models", "list").output
    versions = invoke("models", "versions", MODEL, "--json")
    assert [v["flavor"] for v in json.loads(versions.output)] == ["sklearn", "sklearn"]

    evaluated = invoke("models", "evaluate", f"{MODEL}:1", str(registered), "--dataset",
                       "holdout", "--sensitive", "gender", "--slice-by", "gender")
    assert evaluated.exit_code == 0, evaluated.output
    assert "rmse" in evaluated.output and "error_gap_mae (gender)" in evaluated.output

    promoted = invoke("models", "promote", f"{MODEL}:1", "--data", f"holdout={registered}")
    assert promoted.exit_code == 0, promoted.output
    assert "now points at version 1" in promoted.output and "pass" in promoted.output

    narrow(monkeypatch)  # piped: 80 columns; the gate table keeps numbers and bounds whole
    code, out, err = run_main(monkeypatch, capsys, "models", "promote", f"{MODEL}:2",
                              "--data", f"holdout={registered}")
    assert code == 1
    assert "FAIL" in out and "r2 >= 0.5" in out and "was not promoted" in err
    assert fits(out) and "r2=>=" not in out
    r2 = json.loads(invoke("models", "show", f"{MODEL}:2", "--json").output)[
        "evaluations"]["holdout"]["metrics"]["r2"]
    assert f"r2 = {format_number(r2)}" in out
    for command in (("list",), ("versions", MODEL), ("show", f"{MODEL}:2"),
                    ("lineage", f"{MODEL}:1")):
        shown = invoke("models", *command)
        assert shown.exit_code == 0, shown.output
        assert fits(shown.output), shown.output
    assert {MODEL, "production", "sklearn"} <= words(invoke("models", "versions", MODEL).output)
    narrow(monkeypatch, 200)

    forced = invoke("models", "promote", f"{MODEL}:2", "--force", "--reason", "hotfix")
    assert forced.exit_code == 0 and "forced" in forced.output
    back = invoke("models", "rollback", MODEL, "--reason", "too slow")
    assert back.exit_code == 0 and "from version 2 to version 1" in back.output

    history = invoke("models", "history", MODEL, "--json")
    actions = [(e["from_version"], e["to_version"], e["action"])
               for e in json.loads(history.output)]
    assert actions == [(None, 1, "promote"), (1, 2, "force"), (2, 1, "rollback")]
    assert "hotfix" in invoke("models", "history", MODEL).output

    shown = invoke("models", "show", f"{MODEL}@production", "--json")
    data = json.loads(shown.output)
    assert data["version"] == 1 and data["aliases"] == ["production"]
    assert [c["name"] for c in data["signature"]["inputs"]] == ["age", "vehicle_value"]
    table = invoke("models", "show", f"{MODEL}:2")
    assert table.exit_code == 0 and "Gate report" in table.output

    lineage = invoke("models", "lineage", f"{MODEL}:1", "--json")
    found = json.loads(lineage.output)
    assert found["training_set"]["features"] == ["profile@v1:age", "profile@v1:vehicle_value"]
    assert found["sources"][0]["name"] == "policies" and found["run"]["run_id"]
    assert "Feature groups" in invoke("models", "lineage", f"{MODEL}:1").output


def test_models_bad_input(registered: Path, monkeypatch: pytest.MonkeyPatch,
                          capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(monkeypatch, capsys, "models", "promote", f"{MODEL}:9")
    assert code == 1 and "no version 9" in err
    code, _, err = run_main(monkeypatch, capsys, "models", "promote", MODEL)
    assert code == 1 and "name the version" in err
    code, _, err = run_main(monkeypatch, capsys, "models", "show", "nope@production")
    assert code == 1 and "no model 'nope'" in err
    code, _, err = run_main(monkeypatch, capsys, "models", "promote", f"{MODEL}:1", "--data",
                            "holdout")
    assert code == 1 and "NAME=path" in err


def test_promote_run_again_shows_the_promotion_that_landed(registered: Path,
                                                            invoke: Invoke) -> None:
    first = invoke("models", "promote", f"{MODEL}:1", "--data", f"holdout={registered}")
    assert first.exit_code == 0, first.output
    again = invoke("models", "promote", f"{MODEL}:1", "--data", f"holdout={registered}")
    assert again.exit_code == 0, again.output
    assert "now points at version 1 (was nothing)" in again.output
    forced = invoke("models", "promote", f"{MODEL}:2", "--force", "--reason", "try",
                    "--idempotency-key", "k-2")
    assert forced.exit_code == 0, forced.output
    assert invoke("models", "rollback", MODEL).exit_code == 0
    # after the rollback the same command is a new promotion (another history base) ...
    fresh = invoke("models", "promote", f"{MODEL}:2", "--force", "--reason", "try")
    assert fresh.exit_code == 0 and "(was version 1)" in fresh.output
    # ... while an explicit key replays its first result
    replay = invoke("models", "promote", f"{MODEL}:2", "--force", "--reason", "try",
                    "--idempotency-key", "k-2")
    assert replay.exit_code == 0 and "(was version 1)" in replay.output
    with modelyard.connect() as yard:
        actions = [(e.from_version, e.to_version) for e in yard.models.history(MODEL)]
    assert actions == [(None, 1), (1, 2), (2, 1), (1, 2)]


def test_models_reproduce(project: Path, invoke: Invoke, monkeypatch: pytest.MonkeyPatch,
                          capsys: pytest.CaptureFixture[str]) -> None:
    from tests.pipelines.support import REPRODUCIBLE, write

    with modelyard.connect(capture_git=False, capture_packages=False) as yard:
        rows = setup_features(yard)
        write(project, REPRODUCIBLE.replace('"seed": 7', '"seed": None'))
        yard.pipelines.apply()
        assert yard.pipelines.run("claims_fit").status == "succeeded"
        yard.models.register(mean_only(training_set(yard, rows)), MODEL, onnx=False,
                             input_example=holdout(rows)[["age", "vehicle_value"]])
    differs = invoke("models", "reproduce", f"{MODEL}:1", "--rtol", "1e-3")
    assert differs.exit_code == 1, differs.output
    assert "does NOT match within rtol=0.001" in differs.output
    shown = json.loads(invoke("models", "reproduce", f"{MODEL}:1", "--json").output)
    assert shown["matches"] is False and shown["max_abs_diff"] > 0
    assert shown["pipeline"] == "claims_fit" and shown["data"] == "training set"
    code, _, err = run_main(monkeypatch, capsys, "models", "reproduce", f"{MODEL}:2")
    assert code != 0 and "was not produced by a pipeline" in err and "Traceback" not in err
