"""What each documentation page's examples need before they run, and what they must leave.

A page's ``setup`` prepares the fresh project (the files its examples read, the definitions
and models they take as given) and returns the names its examples use without defining them
(``spine``, ``holdout``...: the reader's own data). Its ``check`` asserts what the examples
did. A page without an entry runs in an empty project. The working directory is the project's
folder, or an empty folder for a page whose examples create the project themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from docs import data

Names = dict[str, Any]


@dataclass(frozen=True)
class Page:
    setup: Callable[[Path], Names] | None = None
    check: Callable[[Names, Path], None] | None = None
    project: bool = True  # False: the examples start in an empty folder
    s3: bool = False  # the examples need the S3 server: a bucket of their own, AWS_* set


def s3_project(project: Path, bucket: str) -> None:
    """Point the project's artifacts and offline tables at ``bucket``, as the page's
    ``modelyard.toml`` example does with its own bucket name."""
    path = project / "modelyard.toml"
    path.write_text(path.read_text().replace(
        "[store]\n", f'[store]\nartifact_uri = "s3://{bucket}/modelyard/artifacts"\n'
                     f'offline_uri = "s3://{bucket}/modelyard/offline"\n', 1))


def _readme(project: Path) -> Names:
    data.write_claims(project)
    data.labels().to_parquet(project / "data" / "labels.parquet", index=False)
    return {}


def _readme_check(names: Names, project: Path) -> None:
    assert (project / "modelyard.toml").is_file()  # made by the first example
    assert names["best"].info.name == "tree-8"  # the best run by r2
    assert list(names["runs"]["name"]) == ["tree-8", "tree-5"]
    assert names["row"]["customer_id"] == 42 and names["row"]["claims_90d"] >= 1
    yard = names["yard"]
    assert yard.models.load("claims-model@production") is not None


def _features(project: Path) -> Names:
    data.write_claims(project)
    events = data.claims(seed=3)[["customer_id", "event_time", "claim_amount"]]
    return {"frame": events, "spine": data.labels()}


def _features_check(names: Names, project: Path) -> None:
    yard = names["yard"]
    assert len(names["ts"]) == len(names["spine"])
    assert [c.operation for c in yard.features.commits("claims")] == ["ingest", "forget"]
    left = yard.training_set(names["spine"], ["claim_stats:amount"]).to_pandas()
    assert left.set_index("customer_id").loc[[42, 77], "amount"].isna().all()  # forgotten


def _tracking(project: Path) -> Names:
    (project / "plots").mkdir()
    (project / "plots" / "loss.svg").write_text("<svg/>")
    x, y = data.xy()
    return {"model": data.regressor(x, y), "X": x, "y": y, "pipeline": data.pipeline()}


def _tracking_check(names: Names, project: Path) -> None:
    yard = names["yard"]
    assert yard.settings.project_name == "claims"
    assert names["best"].info.name == "gbm-depth-5"  # the lower rmse
    assert list(names["cmp"].params.index) == ["max_depth"]  # only what differs
    assert (project / "out" / "plots" / "loss.svg").read_text() == "<svg/>"
    runs = yard.search_runs(None)  # 2 by hand, 2 autologged (one in the default experiment)
    assert len(runs) == 4 and runs["status"].eq("finished").all()
    assert sorted(runs["experiment"]) == ["claims", "claims", "claims", "default"]


def _monitoring(project: Path) -> Names:
    """claims-model, registered with its reference and evaluated; a day of its answers in
    the prediction log, labelled. The served rows are like the training rows: no rule fires,
    so the example's webhook is never called."""
    import modelyard
    from tests.monitoring import support

    with modelyard.connect() as yard:
        version = support.register_regressor(yard, rows=1_000)
        served = support.claims(300, 7)
        ids = support.log_window(yard, version, served, data.now() - timedelta(days=1))
        support.label(yard, ids, served)
    return {}


def _monitoring_check(names: Names, project: Path) -> None:
    result = names["result"]
    assert result.drift["dataset_drift"] is False
    assert result.to_dict()["performance"]["metrics"]["r2"] > 0.9
    assert (project / "report.html").read_text().startswith("<!")
    assert names["yard"].monitoring.alerts("claims-model") == []  # nothing fired, nothing sent
    [scheduled] = names["yard"].pipelines.triggers()  # the checks, on the workers' scheduler
    assert (scheduled.pipeline, scheduled.detail) == ("modelyard.monitor", "0 * * * * (UTC)")


