"""The demo's retraining chain: the alert queues one run, a worker runs it, the candidate
waits for approval, the approval by command moves production, the running server swaps it
in, the months after are checked with it, and ``models why`` walks back to the alert.

The chain's mechanics are checked on the shared small demo; whether retraining really mends
the error is checked at the demo's default size, where a month holds thousands of claims."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import modelyard
from modelyard.cli.app import app
from modelyard.demo.monitoring import RULES
from modelyard.demo.registry import ALIAS, MODEL
from modelyard.demo.retraining import PIPELINE, REQUESTS, TRIGGER_RULE
from modelyard.demo.state import DemoState

from .conftest import SmallDemo

#: A retrained version's months after the alert must stay within the bound of the rule that
#: retrained it (so it does not fire again on the new version)...
RULE_BOUND = 0.30
#: ...and its error must sit at least this far below the fatigued version's on the same claims.
MIN_GAIN = 0.15


def _chain(state: DemoState) -> tuple[int, int]:
    """The champion the alert found fatigued and the candidate approved in its place."""
    retrain = state.retrain
    assert retrain is not None and retrain.skipped is None
    assert retrain.pending is not None and retrain.final is not None
    assert retrain.pending.champion is not None
    return retrain.pending.champion, retrain.pending.version


def test_the_trigger_rule_is_one_of_the_monitoring_rules() -> None:
    assert any(rule.startswith(TRIGGER_RULE) for rule in RULES)
    text = (Path(modelyard.__file__).parent / "demo" / "claims_pipelines.py").read_text()
    assert f'rule="{TRIGGER_RULE}"' in text  # the project's pipelines.py names that rule


def test_the_alert_queued_exactly_one_run_and_a_worker_ran_it(small_demo: SmallDemo) -> None:
    state = small_demo.state
    watch = state.watch
    assert watch is not None and watch.trigger is not None
    with modelyard.connect(project=small_demo.result.root) as yard:
        runs = yard.pipelines.runs(PIPELINE, limit=None)
        alerts = {a.alert_id: a for a in yard.monitoring.alerts(MODEL, limit=None)}
        [run] = runs  # every later alert of the rule joined it (cooldown): one run
        assert run.run_id == watch.trigger.run_id
        assert run.trigger == "alert" and run.status == "succeeded", run.error
        assert run.worker is not None and run.attempts == 1
        assert [s["name"] for s in run.steps] == ["window", "training set", "fit", "score"]
        fired = [alerts[i] for i in run.trigger_detail["alerts"]]
        assert fired and {a.rule for a in fired} == {TRIGGER_RULE}
        assert run.trigger_detail["rules"] == [TRIGGER_RULE]
        window = yard.monitoring.get_result(fired[0].result_id)["window"]
        tracked = yard.get_run(run.result["tracking_run"])
    # the month the alert judged is the month the run held its claims out from
    assert tracked.params["window.start"] == window["start"]
    assert tracked.params["window.end"] == window["end"]
    assert watch.months[-1].month == watch.trigger.month
    assert TRIGGER_RULE in watch.months[-1].rules
    assert all(TRIGGER_RULE not in m.rules for m in watch.months[:-1])  # the first such alert


def test_the_decision_was_pending_then_approved_by_the_command(small_demo: SmallDemo) -> None:
    state = small_demo.state
    champion, candidate = _chain(state)
    retrain = state.retrain
    assert retrain is not None and retrain.pending is not None and retrain.final is not None
    assert retrain.pending.decision == "pending" and retrain.pending.passed
    assert retrain.pending.decided_by is None
    assert retrain.final.decision == "approved" and retrain.final.decided_by
    assert retrain.command.startswith(f"modelyard models approve {MODEL}:{candidate} --reason ")
    assert not retrain.approval_failed
    assert f"now points at version {candidate} (was version {champion})" in \
        " ".join(retrain.approval_output.split())
    with modelyard.connect(project=small_demo.result.root) as yard:
        [stored] = yard.pipelines.decisions(MODEL, candidate)
        assert stored.decision == "approved" and stored.run_id == retrain.final.run_id
        assert stored.champion == champion
        assert stored.candidate_metrics["rmse"] <= stored.champion_metrics["rmse"]
        assert yard.pipelines.decisions(MODEL, decision="pending") == []
    out = " ".join(small_demo.output.split())
    assert "11. Retraining" in out and "the decision is pending" in out
    assert f"$ {retrain.command}" in out


def test_the_alias_moved_to_the_new_version_on_approval(small_demo: SmallDemo) -> None:
    champion, candidate = _chain(small_demo.state)
    retrain = small_demo.state.retrain
    assert retrain is not None and retrain.final is not None
    with modelyard.connect(project=small_demo.result.root) as yard:
        assert yard.models.aliases(MODEL)[ALIAS] == candidate
        moved = yard.models.history(MODEL, ALIAS)[-1]
    assert (moved.action, moved.from_version, moved.to_version) == ("promote", champion,
                                                                   candidate)
    assert moved.actor == retrain.final.decided_by and moved.at == retrain.final.decided_at_ms
    assert retrain.alert_to_promotion is not None and retrain.alert_to_promotion > 0
    times = retrain.timeline
    assert times["alert"] <= times["queued"] <= times["started"] <= times["decision"] \
        <= times["promoted"] <= times["server swapped"]


def test_the_running_server_swapped_the_new_version_in(small_demo: SmallDemo) -> None:
    champion, candidate = _chain(small_demo.state)
    retrain = small_demo.state.retrain
    assert retrain is not None
    assert retrain.failures == []
    assert retrain.answers["before"] == {champion: REQUESTS}  # while the run went on
    after = retrain.answers["after"]
    assert after[candidate] == REQUESTS and set(after) <= {champion, candidate}
    with modelyard.connect(project=small_demo.result.root) as yard:
        served = yard.read_predictions(MODEL, version=candidate)
        parent = yard.get_run(small_demo.result.parent_run_id)
    live = served[~served["request_id"].str.startswith("claim-")]  # not the monthly backfill
    assert len(live) == REQUESTS
    assert parent.metrics["retraining_server_answers"].value == sum(
        sum(c.values()) for c in retrain.answers.values())
    assert parent.metrics["retraining_alert_to_promotion_s"].value == pytest.approx(
        retrain.alert_to_promotion)


def test_the_months_after_are_served_and_checked_by_the_new_version(
        small_demo: SmallDemo) -> None:
    champion, candidate = _chain(small_demo.state)
    watch, after = small_demo.state.watch, small_demo.state.after
    assert watch is not None and after is not None and after.months
    assert (after.version, after.earlier) == (candidate, champion)
    with modelyard.connect(project=small_demo.result.root) as yard:
        history = yard.monitoring.history(MODEL)
    versions = [h["version"] for h in history]
    cut = len(watch.months)
    assert versions == [champion] * cut + [candidate] * len(after.months)
    import pandas as pd

    later = [f"{pd.Timestamp(h['window']['start']):%b %Y}" for h in history[cut:]]
    assert later == [m.month for m in after.months]
    for month in after.months[:-1]:  # labelled: the earlier version scored beside it
        assert month.metrics["rmse"] > 0 and month.before["rmse"] > 0
        assert month.registered is not None and month.registered_on == "default"
    assert after.months[-1].labelled == 0 and not after.months[-1].before


def test_models_why_walks_back_to_the_alert(small_demo: SmallDemo,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    watch = small_demo.state.watch
    assert watch is not None and watch.trigger is not None
    _, candidate = _chain(small_demo.state)
    monkeypatch.chdir(small_demo.result.root)
    result = CliRunner().invoke(app, ["models", "why", f"{MODEL}@{ALIAS}"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"version: {MODEL}:{candidate}" in out
    assert f"pipeline run: {watch.trigger.run_id} (pipeline {PIPELINE} v1)" in out
    assert f"trigger: alert on {MODEL}: {TRIGGER_RULE}" in out
    assert all(alert_id in out for alert_id in watch.trigger.alert_ids)
    assert "decision: approved (policy approval)" in out
    assert f"promote to version {candidate} on approval" in out
    assert small_demo.state.after is not None
    assert "\n".join(small_demo.state.after.why) == out.rstrip("\n")  # the story's own


def test_the_retrained_version_reproduces_exactly(small_demo: SmallDemo) -> None:
    """The stored pipeline rerun as of its run's time, on the window its run recorded (not
    the month before today), gives the very same predictions, and registers nothing."""
    _, candidate = _chain(small_demo.state)
    with modelyard.connect(project=small_demo.result.root) as yard:
        before = [v.version for v in yard.models.versions(MODEL)]
        found = yard.pipelines.reproduce(f"{MODEL}@{ALIAS}")
        assert [v.version for v in yard.models.versions(MODEL)] == before
        assert yard.models.aliases(MODEL)[ALIAS] == candidate
    assert (found.version, found.pipeline) == (candidate, PIPELINE)
    assert found.exact and found.matches and found.rows > 0


def test_the_story_tells_the_chain_with_its_figures(small_demo: SmallDemo) -> None:
    state = small_demo.state
    champion, candidate = _chain(state)
    out = " ".join(small_demo.output.split())
    retrain, after = state.retrain, state.after
    assert retrain is not None and retrain.pending is not None and after is not None
    assert "pipelines.py declares the pipeline claims_retrain" in out
    metrics = retrain.pending.candidate_metrics
    assert f"{metrics['rmse']:,.0f}" in out and f"{metrics['r2']:,.3f}" in out
    assert f"to the promoted version: {retrain.alert_to_promotion:.1f} s" in out
    assert f"swapped version {candidate} in" in out
    assert "12. After the retraining" in out and f"v{champion} rmse" in out
    assert "modelyard models why claims-model@production:" in out
    assert all(" ".join(line.split()) in out for line in after.why)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_retraining_mends_the_error_at_the_default_size(full_demo: SmallDemo) -> None:
    """At 20,000 customers the floods make the production version's error jump; the
    retrained version's error comes back within the rule's bound of its registered value,
    and well below the fatigued version's on the same claims."""
    champion, candidate = _chain(full_demo.state)
    retrain, after = full_demo.state.retrain, full_demo.state.after
    assert retrain is not None and retrain.pending is not None and after is not None
    decision = retrain.pending
    assert decision.candidate_metrics["rmse"] < (1 - MIN_GAIN) * \
        decision.champion_metrics["rmse"]  # on the same held-out claims of the alert's month
    labelled = [m for m in after.months if m.labelled]
    assert len(labelled) >= 2
    for month in labelled:
        assert month.change is not None and month.change < RULE_BOUND, month
        assert month.metrics["rmse"] < (1 - MIN_GAIN) * month.before["rmse"], month
        assert TRIGGER_RULE not in month.rules
    with modelyard.connect(project=full_demo.result.root) as yard:
        assert len(yard.pipelines.runs(PIPELINE, limit=None)) == 1
        assert yard.models.aliases(MODEL)[ALIAS] == candidate != champion
