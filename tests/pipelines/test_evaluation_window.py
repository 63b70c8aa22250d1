"""The evaluation window a pipeline declares: champion and challenger are scored on the
same frozen snapshot, a training set rebuilt as of the run's time from the labelled
events of the window plus the labelled rows of the prediction log, and a candidate that
fails a gate on it is never promoted."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from modelyard import InvalidDefinitionError, Source
from modelyard.registry.gates import MetricGate
from modelyard.serving.options import ServeOptions
from tests.pipelines.support import write
from tests.serving.support import cost, people, setup

WINDOWED = '''
import modelyard
import pandas as pd

FEATURES = ["profile:age", "profile:vehicle_value"]


@modelyard.pipeline(name="claims_fit", model="claims-model", params={"bad": False},
                    policy="auto",
                    evaluation=modelyard.EvaluationWindow(
                        FEATURES, label="cost", labels="claims", window="30d",
                        from_prediction_log=True))
def claims_fit(ctx):
    from sklearn.linear_model import LinearRegression

    spine = ctx.features.tables.read("claims", as_of=ctx.now).to_pandas().head(100)
    if ctx.params["bad"]:
        spine["cost"] = spine["cost"].sample(frac=1.0, random_state=0).to_numpy()
    train = ctx.training_set(spine, FEATURES, label="cost", timestamp="at")
    frame = train.to_pandas()
    model = LinearRegression().fit(frame[["age", "vehicle_value"]], frame["cost"])
    return ctx.register(model, training_set=train, onnx=False)
'''

claims = Source.frame("claims", timestamp="at")


def _claims(yard: Any) -> pd.DataFrame:
    rows = people()
    labels = pd.DataFrame({"customer_id": rows["customer_id"],
                           "at": rows["ts"] + timedelta(days=1), "cost": cost(rows)})
    yard.apply([claims])
    yard.ingest(claims, labels)
    return labels


def _rmse(model: Any, frame: pd.DataFrame) -> float:
    from sklearn.metrics import root_mean_squared_error

    return float(root_mean_squared_error(frame["cost"],
                                         model.predict(frame[["age", "vehicle_value"]])))


@pytest.mark.slow
def test_both_versions_are_scored_on_the_same_declared_snapshot(yard: Any,
                                                                project: Path) -> None:
    setup(yard)
    write(project, WINDOWED)
    with pytest.raises(InvalidDefinitionError, match="labels from source 'claims'"):
        yard.pipelines.apply()  # refused until the labels source is applied
    labels = _claims(yard)
    yard.pipelines.apply()
    first = yard.pipelines.run("claims_fit")
    assert first.result["decision"] == "promoted", first.error
    assert yard.pipelines.decision(first.run_id).data["evaluation"]["rows"] == len(labels)

    server = ServeOptions.parse(["claims-model@production"], [], []).server(yard)
    server.load_all()
    try:
        served = people().head(5)
        sent = [server.predict("claims-model", {"instances": [
            {"age": float(r.age), "vehicle_value": float(r.vehicle_value)}]}).request_id
            for r in served.itertuples()]
    finally:
        server.close()
    assert yard.prediction_log.flush(timeout=30)
    yard.log_labels("claims-model", [{"request_id": rid, "row": 0, "cost": float(c)}
                                     for rid, c in zip(sent, cost(served), strict=True)])
    yard.models.set_gates("claims-model", [MetricGate("r2", ">=", 0.9)])

    second = yard.pipelines.run("claims_fit")
    decision = yard.pipelines.decision(second.run_id)
    assert decision.decision == "promoted", decision.reason
    described = decision.data["evaluation"]
    assert described["rows"] == len(labels) + 5
    assert described["prediction_log"] == {"rows": 5}
    assert described["training_set"]["rows"] == len(labels)
    assert set(described["training_set"]["commits"]) == {"claims", "policies"}
    assert described["scored_rows"] == {"2": len(labels) + 5, "1": len(labels) + 5}

    # the same rows rebuilt by hand give both versions' recorded metrics
    as_of = datetime.fromisoformat(described["as_of"])
    start = as_of - timedelta(days=30)
    spine = labels[(labels["at"] >= start) & (labels["at"] < as_of)]
    rebuilt = yard.training_set(spine, ["profile:age", "profile:vehicle_value"],
                                label="cost", timestamp="at", as_of=as_of).to_pandas()
    logged = pd.DataFrame({"age": served["age"], "vehicle_value": served["vehicle_value"],
                           "cost": cost(served)})
    rows = pd.concat([rebuilt, logged], ignore_index=True)
    assert decision.candidate_metrics["rmse"] == pytest.approx(
        _rmse(yard.models.load("claims-model", 2), rows), rel=1e-9)
    assert decision.champion_metrics["rmse"] == pytest.approx(
        _rmse(yard.models.load("claims-model", 1), rows), rel=1e-9)

    worse = yard.pipelines.run("claims_fit", {"bad": True})
    refused = yard.pipelines.decision(worse.run_id)
    assert refused.decision == "refused" and refused.candidate_metrics["r2"] < 0.9
    assert refused.data["evaluation"]["rows"] == len(labels) + 5
    assert yard.models.aliases("claims-model") == {"production": 2}  # never promoted
    why = "\n".join(yard.pipelines.why("claims-model:3").lines())
    assert f"evaluation data: {len(labels) + 5} rows" in why
