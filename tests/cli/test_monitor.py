"""`modelyard monitor ...` on a real project: rules, run (with a command notifier and exit
codes), report, history, alerts, reference, and errors as one line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import modelyard
from tests.monitoring.support import DAY0, INPUTS, MODEL, claims, log_window, register_regressor

from .conftest import Invoke, fits, narrow, run_main, words


@pytest.fixture
def served(project: Path) -> Path:
    """A registered model whose log holds a calm day and then a shifted day."""
    with modelyard.connect(capture_git=False, capture_packages=False) as yard:
        version = register_regressor(yard, rows=1_500)
        log_window(yard, version, claims(600, 3), DAY0, prefix="a")
        log_window(yard, version, claims(600, 4, shift=2.0, south=0.6),
                   DAY0.replace(day=2), prefix="b")
    return project


def test_monitor_commands(served: Path, invoke: Invoke, tmp_path: Path,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    inbox = tmp_path / "inbox.jsonl"
    sink = tmp_path / "sink.py"
    sink.write_text("import sys\nopen(sys.argv[1], 'a').write(sys.stdin.read() + '\\n')\n")
    command = f"command:{sys.executable} {sink} {inbox}"

    rules = invoke("monitor", "rules", MODEL, "--alert", "dataset_drift", "--alert",
                   "psi(vehicle_value) > 0.2 [critical]", "--notify", command)
    assert rules.exit_code == 0, rules.output
    assert "psi(vehicle_value) > 0.2 [critical]" in rules.output

    calm = invoke("monitor", "run", MODEL, "--window", "1d", "--fail-on-alert")
    assert calm.exit_code == 0, calm.output  # the window ends now: nothing was served
    assert "no predictions in this window" in calm.output

    html = tmp_path / "report.html"
    report = invoke("monitor", "report", MODEL, "--start", "2025-03-02", "--end",
                    "2025-03-03", "--html", str(html), "--json", str(tmp_path / "r.json"))
    assert report.exit_code == 0, report.output
    assert "DRIFT" in report.output and "vehicle_value" in report.output
    assert html.stat().st_size > 10_000 and "<svg" in html.read_text()
    assert json.loads((tmp_path / "r.json").read_text())["result"]["drift"]["dataset_drift"]
    assert not inbox.exists()  # a report does not send alerts

    history = invoke("monitor", "history", MODEL)
    assert history.exit_code == 0, history.output
    assert "600" in history.output
    checks = json.loads(invoke("monitor", "history", MODEL, "--json").output)
    assert [(c["rows"], c["dataset_drift"]) for c in checks] == [(600, True), (0, None)]

    narrow(monkeypatch)  # piped: 80 columns
    for command in (("history", MODEL), ("alerts",), ("alerts", MODEL)):
        shown = invoke("monitor", *command)
        assert shown.exit_code == 0, shown.output
        assert fits(shown.output), shown.output
    assert {"600", "2025-03-02..03-03"} <= words(invoke("monitor", "history", MODEL).output)
    assert MODEL in words(invoke("monitor", "alerts").output)
    narrow(monkeypatch, 200)

    alerts = invoke("monitor", "alerts", MODEL, "--json")
    assert alerts.exit_code == 0 and json.loads(alerts.output) != []  # stored by the report


def test_monitor_run_sends_and_fails_on_alert(served: Path, invoke: Invoke,
                                              tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    inbox = tmp_path / "inbox.jsonl"
    sink = tmp_path / "sink.py"
    sink.write_text("import sys\nopen(sys.argv[1], 'a').write(sys.stdin.read() + '\\n')\n")
    with (served / "modelyard.toml").open("a") as fh:
        fh.write(f'\n[models.{MODEL}.monitoring]\nalerts = ["drift(region)"]\n'
                 f'notify = ["command:{sys.executable} {sink} {inbox}"]\n')
    from datetime import UTC, datetime

    monkeypatch.setattr("modelyard.monitoring.windows.time.time_ns",
                        lambda: int(datetime(2025, 3, 3, tzinfo=UTC).timestamp() * 1e9))
    calm = invoke("monitor", "run", "--start", "2025-03-01", "--end", "2025-03-02",
                  "--fail-on-alert")
    assert calm.exit_code == 0, calm.output  # the calm day: nothing fired
    done = invoke("monitor", "run", "--window", "1d", "--fail-on-alert")
    assert done.exit_code == 2, done.output
    assert "ALERT" in done.output and "region" in done.output
    sent = [json.loads(line) for line in inbox.read_text().splitlines() if line]
    assert [a["rule"] for a in sent[0]["alerts"]] == ["drift(region)"]
    listed = invoke("monitor", "alerts")
    assert "drift(region)" in listed.output and "ok" in listed.output


def test_monitor_reference_and_errors(served: Path, invoke: Invoke, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "ref.parquet"
    claims(900, 7)[INPUTS].to_parquet(data)
    done = invoke("monitor", "reference", f"{MODEL}:1", "--data", str(data))
    assert done.exit_code == 0, done.output
    assert "900 rows" in done.output

    code, _, err = run_main(monkeypatch, capsys, "monitor", "run", MODEL, "--window", "7 days")
    assert code == 1 and "duration" in err and "Traceback" not in err
    code, _, err = run_main(monkeypatch, capsys, "monitor", "rules", MODEL, "--alert",
                            "rmse >> 3")
    assert code == 1 and "rmse >> 3" in err
    code, _, err = run_main(monkeypatch, capsys, "monitor", "report", "nope")
    assert code == 1 and "nope" in err
    code, out, _ = run_main(monkeypatch, capsys, "monitor", "run")
    assert code == 0 and "No model has monitoring rules" in out


def test_monitor_run_every_repeats_until_interrupted(served: Path, invoke: Invoke,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    pauses: list[float] = []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr("modelyard.pipelines.monitoring_jobs.time.sleep", sleep)
    done = invoke("monitor", "run", MODEL, "--window", "1h", "--every", "90m")
    assert pauses == [5_400.0, 5_400.0]
    assert done.exit_code == 0 and done.output.endswith("Stopped.\n")
    assert done.output.count(": 0 predictions") == 2  # checked twice before the interrupt
    with modelyard.connect(capture_git=False, capture_packages=False) as yard:
        assert len(yard.monitoring.history(MODEL)) == 2


def test_monitor_schedule_puts_the_checks_on_the_workers(served: Path, invoke: Invoke,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    done = invoke("monitor", "schedule", MODEL, "--every", "1h", "--window", "1d",
                  "--alert", "dataset_drift")
    assert done.exit_code == 0, done.output
    assert "'0 * * * *' (UTC)" in done.output and "modelyard.monitor v1" in done.output
    triggers = invoke("pipelines", "triggers")
    assert "modelyard.monitor" in triggers.output and "0 * * * *" in triggers.output

    from datetime import UTC, datetime, timedelta

    with modelyard.connect(capture_git=False, capture_packages=False) as yard:
        [queued] = yard.pipelines.fire_due(datetime.now(UTC) + timedelta(hours=1))
    worker = invoke("worker", "--until-idle", "--poll", "0.1")
    assert worker.exit_code == 0, worker.output
    assert "modelyard.monitor (schedule) succeeded" in worker.output
    logs = invoke("pipelines", "logs", queued.run_id)
    assert f"{MODEL}: 0 predictions, 0 alert(s) fired" in logs.output  # nothing served today

    off = invoke("monitor", "schedule", "--off")
    assert off.exit_code == 0 and "off the workers' scheduler" in off.output
    assert "modelyard.monitor" not in invoke("pipelines", "triggers").output
    code, _, err = run_main(monkeypatch, capsys, "monitor", "schedule", "--every", "90m")
    assert code == 1 and "90m" in err and "cron" in err
    code, _, err = run_main(monkeypatch, capsys, "monitor", "schedule", "--off", "--every",
                            "1h")
    assert code == 1 and "--off" in err