def _online(project: Path) -> Names:
    data.claims_features(project)
    spine = data.labels().drop(columns=["claim_value"]).assign(claim_amount=1200.0)
    fresh = data.claims(seed=9, days=1, per_customer=1).head(3)
    return {"spine": spine, "fresh_rows": fresh}


def _online_check(names: Names, project: Path) -> None:
    found = names["found"]
    assert found.status == ["found", "found", "missing"]
    assert found.to_records()[0]["customer_id"] == 42
    yard = names["yard"]
    pushed = names["fresh_rows"].iloc[0]
    now = yard.online_features(["claim_history:last_amount"],
                               {"customer_id": [int(pushed["customer_id"])]})
    assert now.to_records()[0]["last_amount"] == pushed["claim_amount"]  # the push is served


def _registry(project: Path) -> Names:
    """claim_stats applied and ingested; claims-model versions 1 and 2 (a mean-only
    model), 2 in production; the reader's data: a spine, a holdout, a model trained
    elsewhere and an input example, and their ``fit``."""
    from sklearn.dummy import DummyRegressor

    import modelyard

    data.claim_stats(project)
    with modelyard.connect() as yard:
        spine = data.labels().drop(columns=["claim_value"])
        known = yard.training_set(spine, ["claim_stats:*"]).to_pandas()
        spine["claim_value"] = data.value_of(known, seed=1)
        training = yard.training_set(spine, ["claim_stats:*"], label="claim_value")
        frame = training.to_pandas()[data.STATS]
        mean_only = DummyRegressor().fit(frame, spine["claim_value"])
        for _ in range(2):
            yard.models.register(mean_only, "claims-model", training_set=training, onnx=False)
        yard.models.promote("claims-model", 2, alias="production")
    rng = np.random.default_rng(3)
    holdout = known[data.STATS].assign(claim_value=data.value_of(known, seed=2),
                                       region=rng.choice(["north", "south"], len(known)),
                                       gender=rng.choice(["f", "m"], len(known)))
    return {"spine": spine, "fit": data.fit, "other_model": data.fit(training),
            "frame": frame.head(5), "holdout": holdout}


def _registry_check(names: Names, project: Path) -> None:
    yard = names["yard"]
    moves = [(m.action, m.from_version, m.to_version)
             for m in yard.models.history("claims-model")]
    assert sorted(moves, key=str) == sorted([("promote", None, 2), ("promote", 2, 3),
                                             ("rollback", 3, 2)], key=str)
    assert yard.models.lineage("claims-model", 3).training_set is not None
    rebuilt = yard.models.rebuild_training_set("claims-model", 3).to_pandas()
    assert rebuilt.equals(names["ts"].to_pandas())
    assert len(yard.models.versions("claims-model")) == 4  # 2 given, 1 logged, 1 registered


def _pipelines(project: Path) -> Names:
    """claim_stats applied and ingested; data/labels.parquet: a spine with its labels."""
    import modelyard

    data.claim_stats(project)
    with modelyard.connect() as yard:
        spine = data.labels().drop(columns=["claim_value"])
        known = yard.training_set(spine, ["claim_stats:*"]).to_pandas()
    spine["claim_value"] = data.value_of(known, seed=1)
    spine.to_parquet(project / "data" / "labels.parquet", index=False)
    return {}


def _pipelines_check(names: Names, project: Path) -> None:
    yard = names["yard"]
    runs = yard.pipelines.runs("claims_retrain")
    assert [r.status for r in runs] == ["succeeded", "succeeded"]
    assert [r.result["version"] for r in runs] == [2, 1]
    assert yard.models.lineage("claims-model", 1).training_set is not None
    assert yard.pipelines.get("claims_retrain").schedule == "0 4 * * *"
    assert {t.kind for t in yard.pipelines.triggers()} == {"schedule", "alert"}
    dropped, decision = yard.pipelines.decisions("claims-model")
    assert (decision.decision, decision.policy) == ("approved", "approval")
    assert yard.models.aliases("claims-model") == {"production": decision.version}
    assert (dropped.decision, dropped.policy) == ("dropped", "shadow")  # no traffic came
    assert dropped.data["evaluation"]["training_set"]["rows"] == len(
        pd.read_parquet(project / "data" / "labels.parquet"))


