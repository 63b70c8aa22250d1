"""Alert rules held against a monitoring result: fired, ok or no data, and why."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from modelyard.errors import InvalidInputError
from modelyard.monitoring.alerts import parse_rule
from modelyard.monitoring.rule_checks import evaluate_rules


def drift_row(column: str, statistic: float | None, drifted: bool,
              status: str = "ok", message: str = "") -> dict[str, Any]:
    return {"column": column, "kind": "numeric", "test": "psi", "statistic": statistic,
            "p_value": None, "threshold": 0.2, "threshold_source": "floor",
            "drifted": drifted, "status": status, "message": message,
            "reference": {"count": 100, "nulls": 0}, "current": None}


def result() -> dict[str, Any]:
    """A whole monitoring result, every section present."""
    return {
        "model": "claims-model", "version": 4,
        "window": {"start": "2024-05-01T00:00:00+00:00", "end": "2024-05-02T00:00:00+00:00"},
        "rows": 1234,
        "drift": {
            "dataset_drift": False, "drifted_share": 0.25, "share_bound": 0.5,
            "drifted_columns": ["claim_amount"],
            "columns": [drift_row("claim_amount", 0.31, True, message="psi 0.31 > 0.2"),
                        drift_row("age", 0.05, False, message="psi 0.05 <= 0.2"),
                        drift_row("region", 0.01, False),
                        drift_row("notes", None, False, "all_null_current",
                                  "no value present in the current window")],
            "predictions": [drift_row("prediction", 0.02, False)],
        },
        "feature_statistics": {
            "claim_amount": {"psi": 0.31, "jensenshannon": 0.12, "wasserstein": 0.4},
            "age": {"psi": 0.05, "jensenshannon": 0.02, "wasserstein": 0.1},
            "region": {"psi": 0.27, "jensenshannon": 0.09},
        },
        "quality": {"ok": True, "issues": []},
        "performance": {
            "task": "regression", "rows": 1234, "labelled_rows": 800,
            "metrics": {"rmse": 1012.5, "r2": 0.61},
            "changes": [{"metric": "rmse", "value": 1012.5, "reference": 886.4,
                         "change": 126.1, "relative_change": 0.142, "worse": True},
                        {"metric": "r2", "value": 0.61, "reference": 0.6, "change": 0.01,
                         "relative_change": 0.0167, "worse": False}],
        },
        "estimate": {"method": "cbpe", "metrics": {"accuracy": 0.81, "f1": 0.7}},
        # as modelyard.monitoring.health writes it: requests are the answered ones, and
        # error_rate = errors / (requests + errors)
        "health": {"requests": 469, "errors": 31, "error_rate": 0.062,
                   "latency_ms": {"p50": 40.0, "p90": 120.0, "p99": 312.0},
                   "versions": {"4": {"requests": 469, "errors": 31, "error_rate": 0.062,
                                      "latency_ms": {"p50": 40.0, "p90": 120.0, "p99": 312.0}}}},
    }


def outcome(text: str, data: dict[str, Any]) -> Any:
    (found,) = evaluate_rules([parse_rule(text)], data)
    return found


# one rule of each form (the forms test_alerts.py reads)
TEXTS = ["dataset_drift", "prediction_drift", "quality", "drift(claim_amount)", "drift(*)",
         "psi(claim_amount) > 0.2", "jensenshannon(region) > 0.1", "wasserstein(age) > 0.3",
         "psi(*) > 0.25", "rmse > 900", "accuracy < 0.8", "r2 <= 0.5", "rmse worse by 10%",
         "estimated accuracy < 0.8", "error_rate > 0.05", "p99_latency_ms > 250",
         "p50_latency_ms >= 80", "p90_latency_ms > 1.5", "quality [critical]",
         "rmse > 900 [critical]"]


def test_outcomes_come_in_rule_order_and_are_json_safe() -> None:
    texts = TEXTS
    found = evaluate_rules([parse_rule(t) for t in texts], result())
    assert [o.rule.text() for o in found] == texts
    for o in found:
        assert o.fired == (o.status == "fired")
        assert json.loads(json.dumps(o.to_dict()))["label"] == o.rule.label


def test_an_empty_result_gives_no_data_for_every_rule() -> None:
    found = evaluate_rules([parse_rule(t) for t in TEXTS], {"model": "m"})
    assert {o.status for o in found} == {"no data"}
    assert all(not o.fired and o.value is None and o.message for o in found)


def test_the_result_must_be_a_mapping() -> None:
    with pytest.raises(InvalidInputError, match="result must be"):
        evaluate_rules([parse_rule("quality")], [])  # type: ignore[arg-type]


def test_dataset_drift() -> None:
    data = result()
    ok = outcome("dataset_drift", data)
    assert (ok.status, ok.value) == ("ok", 0.25)
    assert ok.message == "no dataset drift: 25% of the feature columns drifted (bound 50%): " \
        "claim_amount"
    data["drift"].update(dataset_drift=True, drifted_share=0.75,
                         drifted_columns=["claim_amount", "age", "region"])
    fired = outcome("dataset_drift", data)
    assert fired.fired and fired.message.startswith("dataset drift: 75%")
    assert fired.evidence["drifted_columns"] == ["claim_amount", "age", "region"]
    data["drift"] = None
    assert outcome("dataset_drift", data).message == \
        "no drift check in the result: dataset drift not measured"


def test_prediction_drift() -> None:
    data = result()
    assert outcome("prediction_drift", data).status == "ok"
    data["drift"]["predictions"] = [drift_row("prediction", 0.4, True, message="psi 0.4 > 0.2")]
    fired = outcome("prediction_drift", data)
    assert fired.fired and fired.value == 1
    assert "prediction (psi 0.4 > 0.2)" in fired.message
    assert fired.evidence["columns"][0]["statistic"] == 0.4
    assert "reference" not in fired.evidence["columns"][0]  # summaries are left out
    data["drift"]["predictions"] = []
    assert outcome("prediction_drift", data).status == "no data"


def test_one_column_drift() -> None:
    data = result()
    fired = outcome("drift(claim_amount)", data)
    assert fired.fired and fired.value == 0.31
    assert fired.message == "claim_amount drifted: psi 0.31 > 0.2"
    assert fired.evidence["column"] == "claim_amount"
    ok = outcome("drift(age)", data)
    assert ok.status == "ok" and ok.message == "age did not drift: psi 0.05 <= 0.2"
    not_compared = outcome("drift(notes)", data)
    assert not_compared.status == "no data"
    assert "no value present in the current window" in not_compared.message
    unknown = outcome("drift(colour)", data)
    assert unknown.status == "no data" and "'colour' is not among" in unknown.message


def test_any_column_drift() -> None:
    data = result()
    fired = outcome("drift(*)", data)
    assert fired.fired and fired.value == 1
    assert fired.message.startswith("feature drift in 1 of 3 feature columns: claim_amount")
    data["drift"]["columns"][0]["drifted"] = False
    ok = outcome("drift", data)
    assert ok.status == "ok" and ok.message == "no feature drift in the 3 compared feature " \
        "column(s)"
    data["drift"]["columns"] = []
    assert outcome("drift", data).status == "no data"


def test_one_column_statistic() -> None:
    data = result()
    fired = outcome("psi(claim_amount) > 0.2", data)
    assert fired.fired and fired.message == "psi(claim_amount) = 0.31 > 0.2"
    assert fired.evidence == {"column": "claim_amount", "psi": 0.31, "jensenshannon": 0.12,
                              "wasserstein": 0.4}
    ok = outcome("jensenshannon(region) > 0.1", data)
    assert ok.status == "ok" and ok.message == "jensenshannon(region) = 0.09 (not > 0.1)"
    missing = outcome("wasserstein(region) > 0.3", data)
    assert missing.status == "no data" and "numeric columns only" in missing.message
    assert outcome("psi(colour) > 0.2", data).status == "no data"
    data["feature_statistics"] = None
    assert outcome("psi(age) > 0.2", data).status == "no data"


def test_any_column_statistic() -> None:
    data = result()
    fired = outcome("psi(*) > 0.25", data)
    assert fired.fired and fired.value == 0.31
    assert fired.message == "psi > 0.25 in 2 of 3 columns: claim_amount = 0.31, region = 0.27"
    assert fired.evidence["columns"] == {"claim_amount": 0.31, "region": 0.27}
    ok = outcome("psi(*) > 0.5", data)
    assert ok.status == "ok" and ok.value == 0.31
    assert ok.message == "no column has psi > 0.5 (closest: claim_amount = 0.31, over 3 columns)"
    low = outcome("jensenshannon(*) < 0.01", data)
    assert low.status == "ok" and low.value == 0.02  # the smallest is the closest
    assert outcome("wasserstein(*) > 0.3", data).evidence["columns"] == {"claim_amount": 0.4}
    data["feature_statistics"] = {"region": {"psi": 0.1}}
    assert outcome("wasserstein(*) > 0.3", data).status == "no data"


def test_quality() -> None:
    data = result()
    assert outcome("quality", data).message == "no data quality issue"
    data["quality"] = {"ok": False, "issues": ["claim_amount: 12% missing", "age: 3 below min"]}
    fired = outcome("quality", data)
    assert fired.fired and fired.value == 2
    assert fired.message == "2 data quality issue(s): claim_amount: 12% missing; age: 3 below min"
    data["quality"] = None
    assert outcome("quality", data).status == "no data"


def test_measured_performance() -> None:
    data = result()
    fired = outcome("rmse > 900", data)
    assert fired.fired and fired.value == 1012.5
    assert fired.message == "rmse = 1,012.5 > 900 over 800 labelled rows"
    ok = outcome("r2 < 0.5", data)
    assert ok.status == "ok" and ok.message == "r2 = 0.61 (not < 0.5) over 800 labelled rows"
    unmeasured = outcome("accuracy < 0.8", data)
    assert unmeasured.status == "no data"
    assert unmeasured.message == "accuracy was not measured in the window (measured: rmse, r2)"
    data["performance"]["labelled_rows"] = 0
    assert outcome("rmse > 900", data).message == \
        "no labels in the window yet: performance not measured"
    data["performance"] = None
    assert outcome("rmse > 900", data).status == "no data"


def test_relative_performance_follows_the_metric_direction() -> None:
    data = result()
    fired = outcome("rmse worse by 10%", data)
    assert fired.fired and fired.value == pytest.approx(14.226, abs=1e-3)
    assert fired.message == "rmse 1,012.5 is 14.2% worse than the registered 886.4 (bound 10%)"
    assert fired.evidence["reference"] == 886.4
    assert outcome("rmse worse by 15%", data).status == "ok"
    better = outcome("r2 worse by 1%", data)  # higher is better: 0.61 over 0.6 is an improvement
    assert better.status == "ok" and better.value == pytest.approx(-1.667, abs=1e-3)
    assert "1.7% better than the registered 0.6" in better.message
    data["performance"]["changes"][1]["value"] = 0.5
    assert outcome("r2 worse by 10%", data).fired  # 16.7% worse
    assert outcome("mae worse by 10%", data).message == \
        "no registered evaluation of mae to compare with"
    data["performance"]["changes"][0]["reference"] = 0.0
    assert outcome("rmse worse by 10%", data).status == "no data"
    data["performance"] = None
    assert outcome("rmse worse by 10%", data).status == "no data"


def test_estimated_performance() -> None:
    data = result()
    ok = outcome("estimated accuracy < 0.8", data)
    assert ok.status == "ok" and ok.message == "estimated accuracy = 0.81 (not < 0.8) (cbpe)"
    fired = outcome("estimated f1 < 0.8", data)
    assert fired.fired and fired.evidence == {"metric": "f1", "value": 0.7, "method": "cbpe"}
    assert outcome("estimated roc_auc < 0.8", data).status == "no data"
    data["estimate"] = None
    assert outcome("estimated accuracy < 0.8", data).message == \
        "no performance estimate in the result"


def test_error_rate() -> None:
    data = result()
    fired = outcome("error_rate > 0.05", data)
    assert fired.fired and fired.message == "error_rate = 0.062 > 0.05 (31 of 500 requests failed)"
    assert fired.evidence["latency_ms"]["p99"] == 312.0
    assert outcome("error_rate > 0.1", data).status == "ok"
    del data["health"]["error_rate"]
    assert outcome("error_rate > 0.05", data).value == pytest.approx(0.062)
    data["health"].update(requests=0, errors=5, error_rate=None)  # every request failed
    assert outcome("error_rate > 0.05", data).value == 1.0
    data["health"].update(requests=0, errors=0)
    assert outcome("error_rate > 0.05", data).message == \
        "no requests in the window: error rate not measured"
    data["health"] = None
    assert outcome("error_rate > 0.05", data).status == "no data"


def test_latency() -> None:
    data = result()
    fired = outcome("p99_latency_ms > 250", data)
    assert fired.fired
    assert fired.message == "p99 latency = 312 ms > 250 ms over 469 answered requests"
    assert outcome("p50_latency_ms > 250", data).status == "ok"
    data["health"]["latency_ms"] = {"p50": 40.0, "p99": None}
    assert outcome("p99_latency_ms > 250", data).message == \
        "the serving health has no p99 latency"
    data["health"].update(requests=0, errors=3, latency_ms={"p50": None})
    assert outcome("p50_latency_ms > 250", data).message == \
        "no answered request in the window: latency not measured"
    data.pop("health")
    assert outcome("p90_latency_ms > 250", data).message == \
        "no serving health in the result: latency not measured"


def test_evaluation_does_not_change_the_result() -> None:
    data = result()
    before = copy.deepcopy(data)
    evaluate_rules([parse_rule(t) for t in TEXTS], data)
    assert data == before
