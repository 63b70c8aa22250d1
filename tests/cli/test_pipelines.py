"""`modelyard pipelines ...` and `modelyard worker` on a real project."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pipelines.support import FAILING, TOY, write

from .conftest import Invoke, run_main


@pytest.fixture(autouse=True)
def _quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELYARD_CAPTURE_PACKAGES", "false")
    monkeypatch.setenv("MODELYARD_CAPTURE_GIT", "false")


def test_pipelines_commands(project: Path, invoke: Invoke) -> None:
    write(project, TOY, FAILING)
    plan = invoke("pipelines", "plan")
    assert plan.exit_code == 0, plan.output
    assert "+ create pipeline toy_retrain (v1)" in plan.output
    assert "2 changes to apply" in plan.output
    applied = invoke("pipelines", "apply")
    assert "2 changes applied" in applied.output
    assert "Nothing to change" in invoke("pipelines", "apply").output
    listed = invoke("pipelines", "list").output
    assert "toy_retrain" in listed and "broken" in listed
    shown = invoke("pipelines", "show", "toy_retrain", "--code").output
    assert '"alpha": 1.0' in shown and "def make_frame" in shown

    ran = invoke("pipelines", "run", "toy_retrain", "--param", "alpha=0.25", "-p", "rows=30")
    assert ran.exit_code == 0, ran.output
    assert "succeeded" in ran.output and "toy:1" in ran.output
    assert '"alpha": 0.25' in ran.output and "fit: succeeded" in ran.output

    queued = invoke("pipelines", "run", "broken", "--queue")
    assert queued.exit_code == 0 and "Queued run" in queued.output
    worked = invoke("worker", "--until-idle", "--lease", "5")
    assert worked.exit_code == 0, worked.output
    assert "broken (manual) failed" in worked.output and "1 run done" in worked.output
    runs = invoke("pipelines", "runs").output
    assert "failed" in runs and "succeeded" in runs and "toy:1" in runs
    failed_id = queued.output.split("Queued run ")[1].split()[0]
    logs = invoke("pipelines", "logs", failed_id[:8]).output
    assert "ValueError: no data for" in logs and "about to fail" in logs

    assert invoke("pipelines", "schedule", "toy_retrain", "30 2 * * *", "--tz",
                  "Europe/Paris").exit_code == 0
    triggers = invoke("pipelines", "triggers").output
    assert "30 2 * * * (Europe/Paris)" in triggers and "alert on toy" in triggers


def test_pipelines_errors_are_one_line(project: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    write(project, TOY)
    assert run_main(monkeypatch, capsys, "pipelines", "apply")[0] == 0
    code, _, err = run_main(monkeypatch, capsys, "pipelines", "run", "toy_retrain",
                            "--param", "beta=2")
    assert code == 1 and "has no param 'beta'" in err and "Traceback" not in err
    code, _, err = run_main(monkeypatch, capsys, "pipelines", "schedule", "toy_retrain",
                            "0 3 * *")
    assert code == 1 and "is not a cron expression" in err
    code, _, err = run_main(monkeypatch, capsys, "pipelines", "runs", "--status", "done")
    assert code == 1 and "status 'done' is not one of queued" in err
    code, _, err = run_main(monkeypatch, capsys, "pipelines", "run", "ghost")
    assert code == 1 and "no pipeline 'ghost'" in err
