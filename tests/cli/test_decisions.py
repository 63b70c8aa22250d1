"""`modelyard models approve|reject|why` on a pipeline with the approval policy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.pipelines.support import DECIDING, write

from .conftest import Invoke, run_main


@pytest.fixture(autouse=True)
def _quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELYARD_CAPTURE_PACKAGES", "false")
    monkeypatch.setenv("MODELYARD_CAPTURE_GIT", "false")


def test_approve_reject_and_why(project: Path, invoke: Invoke,
                                monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    write(project, DECIDING.replace('policy="auto"', 'policy="approval"'))
    assert invoke("pipelines", "apply").exit_code == 0
    for _ in range(2):
        ran = invoke("pipelines", "run", "toy_decide")
        assert ran.exit_code == 0, ran.output
    listed = invoke("pipelines", "decisions", "toy", "--pending")
    assert listed.exit_code == 0, listed.output
    assert "toy:1" in listed.output and "toy:2" in listed.output
    assert "approval, against production" in invoke("pipelines", "show",
                                                   "toy_decide").output
    pending = invoke("models", "why", "toy:1").output
    assert "decision: pending (policy approval)" in pending
    assert "trigger: manual (foreground)" in pending

    approved = invoke("models", "approve", "toy:1", "--reason", "checked the plots")
    assert approved.exit_code == 0, approved.output
    assert "now points at version 1 (was nothing)" in approved.output
    why = invoke("models", "why", "toy@production").output
    assert "version: toy:1" in why and "decision: approved (policy approval)" in why
    assert "reason: checked the plots" in why and "on approval" in why
    shown = json.loads(invoke("models", "why", "toy:1", "--json").output)
    assert shown["decision"]["decision"] == "approved"

    rejected = invoke("models", "reject", "toy:2", "--reason", "no")
    assert rejected.exit_code == 0 and "Rejected version 2" in rejected.output
    assert "decision: rejected" in invoke("models", "why", "toy:2").output
    assert "No candidate awaits approval." in invoke("pipelines", "decisions",
                                                     "--pending").output
    code, _, err = run_main(monkeypatch, capsys, "models", "approve", "toy:2")
    assert code != 0 and "not waiting for approval: it was rejected" in err
    code, _, err = run_main(monkeypatch, capsys, "models", "approve", "toy")
    assert code != 0 and "name the version to approve" in err


def test_why_shows_a_rollback_on_probation(project: Path, invoke: Invoke) -> None:
    import modelyard
    from tests.pipelines.support import alert

    write(project, DECIDING.replace('policy="auto"', 'policy="auto", probation="7d"'))
    assert invoke("pipelines", "apply").exit_code == 0
    for _ in range(2):
        assert invoke("pipelines", "run", "toy_decide").exit_code == 0
    assert "7d after a promotion" in invoke("pipelines", "show", "toy_decide").output
    with modelyard.connect(capture_packages=False, capture_git=False) as yard:
        yard.pipelines.on_alerts([alert("toy", "rmse > 900 [critical]", version=2,
                                        value=950.0, severity="critical")])
    why = invoke("models", "why", "toy:2").output
    assert "decision: rolled_back (policy auto)" in why
    assert "decided by: probation" in why and "rolled back to version 1" in why
    assert "version: toy:1" in invoke("models", "why", "toy@production").output


def test_shadow_trial_listed_concluded_and_explained(project: Path, invoke: Invoke,
                                                    store_uri: str) -> None:
    """The shadow policy from the command line, on each metadata store, with live traffic
    through the HTTP server: ``pipelines shadows`` lists the trial, ``--check`` concludes
    it, ``models why`` shows the live comparison."""
    import modelyard
    from modelyard.server.app import create_app
    from modelyard.serving.options import ServeOptions
    from tests.serving.conftest import open_client

    write(project, DECIDING.replace(
        'policy="auto", triggers=[modelyard.on_alert(cooldown="1s")]',
        'policy="shadow", shadow=modelyard.Shadow(requests=3)'))
    uri = ["--uri", store_uri]
    assert invoke("pipelines", "apply", *uri).exit_code == 0
    for _ in range(2):
        ran = invoke("pipelines", "run", "toy_decide", *uri)
        assert ran.exit_code == 0, ran.output
    shown = invoke("pipelines", "show", "toy_decide", *uri).output
    assert "shadow on alias shadow, for 3 requests" in shown
    with modelyard.connect(store_uri, capture_packages=False, capture_git=False) as yard:
        server = ServeOptions.parse(["toy@production"], [], ["toy@shadow"]).server(yard)
        server.load_all()
        with open_client(create_app(yard, models=server)) as client:
            for i in range(3):
                answered = client.post("/v1/models/toy/predict",
                                       json={"instances": [{"a": float(i), "b": 1.0}]})
                assert answered.status_code == 200 and answered.json()["version"] == 1
        assert yard.prediction_log.flush(timeout=30)
    listed = invoke("pipelines", "shadows", "toy", *uri)
    assert listed.exit_code == 0, listed.output
    assert "toy:2" in listed.output and "3 of 3" in listed.output
    checked = invoke("pipelines", "shadows", "--check", *uri)
    assert checked.exit_code == 0, checked.output
    assert "toy:2: promoted" in checked.output
    assert "No shadow trial is going on." in invoke("pipelines", "shadows", *uri).output
    why = invoke("models", "why", "toy@production", *uri).output
    assert "version: toy:2" in why and "decision: promoted (policy shadow)" in why
    assert "live comparison (on the same requests): 3 requests, 3 rows, 0 labelled" in why
    assert "agreement: 1" in why and "live gates: not run" in why
    ended = invoke("pipelines", "shadows", "--end", "toy:2", *uri)
    assert ended.exit_code != 0 and "is on no shadow trial" in str(ended.exception)
