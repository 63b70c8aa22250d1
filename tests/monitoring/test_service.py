"""yard.monitoring end to end: a registered model's reference, windows of the prediction log,
drift, quality, performance once labels arrive, stored results and alerts sent."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelyard import Yard
from modelyard.errors import InvalidInputError, NotFoundError
from tests.monitoring.support import (
    DAY0,
    INPUTS,
    MODEL,
    claims,
    label,
    log_window,
    register_regressor,
)

sqlite_only = pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)
WEEK = timedelta(days=7)


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []
    handler = type("Hook", (_Hook,), {"received": received})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", received
    finally:
        server.shutdown()
        server.server_close()


def _week(n: int) -> dict[str, Any]:
    return {"start": DAY0 + n * WEEK, "end": DAY0 + (n + 1) * WEEK}


def test_registration_keeps_a_reference_profile_of_inputs_and_predictions(yard: Yard) -> None:
    version = register_regressor(yard, evaluate=False)
    profile = yard.models.reference(MODEL, version)
    assert profile is not None and profile.rows == 3_000
    assert set(profile.columns) == set(INPUTS)
    assert profile.columns["region"].kind == "categorical"
    assert set(profile.predictions) == {"prediction"}
    assert yard.models.get_version(MODEL, version).spec["reference_rows"] == 3_000


def test_drift_is_flagged_on_the_shifted_week_only_and_alerts_are_stored_and_sent(
        yard: Yard, webhook: tuple[str, list[dict[str, Any]]]) -> None:
    url, received = webhook
    version = register_regressor(yard)
    log_window(yard, version, claims(2_000, 10), _week(0)["start"], prefix="a")
    log_window(yard, version, claims(2_000, 11, shift=1.5, south=0.55), _week(1)["start"],
               prefix="b")
    yard.monitoring.set_rules(MODEL, ["dataset_drift", "psi(vehicle_value) > 0.2"],
                              notify=[f"webhook:{url}"])

    calm = yard.monitoring.check(MODEL, **_week(0))
    assert calm.rows == 2_000 and calm.version == version
    assert calm.drift is not None and not calm.drift["dataset_drift"]
    assert calm.drift["drifted_columns"] == []
    assert calm.fired == [] and received == []
    assert calm.to_dict()["quality"]["ok"]

    shifted = yard.monitoring.check(MODEL, **_week(1))
    assert shifted.drift is not None and shifted.drift["dataset_drift"]
    assert set(shifted.drift["drifted_columns"]) == {"vehicle_value", "region"}
    assert [p["drifted"] for p in shifted.drift["predictions"]] == [True]
    assert shifted.to_dict()["feature_statistics"]["vehicle_value"]["psi"] > 0.2
    assert sorted(o.rule.text() for o in shifted.fired) == [
        "dataset_drift", "psi(vehicle_value) > 0.2"]

    assert len(received) == 1 and len(received[0]["alerts"]) == 2
    stored = yard.monitoring.alerts(MODEL)
    assert len(stored) == 2
    assert all(a.deliveries and a.deliveries[0]["ok"] for a in stored)
    assert all(a.result_id == shifted.result_id for a in stored)
    evidence = {a.rule: a.evidence for a in stored}
    assert evidence["dataset_drift"]  # the numbers that decided it
    history = yard.monitoring.history(MODEL)
    assert [h["dataset_drift"] for h in history] == [False, True]
    assert yard.monitoring.get_result(shifted.result_id)["drift"]["dataset_drift"]


def test_performance_once_labels_arrive_against_the_registered_evaluation(
        yard: Yard) -> None:
    version = register_regressor(yard)
    same = claims(1_500, 20)
    worse = claims(1_500, 21, cost_factor=1.3)  # inputs as before; the world costs more
    ids_same = log_window(yard, version, same, _week(0)["start"], prefix="s")
    ids_worse = log_window(yard, version, worse, _week(1)["start"], prefix="w")
    rules = ["rmse worse by 50%"]

    before = yard.monitoring.check(MODEL, **_week(0), rules=rules)
    assert before.to_dict()["performance"] is None
    assert any("no labels" in n for n in before.notes)
    assert before.alerts[0].status == "no data"

    label(yard, ids_same, same)
    label(yard, ids_worse[:1_000], worse.iloc[:1_000])
    good = yard.monitoring.check(MODEL, **_week(0), rules=rules)
    bad = yard.monitoring.check(MODEL, **_week(1), rules=rules)
    good_perf, bad_perf = good.to_dict()["performance"], bad.to_dict()["performance"]
    assert good_perf["labelled_rows"] == 1_500
    assert bad_perf["rows"] == 1_500 and bad_perf["labelled_rows"] == 1_000

    from sklearn.metrics import mean_squared_error

    model = yard.models.load(MODEL, version)
    expected = mean_squared_error(worse["cost"][:1_000], model.predict(worse[INPUTS][:1_000]))
    assert bad_perf["metrics"]["rmse"] == pytest.approx(np.sqrt(expected), rel=1e-9)
    change = {c["metric"]: c for c in bad_perf["changes"]}["rmse"]
    assert change["worse"] and change["relative_change"] > 0.5
    assert not good.fired and [o.rule.text() for o in bad.fired] == ["rmse worse by 50%"]
    assert not bad.drift["dataset_drift"]  # type: ignore[index] - the inputs did not move


@sqlite_only
def test_a_window_with_no_predictions_is_stored_with_a_note(yard: Yard) -> None:
    register_regressor(yard, evaluate=False)
    result = yard.monitoring.check(MODEL, **_week(5), rules=["dataset_drift"])
    assert result.rows == 0 and result.drift is None
    assert any("no predictions" in n for n in result.notes)
    assert result.alerts[0].status == "no data" and not result.fired
    assert [h["rows"] for h in yard.monitoring.history(MODEL)] == [0]


@sqlite_only
def test_rows_answered_without_a_prediction_stay_out_of_the_checks(yard: Yard) -> None:
    from modelyard.backends.metadata.predictions import PredictionRecord

    version = register_regressor(yard, evaluate=False)
    frame = claims(300, 31)
    log_window(yard, version, frame, _week(0)["start"])
    start_us = int(_week(0)["start"].timestamp() * 1e6)
    nulls = {name: None for name in INPUTS}
    yard.predictions.write([
        PredictionRecord(f"gone{i}", 0, MODEL, version, "primary", start_us + i, 4.0,
                         {"customer_id": i}, nulls, {"prediction": None}, "missing",
                         "missing entity: no value for age") for i in range(200)])
    result = yard.monitoring.check(MODEL, **_week(0))
    assert result.rows == 300  # the predicted rows only
    quality = result.to_dict()["quality"]
    assert not any("null" in issue for issue in quality["issues"]), quality["issues"]
    assert yard.predictions.count(MODEL) == 500  # all of them logged


@sqlite_only
def test_schema_changes_and_empty_columns_are_reported_not_raised(yard: Yard) -> None:
    version = register_regressor(yard, evaluate=False)
    frame = claims(500, 30)
    served = frame.drop(columns=["age"]).assign(region=None, channel="web")
    log_window(yard, version, frame, _week(0)["start"], logged=served)
    result = yard.monitoring.check(MODEL, **_week(0)).to_dict()
    drift, quality = result["drift"], result["quality"]
    assert drift["missing_columns"] == ["age"] and drift["extra_columns"] == ["channel"]
    statuses = {c["column"]: c["status"] for c in drift["columns"]}
    assert statuses["region"] == "all_null_current"
    issues = " ".join(quality["issues"])
    assert "'age' is missing" in issues and "'channel' is new" in issues


@sqlite_only
def test_a_version_without_reference_gets_one_set_later(yard: Yard) -> None:
    from tests.monitoring.support import fit_regressor

    train = claims(1_000, 40)
    record = yard.models.register(fit_regressor(train), MODEL, onnx=False)
    assert yard.models.reference(MODEL, record.version) is None
    log_window(yard, record.version, claims(300, 41), _week(0)["start"])
    first = yard.monitoring.check(MODEL, **_week(0), store=False)
    assert first.drift is None and any("no reference" in n for n in first.notes)
    with pytest.raises(InvalidInputError, match="region"):
        yard.monitoring.set_reference(f"{MODEL}:{record.version}", train[["age"]])
    yard.monitoring.set_reference(f"{MODEL}:{record.version}", train[INPUTS])
    second = yard.monitoring.check(MODEL, **_week(0), store=False)
    assert second.drift is not None and second.drift["reference_rows"] == 1_000
    assert yard.monitoring.history(MODEL) == []  # store=False kept nothing


@sqlite_only
def test_a_frame_can_be_checked_without_the_log(yard: Yard) -> None:
    register_regressor(yard)
    result = yard.monitoring.check(MODEL, data=claims(800, 50, shift=2.0), label="cost",
                                   store=False)
    assert result.drift is not None and "vehicle_value" in result.drift["drifted_columns"]
    assert result.to_dict()["performance"]["labelled_rows"] == 800
    with pytest.raises(InvalidInputError, match="no rows"):
        yard.monitoring.check(MODEL, data=claims(10, 1).iloc[:0], store=False)
    with pytest.raises(InvalidInputError, match="region"):
        yard.monitoring.check(MODEL, data=claims(10, 1).drop(columns=["region"]), store=False)


@sqlite_only
def test_labels_for_unknown_requests_are_refused_whole(yard: Yard) -> None:
    version = register_regressor(yard, evaluate=False)
    log_window(yard, version, claims(10, 60), _week(0)["start"], prefix="k")
    with pytest.raises(InvalidInputError, match=r"no logged prediction|match"):
        yard.log_labels(MODEL, pd.DataFrame({"request_id": ["nope-1", "nope-2"],
                                             "cost": [1.0, 2.0]}), values=["cost"])
    logged = yard.read_predictions(MODEL)
    assert len(logged) == 10 and not [c for c in logged.columns if c.startswith("label.")]


@sqlite_only
def test_classifier_performance_is_estimated_before_labels(yard: Yard) -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(70)
    x = rng.normal(size=(4_000, 2))
    y = (rng.random(4_000) < 1 / (1 + np.exp(-(1.5 * x[:, 0] - x[:, 1])))).astype(int)
    frame = pd.DataFrame(x, columns=["a", "b"])
    model = LogisticRegression().fit(frame.iloc[:2_000], y[:2_000])
    record = yard.models.register(model, "churn", input_example=frame.iloc[:2_000],
                                  onnx=False)
    holdout = frame.iloc[2_000:3_000].assign(y=y[2_000:3_000])
    yard.models.evaluate(f"churn:{record.version}", holdout, label="y", dataset="holdout")
    from modelyard.backends.metadata.predictions import PredictionRecord

    window = frame.iloc[3_000:]
    start_us = int(DAY0.timestamp() * 1e6)
    predicted = model.predict(window)
    yard.predictions.write([
        PredictionRecord(f"c{i}", 0, "churn", record.version, "primary", start_us + i,
                         1.0, None, row, {"prediction": int(predicted[i])})
        for i, row in enumerate(window.to_dict("records"))])
    result = yard.monitoring.check("churn", **_week(0), rules=["estimated accuracy < 0.5"])
    estimate = result.to_dict()["estimate"]
    assert estimate is not None and estimate["method"] == "cbpe"
    actual = float((predicted == y[3_000:]).mean())
    assert estimate["metrics"]["accuracy"] == pytest.approx(actual, abs=0.04)
    assert result.to_dict()["performance"] is None
    assert not result.fired


@sqlite_only
def test_rules_and_window_from_the_project_file(yard: Yard, project: Path) -> None:
    version = register_regressor(yard, evaluate=False)
    log_window(yard, version, claims(1_000, 80, shift=2.0), _week(0)["start"])
    with (project / "modelyard.toml").open("a") as fh:
        fh.write(f'\n[models.{MODEL}.monitoring]\nalerts = ["drift(vehicle_value)"]\n'
                 'notify = ["log"]\n')
    assert yard.monitoring.monitored_models() == [MODEL]
    rules, notify = yard.monitoring.rules(MODEL)
    assert [r.text() for r in rules] == ["drift(vehicle_value)"] and notify == ["log"]
    result = yard.monitoring.check(MODEL, **_week(0))
    assert [o.rule.text() for o in result.fired] == ["drift(vehicle_value)"]
    with (project / "modelyard.toml").open("a") as fh:
        fh.write("windw = '7d'\n")
    with pytest.raises(InvalidInputError, match="windw"):
        yard.monitoring.rules(MODEL)


@sqlite_only
def test_bad_arguments_name_what_was_expected(yard: Yard) -> None:
    register_regressor(yard, evaluate=False)
    with pytest.raises(InvalidInputError, match="duration"):
        yard.monitoring.check(MODEL, window="7 days")
    with pytest.raises(InvalidInputError, match="before its end"):
        yard.monitoring.check(MODEL, start="2025-03-08", end="2025-03-01")
    with pytest.raises(InvalidInputError, match="not both"):
        yard.monitoring.check(MODEL, window="7d", start="2025-03-01")
    with pytest.raises(NotFoundError):
        yard.monitoring.check("no-such-model", window="7d")
    with pytest.raises(InvalidInputError):
        yard.monitoring.set_rules(MODEL, ["rmse >> 3"])
    with pytest.raises(InvalidInputError):
        yard.monitoring.set_rules(MODEL, ["dataset_drift"], notify=["pager:now"])
    with pytest.raises(InvalidInputError, match="pager"):
        yard.monitoring.check(MODEL, window="1d", notify=["pager:now"])
    assert yard.monitoring.history(MODEL) == []  # refused before anything was stored


@sqlite_only
def test_report_writes_html_and_json_with_history(yard: Yard, tmp_path: Path) -> None:
    version = register_regressor(yard, evaluate=False)
    log_window(yard, version, claims(800, 90), _week(0)["start"], prefix="x")
    log_window(yard, version, claims(800, 91, shift=1.5), _week(1)["start"], prefix="y")
    yard.monitoring.check(MODEL, **_week(0))
    html, data = tmp_path / "out" / "report.html", tmp_path / "report.json"
    result = yard.monitoring.report(MODEL, **_week(1), html=html, json_path=data)
    text = html.read_text()
    assert "vehicle_value" in text and "<svg" in text and "claims-model" in text
    stored = json.loads(data.read_text())
    assert stored["result"]["result_id"] == result.result_id
    assert len(stored["history"]) == 2
    assert not list(tmp_path.glob("**/*.tmp"))


@sqlite_only
def test_run_checks_every_model_with_rules(yard: Yard) -> None:
    register_regressor(yard, evaluate=False)
    assert yard.monitoring.run() == []  # no model has rules yet
    yard.monitoring.set_rules(MODEL, ["quality"])
    [result] = yard.monitoring.run(window="1h")
    assert result.model == MODEL and result.rows == 0
    assert [h["result_id"] for h in yard.monitoring.history(MODEL)] == [result.result_id]
