"""Probation on SQLite and PostgreSQL: a critical alert on a version a pipeline promoted,
within its probation, rolls the alias back and records why; a warning, an alert on another
version, one after the window and a version promoted by hand change nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import modelyard
from modelyard.errors import InvalidDefinitionError
from tests.pipelines.support import DECIDING, alert, write

DAY_MS = 86_400_000
CRITICAL = "rmse > 900 [critical]"


def _two_promotions(yard: Any, project: Path, policy: str = "auto") -> Any:
    """toy:1 then toy:2 promoted to production by the pipeline; the second run."""
    write(project, DECIDING.replace('policy="auto"', f'policy="{policy}", probation="1d"'))
    yard.pipelines.apply()
    first = yard.pipelines.run("toy_decide")
    if policy == "approval":
        yard.pipelines.approve("toy", 1, actor="ana")
    second = yard.pipelines.run("toy_decide")
    if policy == "approval":
        yard.pipelines.approve("toy", 2, actor="ana")
    assert first.status == second.status == "succeeded", second.error
    assert yard.models.aliases("toy") == {"production": 2}
    return second


def test_only_a_critical_alert_on_the_version_within_probation_rolls_back(
        yard: Any, project: Path) -> None:
    run = _two_promotions(yard, project)
    promoted = yard.pipelines.decision(run.run_id)
    assert promoted.decision == "promoted"
    late = promoted.decided_at_ms + DAY_MS + 1
    left_alone = [alert("toy", CRITICAL, version=2, value=950.0, severity="warning"),
                  alert("toy", CRITICAL, version=1, value=950.0, severity="critical"),
                  alert("toy", CRITICAL, version=2, value=950.0, severity="critical",
                        fired_at_ms=late)]
    for planted in left_alone:
        yard.pipelines.on_alerts([planted])
        assert yard.models.aliases("toy") == {"production": 2}
        assert yard.pipelines.decision(run.run_id).decision == "promoted"

    fired = alert("toy", CRITICAL, version=2, value=950.0, severity="critical")
    yard.pipelines.on_alerts([fired, fired])  # twice in one batch: one rollback
    assert yard.models.aliases("toy") == {"production": 1}
    rolled = yard.pipelines.decision(run.run_id)
    assert (rolled.decision, rolled.decided_by) == ("rolled_back", "probation")
    assert "critical alert 'rmse > 900 [critical]' = 950 on version 2" in rolled.reason
    assert "probation of 1d" in rolled.reason and "rolled back to version 1" in rolled.reason
    [back] = [e for e in yard.models.history("toy") if e.action == "rollback"]
    assert (back.to_version, back.actor) == (1, "probation")
    text = "\n".join(yard.pipelines.why("toy:2").lines())
    assert "decision: rolled_back (policy auto)" in text
    assert "decided by: probation at" in text and "rmse > 900" in text
    assert [d.decision for d in yard.pipelines.decisions("toy")] == ["rolled_back", "promoted"]
    assert yard.pipelines.decisions("toy", decision="rolled_back")[0].version == 2


def test_an_approved_version_rolls_back_and_a_hand_promotion_does_not(
        yard: Any, project: Path) -> None:
    run = _two_promotions(yard, project, "approval")
    yard.pipelines.on_alerts([alert("toy", CRITICAL, version=2, severity="critical")])
    rolled = yard.pipelines.decision(run.run_id)
    assert rolled.decision == "rolled_back" and "approved by ana" in rolled.reason
    assert yard.models.aliases("toy") == {"production": 1}
    why = "\n".join(yard.pipelines.why("toy:2").lines())
    assert "to version 2 on approval (ana" in why, why  # the approval is still told

    import numpy as np
    from sklearn.linear_model import LinearRegression

    by_hand = yard.models.register(LinearRegression().fit(np.eye(2), [0.0, 1.0]), "toy",
                                   onnx=False)
    yard.models.promote("toy", by_hand.version, "production", actor="carla")
    yard.pipelines.on_alerts([alert("toy", CRITICAL, version=by_hand.version,
                                    severity="critical")])
    assert yard.models.aliases("toy") == {"production": by_hand.version}


def test_probation_is_checked_when_declared() -> None:
    def fn(ctx: Any) -> None:
        return None

    with pytest.raises(InvalidDefinitionError, match="give the pipeline a policy"):
        modelyard.pipeline(model="toy", probation="7d")(fn)
    with pytest.raises(InvalidDefinitionError, match="probation 'a week' is not valid"):
        modelyard.pipeline(model="toy", policy="auto", probation="a week")(fn)
    declared = modelyard.pipeline(model="toy", policy="auto", probation="7d")(fn)
    assert declared.spec()["probation"] == "7d"
    assert "probation" not in modelyard.pipeline(model="toy", policy="auto")(fn).spec()