def _serving(project: Path) -> Names:
    """claim_stats applied, ingested and materialized; claims-model 1 (production) and 2
    (challenger), logged with their training set; a day of version 1's answers in the
    prediction log; the reader's settled claims (customer, time, value)."""
    import modelyard
    from modelyard.backends.metadata.predictions import PredictionRecord

    data.claim_stats(project)
    with modelyard.connect() as yard:
        spine = data.labels().drop(columns=["claim_value"])
        known = yard.training_set(spine, ["claim_stats:*"]).to_pandas()
        spine["claim_value"] = data.value_of(known, seed=1)
        training = yard.training_set(spine, ["claim_stats:*"], label="claim_value")
        model = data.fit(training)
        for alias in ("production", "challenger"):
            version = yard.models.register(model, "claims-model", training_set=training,
                                           onnx=False).version
            yard.models.promote("claims-model", version, alias=alias)
        yard.materialize()
        rows = known[["customer_id", *data.STATS]].to_dict("records")
        answered = data.now() - timedelta(days=1)
        at_us = int(answered.timestamp() * 1e6)
        predicted = model.predict(known[data.STATS])
        yard.predictions.write([
            PredictionRecord(f"req-{i}", 0, "claims-model", 1, "primary", at_us + i, 4.0,
                             {"customer_id": int(r["customer_id"])},
                             {c: r[c] for c in data.STATS}, {"claim_value": float(p)})
            for i, (r, p) in enumerate(zip(rows, predicted, strict=True))])
    settled = pd.DataFrame({"customer_id": [77, 100], "at": [data.now()] * 2,
                            "claim_value": [950.0, 2210.0]})
    return {"settled": settled}


def _serving_check(names: Names, project: Path) -> None:
    yard = names["yard"]
    assert len(names["frame"]) == len(data.CUSTOMERS)
    answer = names["answer"].to_dict()
    assert answer["model"] == "claims-model" and len(answer["predictions"]) == 1
    logged = yard.read_predictions("claims-model", start=data.now() - timedelta(days=2))
    labelled = logged.dropna(subset=["label.claim_value"])
    assert labelled["request_id"].iloc[0] == names["rid"]
    assert sorted(labelled["label.claim_value"]) == [950.0, 1830.0, 2210.0]
    assert sorted(labelled["entity.customer_id"])[1:] == [77, 100]  # by entity and time


def _deploy(project: Path) -> Names:
    """claims-model version 1 behind production, logged in a run that recorded its
    environment."""
    import modelyard

    data.claim_stats(project)
    with modelyard.connect(capture_git=False) as yard:
        training = yard.training_set(data.labels(), ["claim_stats:*"], label="claim_value")
        with yard.start_run("claims") as run:
            run.log_model(data.fit(training), "claims-model", training_set=training,
                          onnx=False)
        yard.models.promote("claims-model", 1, alias="production")
    return {}


def _deploy_check(names: Names, project: Path) -> None:
    bundle = names["bundle"]
    assert bundle.version == 1 and "kserve/inferenceservice.yaml" in bundle.files
    assert (project / "bundle" / "Dockerfile").is_file()
    assert "scikit-learn==" in (project / "bundle" / "requirements.txt").read_text()


def _scale_out(project: Path) -> Names:
    data.write_claims(project)
    return {"labels": data.labels()}


def _scale_out_check(names: Names, project: Path) -> None:
    yard = names["yard"]
    assert yard.settings.artifact_uri.startswith("s3://")
    assert yard.settings.offline_uri.startswith("s3://")
    assert names["commit"].rows == len(data.claims())
    assert names["loaded"].predict(names["frame"][["amount_30d_mean", "claims_90d"]]).shape
    local = project / ".modelyard"
    assert not (local / "artifacts").exists() and not (local / "offline").exists()


PAGES: dict[str, Page] = {
    "README.md": Page(_readme, _readme_check, project=False),
    "docs/deploy.md": Page(_deploy, _deploy_check),
    "docs/features.md": Page(_features, _features_check),
    "docs/monitoring.md": Page(_monitoring, _monitoring_check),
    "docs/online.md": Page(_online, _online_check),
    "docs/pipelines.md": Page(_pipelines, _pipelines_check),
    "docs/registry.md": Page(_registry, _registry_check),
    "docs/scale-out.md": Page(_scale_out, _scale_out_check, s3=True),
    "docs/serving.md": Page(_serving, _serving_check),
    "docs/tracking.md": Page(_tracking, _tracking_check),
}
