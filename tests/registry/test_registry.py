"""The registry end to end on SQLite and PostgreSQL: registering from a run with lineage,
hash-checked loading, aliases and rollback, gates that refuse, forced promotions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from modelyard import Yard
from modelyard.errors import (
    ArtifactIntegrityError,
    ConflictError,
    GateFailedError,
    InvalidInputError,
    NotFoundError,
)
from modelyard.registry.gates import (
    BehaviourGate,
    FairnessGate,
    MetricGate,
    RegressionGate,
    SignatureGate,
)
from modelyard.registry.service import ModelLibraryWarning

from .support import (
    INPUTS,
    MODEL,
    holdout,
    linear,
    mean_only,
    setup_features,
    training_set,
)


@pytest.fixture
def trained(yard: Yard) -> dict[str, Any]:
    rows = setup_features(yard)
    ts = training_set(yard, rows)
    with yard.start_run("claims", name="linear") as run:
        run.log_params({"model": "linear"})
        model = linear(ts)
        run.log_metrics({"r2": 0.9})
        first = run.log_model(model, MODEL, training_set=ts, onnx=False)
    return {"rows": rows, "ts": ts, "model": model, "first": first, "run": run}


@pytest.mark.over_rest
def test_log_model_records_signature_lineage_and_loads_back(yard: Yard,
                                                            trained: dict[str, Any]) -> None:
    first, ts = trained["first"], trained["ts"]
    assert (first.name, first.version, first.flavor) == (MODEL, 1, "sklearn")
    assert first.run_id == trained["run"].run_id
    assert first.training_set_id == ts.training_set_id
    signature = yard.models.signature(f"{MODEL}:1")
    assert signature is not None and signature.input_names == INPUTS
    loaded = yard.models.load(f"{MODEL}:1")
    frame = ts.to_pandas()[INPUTS]
    assert np.allclose(loaded.predict(frame), trained["model"].predict(frame))
    assert yard.models.load(MODEL).predict(frame[:3]).shape == (3,)  # newest version

    lineage = yard.models.lineage(MODEL, 1)
    assert lineage.run is not None and lineage.run["params"] == {"model": "linear"}
    assert lineage.run["metrics"] == {"r2": 0.9}
    assert lineage.training_set is not None
    assert lineage.training_set["features"] == ["profile@v1:age", "profile@v1:vehicle_value"]
    assert [g["name"] for g in lineage.feature_groups] == ["profile"]
    assert lineage.feature_groups[0]["source"] == "policies"
    (source,) = lineage.sources
    assert source["name"] == "policies" and source["rows"] == len(trained["rows"])

    rebuilt = yard.models.rebuild_training_set(MODEL, 1)
    assert rebuilt.to_arrow().equals(ts.to_arrow())
    yard.ingest("policies", trained["rows"].drop(columns=["gender"]).assign(age=1.0))
    again = yard.models.rebuild_training_set(MODEL, 1)  # later data does not leak in
    assert again.to_arrow().equals(ts.to_arrow())


def test_a_tampered_artifact_is_refused(yard: Yard, trained: dict[str, Any]) -> None:
    sha = trained["first"].artifact_sha256
    blob: Path = yard.tracking.artifacts._path(sha)  # type: ignore[attr-defined]
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.chmod(0o644)
    blob.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError, match=sha):
        yard.models.load(f"{MODEL}:1")


def test_loading_with_other_library_versions_warns(yard: Yard, trained: dict[str, Any]
                                                   ) -> None:
    from modelyard.backends.metadata.sql import tables as t

    record = trained["first"]
    spec = dict(record.spec, libraries={**record.spec["libraries"], "scikit-learn": "0.1.0"})
    with yard.models.store.engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(sa.update(t.model_versions).where(
            t.model_versions.c.name == MODEL).values(spec=__import__("json").dumps(spec)))
    with pytest.warns(ModelLibraryWarning, match="scikit-learn 0.1.0"):
        yard.models.load(f"{MODEL}:1")


@pytest.mark.over_rest(server=True)
def test_aliases_history_and_rollback(yard: Yard, trained: dict[str, Any]) -> None:
    second = yard.models.register(linear(trained["ts"]), MODEL, training_set=trained["ts"],
                                  onnx=False)
    assert second.version == 2
    yard.models.promote(MODEL, 1, reason="first release")
    done = yard.models.promote(MODEL, 2, reason="retrained")
    assert (done.previous, done.version, done.forced) == (1, 2, False)
    assert yard.models.get_version(f"{MODEL}@production").version == 2
    with pytest.raises(ConflictError, match="already holds"):
        yard.models.promote(MODEL, 2)
    back = yard.models.rollback(MODEL, reason="bad release")
    assert (back.from_version, back.to_version) == (2, 1)
    assert yard.models.get_version(f"{MODEL}@production").version == 1
    events = yard.models.history(MODEL, "production")
    assert [(e.from_version, e.to_version, e.action) for e in events] == [
        (None, 1, "promote"), (1, 2, "promote"), (2, 1, "rollback")]
    assert events[-1].reason == "bad release" and events[-1].actor
    with pytest.raises(NotFoundError, match="no earlier holder"):
        yard.models.rollback(MODEL)
    yard.models.promote(MODEL, 2, alias="staging")
    assert yard.models.aliases(MODEL) == {"production": 1, "staging": 2}


@pytest.mark.over_rest
def test_gates_refuse_and_force_is_recorded(yard: Yard, trained: dict[str, Any]) -> None:
    data = {"holdout": holdout(trained["rows"])}
    yard.models.set_gates(MODEL, [MetricGate("r2", ">=", 0.5, data="holdout"),
                                  RegressionGate(("rmse",), max_drop=0.0, data="holdout"),
                                  SignatureGate()])
    yard.models.promote(MODEL, 1, data=data)
    worse = yard.models.register(mean_only(trained["ts"]), MODEL,
                                 training_set=trained["ts"], onnx=False)
    with pytest.raises(GateFailedError) as refused:
        yard.models.promote(MODEL, worse.version, data=data)
    failed = refused.value.details["failed"]
    assert any("r2" in name for name in failed) and any("rmse" in name for name in failed)
    report = refused.value.details["report"]
    measured = {r["gate"]: r["measured"] for r in report["results"]}
    assert any(m.get("r2") is not None and m["r2"] < 0.5 for m in measured.values())
    assert yard.models.get_version(f"{MODEL}@production").version == 1
    (stored,) = yard.models.store.gate_reports(MODEL, worse.version)
    assert not stored.passed and not stored.forced

    with pytest.raises(InvalidInputError, match="reason"):
        yard.models.promote(MODEL, worse.version, force=True)
    forced = yard.models.promote(MODEL, worse.version, force=True, reason="hotfix")
    assert forced.forced and not forced.report.passed
    last = yard.models.history(MODEL, "production")[-1]
    assert (last.action, last.reason, last.to_version) == ("force", "hotfix", worse.version)


def test_fairness_behaviour_and_signature_gates(yard: Yard, trained: dict[str, Any]) -> None:
    data = {"default": holdout(trained["rows"])}
    yard.models.promote(MODEL, 1)
    candidate = yard.models.register(linear(trained["ts"]), MODEL,
                                     training_set=trained["ts"], onnx=False)
    with pytest.raises(GateFailedError, match="gender"):
        yard.models.promote(MODEL, candidate.version, data=data,
                            gates=[FairnessGate("gender", max_error_gap=5.0)])

    def never_negative(model: Any) -> None:
        frame = holdout(trained["rows"])[INPUTS]
        assert (model.predict(frame) > -1e9).all()

    def refuses_zero_age(model: Any) -> None:
        raise AssertionError("a driver aged 0 got a price")

    with pytest.raises(GateFailedError, match="a driver aged 0"):
        yard.models.promote(MODEL, candidate.version,
                            gates=[BehaviourGate(never_negative), BehaviourGate(refuses_zero_age)])
    done = yard.models.promote(MODEL, candidate.version, data=data, gates=[
        FairnessGate("gender", max_error_gap=80.0), BehaviourGate(never_negative)])
    assert done.report.passed and len(done.report.results) == 2

    from sklearn.linear_model import LinearRegression

    frame = trained["ts"].to_pandas()
    narrower = LinearRegression().fit(frame[["age"]], frame["cost"])
    other = yard.models.register(narrower, MODEL, input_example=frame[["age"]], onnx=False)
    moved = frame.rename(columns={"age": "driver_age"})
    renamed = yard.models.register(LinearRegression().fit(moved[["driver_age"]], moved["cost"]),
                                   MODEL, input_example=moved[["driver_age"]], onnx=False)
    yard.models.promote(MODEL, other.version, alias="narrow")
    with pytest.raises(GateFailedError, match="signature"):
        yard.models.promote(MODEL, renamed.version, alias="narrow", gates=[SignatureGate()])


@pytest.mark.over_rest
def test_bad_input_gets_clear_errors(yard: Yard, trained: dict[str, Any]) -> None:
    with pytest.raises(NotFoundError, match="no model 'nope'"):
        yard.models.promote("nope", 1)
    with pytest.raises(NotFoundError, match="no version 7"):
        yard.models.promote(MODEL, 7)
    with pytest.raises(InvalidInputError, match="object"):
        yard.models.register(object(), MODEL)
    with pytest.raises(InvalidInputError, match="vehicle_value"):
        yard.models.evaluate(f"{MODEL}:1", holdout(trained["rows"]).drop(
            columns=["vehicle_value"]))
    with pytest.raises(InvalidInputError, match="no_such_metric"):
        MetricGate("no_such_metric", ">=", 1.0)
    with pytest.raises(InvalidInputError, match="religion"):
        yard.models.evaluate(f"{MODEL}:1", holdout(trained["rows"]), sensitive="religion")
    with pytest.raises(InvalidInputError, match="model name"):
        yard.models.register(trained["model"], "bad name!")
    with pytest.raises(InvalidInputError, match="alias"):
        yard.models.promote(MODEL, 1, alias="not an alias")


@pytest.mark.over_rest
def test_evaluate_stores_metrics_slices_and_plots(yard: Yard, trained: dict[str, Any]) -> None:
    result = yard.models.evaluate(f"{MODEL}:1", holdout(trained["rows"]), dataset="holdout",
                                  slice_by="gender", sensitive="gender")
    assert result.task == "regression" and {"rmse", "mae", "r2"} <= set(result.metrics)
    assert set(result.slices["gender"]) == {"f", "m"}
    (stored,) = yard.models.store.evaluations(MODEL, 1)
    assert stored.dataset == "holdout"
    assert stored.evaluation["fairness"]["gender"]["error_gap_mae"] > 10
    assert stored.plots and all(yard.tracking.artifacts.get_bytes(sha).startswith(b"\x89PNG")
                                for sha in stored.plots.values())


def test_gates_declared_in_the_project_file_apply(yard: Yard, trained: dict[str, Any],
                                                  project: Path) -> None:
    with (project / "modelyard.toml").open("a") as fh:
        fh.write('\n[models.claims-model.gates]\nmetrics = ["r2 >= 0.5 on holdout"]\n'
                 'no_regression = { metrics = ["rmse"], max_relative_drop = 0.02, '
                 'data = "holdout" }\n')
    data = {"holdout": holdout(trained["rows"])}
    yard.models.promote(MODEL, 1, data=data)
    worse = yard.models.register(mean_only(trained["ts"]), MODEL,
                                 training_set=trained["ts"], onnx=False)
    with pytest.raises(GateFailedError) as refused:
        yard.models.promote(MODEL, worse.version, data=data)
    assert len(refused.value.details["failed"]) == 2


@pytest.mark.over_rest
def test_an_onnx_twin_is_kept_when_it_predicts_the_same(yard: Yard,
                                                        trained: dict[str, Any]) -> None:
    version = yard.models.register(trained["model"], MODEL, training_set=trained["ts"])
    assert version.spec["onnx"]["status"] == "ok" and version.onnx_sha256
    twin = yard.models.load_onnx(MODEL, version.version)
    frame = trained["ts"].to_pandas()[INPUTS]
    assert np.allclose(np.ravel(twin.predict(frame)), trained["model"].predict(frame),
                       rtol=1e-4, atol=1e-3)
    with pytest.raises(NotFoundError, match="no ONNX twin"):
        yard.models.load_onnx(MODEL, 1)  # registered with onnx=False
