"""Champion against challenger on SQLite and PostgreSQL: the auto policy promotes a better
candidate and refuses a worse one, the approval policy leaves a pending decision that
approve promotes and reject does not, and ``why`` walks back to the trigger."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

import modelyard
from modelyard.errors import ConflictError, InvalidDefinitionError
from modelyard.registry.gates import MetricGate, RegressionGate
from tests.pipelines.support import DECIDING, TOY, alert, write


def _setup(yard: Any, project: Path, policy: str = "auto") -> None:
    write(project, DECIDING.replace('policy="auto"', f'policy="{policy}"'))
    yard.pipelines.apply()


def _gates(yard: Any) -> None:
    yard.models.set_gates("toy", [MetricGate("r2", ">=", 0.5),
                                  RegressionGate(("rmse",), max_relative_drop=0.5)])


def test_auto_promotes_a_better_candidate_and_refuses_a_worse_one(yard: Any,
                                                                  project: Path) -> None:
    _setup(yard, project)
    first = yard.pipelines.run("toy_decide")
    assert first.status == "succeeded", first.error
    assert first.result["decision"] == "promoted"  # no gates yet, no champion
    _gates(yard)
    assert yard.models.aliases("toy") == {"production": 1}
    worse = yard.pipelines.run("toy_decide", {"bad": True})
    assert worse.status == "succeeded", worse.error
    refused = yard.pipelines.decision(worse.run_id)
    assert refused.decision == "refused" and not refused.passed
    assert refused.decided_by == "pipeline:toy_decide"
    assert (refused.version, refused.champion) == (2, 1)
    failed = {r["gate"] for r in refused.gate_report["results"] if not r["passed"]}
    assert failed and any("r2" in g for g in failed)
    assert refused.candidate_metrics["r2"] < 0.5 < refused.champion_metrics["r2"]
    assert yard.models.aliases("toy") == {"production": 1}  # never promoted
    better = yard.pipelines.run("toy_decide")
    promoted = yard.pipelines.decision(better.run_id)
    assert promoted.decision == "promoted" and promoted.champion == 1
    assert promoted.decided_by == "pipeline:toy_decide"
    assert yard.models.aliases("toy") == {"production": 3}
    assert promoted.gate_report["passed"] is True
    assert [d.decision for d in yard.pipelines.decisions("toy")] == [
        "promoted", "refused", "promoted"]


def test_approval_leaves_pending_then_approve_promotes_and_reject_does_not(
        yard: Any, project: Path) -> None:
    told = project / "told.json"
    script = project / "tell.py"
    script.write_text(f"import sys\nopen({str(told)!r}, 'w').write(sys.stdin.read())\n")
    hook = f"command:{sys.executable} {script}"
    write(project, DECIDING.replace('policy="auto"', f'policy="approval", notify=[{hook!r}]'))
    yard.pipelines.apply()
    _gates(yard)
    run = yard.pipelines.run("toy_decide")
    assert yard.pipelines.decision(run.run_id).decision == "pending"
    [announced] = json.loads(told.read_text())["alerts"]
    assert announced["rule"] == "decision pending"
    assert "modelyard models approve toy:1" in announced["message"]
    assert yard.models.aliases("toy") == {}
    approved = yard.pipelines.approve("toy", 1, reason="looks right", actor="ana")
    assert (approved.decision, approved.decided_by) == ("approved", "ana")
    assert yard.models.aliases("toy") == {"production": 1}
    with pytest.raises(ConflictError, match="not waiting for approval: it was approved"):
        yard.pipelines.approve("toy", 1)
    yard.pipelines.run("toy_decide")
    assert [d.version for d in yard.pipelines.decisions("toy", decision="pending")] == [2]
    promote = yard.models.promote

    def failing(*args: Any, **kwargs: Any) -> Any:  # a rejection racing the approval loses
        with pytest.raises(ConflictError, match="not waiting for approval"):
            yard.pipelines.reject("toy", 2, actor="bo")
        raise RuntimeError("the store went away")

    yard.models.promote = failing
    try:
        with pytest.raises(RuntimeError, match="went away"):
            yard.pipelines.approve("toy", 2, actor="ana")
    finally:
        yard.models.promote = promote
    assert [d.version for d in yard.pipelines.decisions("toy", decision="pending")] == [2]
    rejected = yard.pipelines.reject("toy", 2, reason="not this week", actor="bo")
    assert (rejected.decision, rejected.reason) == ("rejected", "not this week")
    assert yard.models.aliases("toy") == {"production": 1}
    bad = yard.pipelines.run("toy_decide", {"bad": True})
    assert yard.pipelines.decision(bad.run_id).decision == "refused"  # never pending
    assert yard.pipelines.decisions("toy", decision="pending") == []


def test_why_walks_back_to_the_alert_and_names_hand_promotions(yard: Any,
                                                               project: Path) -> None:
    _setup(yard, project)
    [queued] = yard.pipelines.on_alerts([alert("toy", rule="rmse > 1", value=2.5)])
    from modelyard.pipelines.worker import Worker

    Worker(yard.pipelines).run(until_idle=True)
    assert yard.pipelines.get_run(queued.run_id).status == "succeeded"
    text = "\n".join(yard.pipelines.why("toy@production").lines())
    assert "version: toy:1" in text
    assert f"pipeline run: {queued.run_id}" in text
    assert "trigger: alert on toy: rmse > 1 (rmse > 1 = 2.5)" in text
    assert "evaluation data: 40 rows" in text
    assert "decision: promoted (policy auto)" in text
    assert "by pipeline policy" in text
    version = yard.models.register(_linear(), "toy", onnx=False)
    yard.models.promote("toy", version.version, "production", actor="carla")
    text = "\n".join(yard.pipelines.why(f"toy:{version.version}").lines())
    assert "registered by hand" in text and "by hand (carla" in text


def test_why_names_a_pipeline_without_policy(yard: Any, project: Path) -> None:
    write(project, TOY)
    yard.pipelines.apply()
    run = yard.pipelines.run("toy_retrain")
    assert "decision" not in run.result and yard.pipelines.decision(run.run_id) is None
    text = "\n".join(yard.pipelines.why("toy:1").lines())
    assert f"pipeline run: {run.run_id} (pipeline toy_retrain v1, which has no policy" in text
    assert "trigger: manual" in text


def _linear() -> Any:
    import numpy as np
    from sklearn.linear_model import LinearRegression

    return LinearRegression().fit(np.eye(2), [0.0, 1.0])


def test_policy_is_checked_when_declared() -> None:
    with pytest.raises(InvalidDefinitionError, match="the shadow policy needs its trial"):
        modelyard.pipeline(model="toy", policy="shadow")(_linear)
    with pytest.raises(InvalidDefinitionError, match="shadow= declares the trial"):
        modelyard.pipeline(model="toy", policy="auto",
                           shadow=modelyard.Shadow(duration="1h"))(_linear)
    with pytest.raises(InvalidDefinitionError, match="must differ from the alias"):
        modelyard.pipeline(model="toy", policy="shadow", alias="shadow",
                           shadow=modelyard.Shadow(requests=5))(_linear)
    with pytest.raises(InvalidDefinitionError, match="needs an end"):
        modelyard.Shadow()
    with pytest.raises(InvalidDefinitionError, match="canary_percent must be above 0"):
        modelyard.Shadow(requests=5, canary_percent=150)
    with pytest.raises(InvalidDefinitionError, match="a shadow trial only"):
        modelyard.Shadow(requests=5, canary_percent=10, min_agreement=0.9)
    with pytest.raises(InvalidDefinitionError, match="labels source"):
        modelyard.EvaluationWindow(["profile:*"], label="cost")
    with pytest.raises(InvalidDefinitionError, match="evaluation window"):
        modelyard.EvaluationWindow(label="cost", window="a month", from_prediction_log=True)
    with pytest.raises(InvalidDefinitionError, match="give the pipeline a policy"):
        modelyard.pipeline(model="toy", evaluation=modelyard.EvaluationWindow(
            label="y", from_prediction_log=True))(_linear)
    with pytest.raises(InvalidDefinitionError, match="give the pipeline its model"):
        modelyard.pipeline(policy="auto")(_linear)
