"""Quality gates: declarations, the text and config forms, and every pure check."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from modelyard.errors import InvalidInputError
from modelyard.registry.gates import (
    BehaviourGate,
    FairnessGate,
    GateReport,
    GateResult,
    MetricGate,
    RegressionGate,
    SignatureGate,
    check_fairness,
    check_metric,
    check_regression,
    check_signature,
    gate_from_dict,
    gates_from_config,
    parse_metric_gate,
    primary_metric,
    run_behaviour,
)

# --- metric gates -----------------------------------------------------------------------


def test_parse_metric_gate() -> None:
    gate = parse_metric_gate("r2 >= 0.85")
    assert gate == MetricGate("r2", ">=", 0.85)
    assert gate.name == "r2 >= 0.85"
    on = parse_metric_gate("  rmse<=12.5 on holdout ")
    assert on == MetricGate("rmse", "<=", 12.5, data="holdout")
    assert on.name == "rmse <= 12.5 on holdout"
    assert parse_metric_gate("log_loss < 1e-1").bound == pytest.approx(0.1)
    assert parse_metric_gate("accuracy > .9").op == ">"


@pytest.mark.parametrize("text", ["r2 => 0.85", "r2 >= high", "", "r2 >= 0.85 at holdout",
                                  ">= 0.85", "r2 == 0.85", "r2 >= 0.85 on"])
def test_parse_metric_gate_refuses_bad_text(text: str) -> None:
    with pytest.raises(InvalidInputError, match="METRIC OP NUMBER") as caught:
        parse_metric_gate(text)
    assert repr(text) in caught.value.message


def test_unknown_metric_is_refused_with_the_known_ones() -> None:
    with pytest.raises(InvalidInputError, match=r"'auc'.*accuracy.*rmse"):
        MetricGate("auc", ">=", 0.8)
    with pytest.raises(InvalidInputError, match=r"'auc >= 0\.8'.*unknown metric 'auc'"):
        parse_metric_gate("auc >= 0.8")
    with pytest.raises(InvalidInputError, match="'gini'"):
        RegressionGate(metrics=("roc_auc", "gini"))
    with pytest.raises(InvalidInputError, match="op"):
        MetricGate("r2", "==", 0.8)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="bound"):
        MetricGate("r2", ">=", "high")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="data"):
        MetricGate("r2", ">=", 0.8, data="")
    with pytest.raises(InvalidInputError, match="data"):
        FairnessGate("gender", max_error_gap=1.0, data=3)  # type: ignore[arg-type]


def test_check_metric_pass_fail_and_boundaries() -> None:
    gate = MetricGate("r2", ">=", 0.85)
    passed = check_metric(gate, {"r2": 0.9, "rmse": 3.0})
    assert passed.passed and passed.kind == "metric" and passed.gate == "r2 >= 0.85"
    assert passed.measured == {"r2": 0.9} and passed.bounds == {"r2": ">= 0.85"}
    failed = check_metric(gate, {"r2": 0.81})
    assert not failed.passed and "0.81" in failed.detail
    assert check_metric(gate, {"r2": 0.85}).passed
    assert not check_metric(MetricGate("r2", ">", 0.85), {"r2": 0.85}).passed
    lower = MetricGate("rmse", "<=", 900)
    assert check_metric(lower, {"rmse": 899.0}).passed
    assert not check_metric(lower, {"rmse": 901.0}).passed
    assert not check_metric(MetricGate("rmse", "<", 900), {"rmse": 900.0}).passed


def test_check_metric_missing_metric_fails() -> None:
    result = check_metric(MetricGate("roc_auc", ">=", 0.8, data="holdout"), {"accuracy": 0.9})
    assert not result.passed
    assert result.measured == {"roc_auc": None}
    assert "roc_auc was not measured on holdout" in result.detail
    assert not check_metric(MetricGate("r2", ">=", 0.8), {"r2": float("nan")}).passed


# --- regression gates -------------------------------------------------------------------


def test_regression_without_holder_passes() -> None:
    result = check_regression(RegressionGate(), "regression", {"rmse": 10.0}, None,
                              "production")
    assert result.passed and result.detail == "no current holder"
    assert result.gate == "no regression (rmse) vs production"
    assert result.kind == "regression"


def test_regression_higher_is_better() -> None:
    gate = RegressionGate(metrics=("accuracy",), max_drop=0.02)
    ok = check_regression(gate, "classification", {"accuracy": 0.88}, {"accuracy": 0.9},
                          "production")
    assert ok.passed  # exactly the allowed drop, despite float rounding
    assert ok.measured == {"accuracy": 0.88, "accuracy (production)": 0.9}
    assert ok.bounds == {"accuracy": ">= 0.88"}
    bad = check_regression(gate, "classification", {"accuracy": 0.87}, {"accuracy": 0.9},
                           "production")
    assert not bad.passed
    assert "worse than production's 0.9" in bad.detail
    better = check_regression(RegressionGate(metrics=("accuracy",)), "classification",
                              {"accuracy": 0.95}, {"accuracy": 0.9}, "production")
    assert better.passed


def test_regression_lower_is_better() -> None:
    gate = RegressionGate(metrics=("rmse",), max_drop=1.0)
    assert check_regression(gate, "regression", {"rmse": 10.5}, {"rmse": 10.0}, "p").passed
    assert check_regression(gate, "regression", {"rmse": 5.0}, {"rmse": 10.0}, "p").passed
    worse = check_regression(gate, "regression", {"rmse": 11.5}, {"rmse": 10.0}, "p")
    assert not worse.passed
    assert worse.bounds == {"rmse": "<= 11"}


def test_regression_relative_drop() -> None:
    gate = RegressionGate(metrics=("rmse",), max_relative_drop=0.02)
    assert check_regression(gate, "regression", {"rmse": 101.9}, {"rmse": 100.0}, "p").passed
    assert not check_regression(gate, "regression", {"rmse": 102.1}, {"rmse": 100.0},
                                "p").passed
    # the larger of the two allowances applies
    both = RegressionGate(metrics=("rmse",), max_drop=5.0, max_relative_drop=0.02)
    assert check_regression(both, "regression", {"rmse": 104.0}, {"rmse": 100.0}, "p").passed
    auc = RegressionGate(metrics=("roc_auc",), max_relative_drop=0.1)
    assert check_regression(auc, "classification", {"roc_auc": 0.73}, {"roc_auc": 0.8},
                            "p").passed
    assert not check_regression(auc, "classification", {"roc_auc": 0.71}, {"roc_auc": 0.8},
                                "p").passed


def test_regression_several_metrics_all_must_hold() -> None:
    gate = RegressionGate(metrics=("rmse", "r2"))
    result = check_regression(gate, "regression", {"rmse": 9.0, "r2": 0.7},
                              {"rmse": 10.0, "r2": 0.8}, "staging")
    assert not result.passed
    assert result.gate == "no regression (rmse, r2) vs staging"
    assert "r2" in result.detail and "rmse" not in result.detail


def test_regression_primary_metric() -> None:
    gate = RegressionGate()
    assert gate.name == "no regression (primary metric)"
    with_auc = check_regression(gate, "classification", {"roc_auc": 0.8, "accuracy": 0.9},
                                {"roc_auc": 0.85, "accuracy": 0.8}, "production")
    assert not with_auc.passed and with_auc.gate.startswith("no regression (roc_auc)")
    without = check_regression(gate, "classification", {"roc_auc": 0.8, "accuracy": 0.9},
                               {"accuracy": 0.8}, "production")
    assert without.passed and without.gate.startswith("no regression (accuracy)")
    assert primary_metric("regression", {}) == "rmse"
    with pytest.raises(InvalidInputError):
        primary_metric("ranking", {})  # type: ignore[arg-type]


def test_regression_missing_metrics() -> None:
    gate = RegressionGate(metrics=("rmse",))
    no_candidate = check_regression(gate, "regression", {}, {"rmse": 1.0}, "p")
    assert not no_candidate.passed and "not measured on the candidate" in no_candidate.detail
    no_holder_metric = check_regression(gate, "regression", {"rmse": 1.0}, {"mae": 1.0}, "p")
    assert no_holder_metric.passed and "p has no rmse" in no_holder_metric.detail


def test_regression_gate_validation() -> None:
    with pytest.raises(InvalidInputError, match="max_drop"):
        RegressionGate(max_drop=-0.1)
    with pytest.raises(InvalidInputError, match="max_relative_drop"):
        RegressionGate(max_relative_drop=float("inf"))
    assert RegressionGate(metrics="rmse").metrics == ("rmse",)  # type: ignore[arg-type]
    assert RegressionGate(data="holdout").name == "no regression (primary metric) on holdout"


# --- fairness gates ---------------------------------------------------------------------


def test_fairness_gate_needs_a_bound() -> None:
    with pytest.raises(InvalidInputError, match="at least one"):
        FairnessGate("gender")
    with pytest.raises(InvalidInputError, match="max_error_gap"):
        FairnessGate("gender", max_error_gap=-1.0)


def test_check_fairness() -> None:
    gate = FairnessGate("gender", max_demographic_parity_difference=0.1,
                        max_equalized_odds_difference=0.2)
    assert gate.name == "fairness (gender)"
    ok = check_fairness(gate, {"demographic_parity_difference": 0.05,
                               "equalized_odds_difference": 0.2})
    assert ok.passed and ok.kind == "fairness"
    assert ok.bounds == {"demographic_parity_difference": "<= 0.1",
                         "equalized_odds_difference": "<= 0.2"}
    bad = check_fairness(gate, {"demographic_parity_difference": 0.5,
                                "equalized_odds_difference": 0.1})
    assert not bad.passed and "demographic_parity_difference = 0.5 exceeds 0.1" in bad.detail
    missing = check_fairness(gate, {"demographic_parity_difference": 0.0})
    assert not missing.passed and "equalized_odds_difference was not measured" in missing.detail


def test_max_error_gap_bounds_the_mae_gap() -> None:
    gate = FairnessGate("region", max_error_gap=150.0)
    assert check_fairness(gate, {"error_gap_mae": 120.0, "error_gap_rmse": 400.0}).passed
    failed = check_fairness(gate, {"error_gap_mae": 151.0})
    assert not failed.passed
    assert failed.measured == {"error_gap_mae": 151.0}


# --- behaviour gates --------------------------------------------------------------------


class _Doubler:
    def predict(self, values: list[float]) -> list[float]:
        return [2 * v for v in values]


def check_doubles(model: Any) -> None:
    assert model.predict([1.0]) == [2.0], "doubling broke"


def test_behaviour_passes() -> None:
    gate = BehaviourGate(check_doubles)
    assert gate.name == "behaviour check_doubles"
    result = run_behaviour(gate, _Doubler())
    assert result.passed and result.kind == "behaviour" and result.gate == gate.name


def test_behaviour_assertion_message_is_the_detail() -> None:
    class Broken:
        def predict(self, values: list[float]) -> list[float]:
            return values

    result = run_behaviour(BehaviourGate(check_doubles, name="doubles"), Broken())
    assert not result.passed
    assert result.gate == "doubles"
    assert result.detail.startswith("doubling broke")
    assert "\n" not in result.detail

    def bare(model: Any) -> None:
        raise AssertionError

    assert run_behaviour(BehaviourGate(bare), Broken()).detail == "assertion failed"


def test_behaviour_other_exception_fails_with_its_type() -> None:
    def explodes(model: Any) -> None:
        raise KeyError("price")

    result = run_behaviour(BehaviourGate(explodes), _Doubler())
    assert not result.passed
    assert result.detail == "KeyError: 'price'"


def test_behaviour_dotted_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "claims_checks"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "behaviour.py").write_text(textwrap.dedent("""
        def test_doubles(model):
            assert model.predict([3.0]) == [6.0], "3 should double to 6"

        def test_triples(model):
            assert model.predict([3.0]) == [9.0], "3 should triple to 9"

        class Suite:
            @staticmethod
            def test_positive(model):
                assert model.predict([1.0])[0] > 0
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "claims_checks", raising=False)
    monkeypatch.delitem(sys.modules, "claims_checks.behaviour", raising=False)
    ok = BehaviourGate("claims_checks.behaviour:test_doubles")
    assert ok.name == "behaviour test_doubles"
    assert run_behaviour(ok, _Doubler()).passed
    bad = run_behaviour(BehaviourGate("claims_checks.behaviour:test_triples"), _Doubler())
    assert not bad.passed and bad.detail == "3 should triple to 9"
    nested = BehaviourGate("claims_checks.behaviour:Suite.test_positive")
    assert nested.name == "behaviour test_positive"
    assert run_behaviour(nested, _Doubler()).passed
    absent = run_behaviour(BehaviourGate("claims_checks.behaviour:test_missing"), _Doubler())
    assert not absent.passed and "AttributeError" in absent.detail
    no_module = run_behaviour(BehaviourGate("claims_checks.nowhere:test"), _Doubler())
    assert not no_module.passed and "ModuleNotFoundError" in no_module.detail


def test_behaviour_gate_validation_and_dicts() -> None:
    for bad in ("no_colon", "mod:", ":func", "a b:c"):
        with pytest.raises(InvalidInputError, match=r"package\.module:function"):
            BehaviourGate(bad)
    with pytest.raises(InvalidInputError):
        BehaviourGate(42)  # type: ignore[arg-type]
    gate = BehaviourGate(check_doubles)
    assert gate.to_dict()["test"] == f"{__name__}:check_doubles"
    with pytest.raises(InvalidInputError, match="module-level"):
        BehaviourGate(lambda model: None).to_dict()
    text = BehaviourGate("pkg.mod:test_x", name="x")
    assert gate_from_dict(text.to_dict()) == text


# --- signature, results, reports -------------------------------------------------------


def test_check_signature() -> None:
    ok = check_signature([])
    assert ok.passed and ok.gate == "signature" and ok.kind == "signature"
    bad = check_signature(["column 'age' removed", "column 'price' became string"])
    assert not bad.passed
    assert bad.detail == "column 'age' removed; column 'price' became string"
    assert bad.measured == {"problems": 2.0}
    assert SignatureGate().name == "signature"


def test_gate_dicts_round_trip() -> None:
    gates = [MetricGate("r2", ">=", 0.85, data="holdout"),
             RegressionGate(metrics=("rmse", "mae"), max_drop=1.0, max_relative_drop=0.05),
             FairnessGate("gender", max_error_gap=150.0, data="holdout"),
             BehaviourGate("pkg.mod:test_x"), SignatureGate()]
    for gate in gates:
        data = json.loads(json.dumps(gate.to_dict()))
        assert gate_from_dict(data) == gate


def test_gate_from_dict_errors() -> None:
    with pytest.raises(InvalidInputError, match="unknown gate kind 'speed'"):
        gate_from_dict({"kind": "speed"})
    with pytest.raises(InvalidInputError, match="malformed metric gate"):
        gate_from_dict({"kind": "metric", "metric": "r2"})
    with pytest.raises(InvalidInputError):
        gate_from_dict({"kind": "signature", "strict": True})
    with pytest.raises(InvalidInputError):
        gate_from_dict(["metric"])  # type: ignore[arg-type]


def _report() -> GateReport:
    return GateReport((
        check_metric(MetricGate("r2", ">=", 0.85), {"r2": 0.81}),
        check_metric(MetricGate("rmse", "<=", 900), {"rmse": 850.0}),
        check_regression(RegressionGate(metrics=("rmse",)), "regression", {"rmse": 850.0},
                         {"rmse": 800.0}, "production"),
        check_signature([]),
    ))


def test_report_passed_failures_and_summary() -> None:
    report = _report()
    assert not report.passed
    assert [r.gate for r in report.failures] == ["r2 >= 0.85",
                                                 "no regression (rmse) vs production"]
    summary = report.summary()
    lines = summary.splitlines()
    assert lines[0] == "2 of 4 gate(s) failed:"
    assert "r2 >= 0.85: measured r2=0.81; bound r2 >= 0.85" in lines[1]
    assert "rmse=850" in lines[2] and "rmse (production)=800" in lines[2]
    assert "rmse <= 800" in lines[2]
    assert "rmse <= 900" not in summary
    passing = GateReport((check_signature([]),))
    assert passing.passed and passing.failures == []
    assert passing.summary() == "all 1 gate(s) passed"
    assert GateReport().passed


def test_report_dict_round_trip() -> None:
    report = _report()
    data = json.loads(json.dumps(report.to_dict()))
    assert data["passed"] is False
    assert GateReport.from_dict(data) == report
    result = report.results[0]
    assert GateResult.from_dict(result.to_dict()) == result
    with pytest.raises(InvalidInputError):
        GateReport.from_dict({"results": "nope"})
    with pytest.raises(InvalidInputError):
        GateResult.from_dict({"gate": "x"})


# --- modelyard.toml ---------------------------------------------------------------------


def test_gates_from_config() -> None:
    config = {
        "metrics": ["r2 >= 0.85", "rmse <= 900 on holdout"],
        "no_regression": {"metrics": ["rmse"], "max_relative_drop": 0.02},
        "fairness": {"sensitive": "gender", "max_error_gap": 150.0},
        "behaviour": ["claims_tests:test_more_damage_costs_more"],
        "signature": True,
    }
    assert gates_from_config(config) == [
        MetricGate("r2", ">=", 0.85),
        MetricGate("rmse", "<=", 900.0, data="holdout"),
        RegressionGate(metrics=("rmse",), max_relative_drop=0.02),
        FairnessGate("gender", max_error_gap=150.0),
        BehaviourGate("claims_tests:test_more_damage_costs_more"),
        SignatureGate(),
    ]


def test_gates_from_config_shorthands() -> None:
    gates = gates_from_config({"metrics": "accuracy >= 0.9", "no_regression": True,
                               "fairness": [{"sensitive": "a", "max_error_gap": 1},
                                            {"sensitive": "b", "max_error_gap": 2}],
                               "behaviour": "pkg:test_y", "signature": False})
    assert gates == [MetricGate("accuracy", ">=", 0.9), RegressionGate(),
                     FairnessGate("a", max_error_gap=1.0), FairnessGate("b", max_error_gap=2.0),
                     BehaviourGate("pkg:test_y")]
    assert gates_from_config({"no_regression": False}) == []
    assert gates_from_config({}) == []


@pytest.mark.parametrize(("config", "field", "message"), [
    ({"latency": ["p99 < 10"]}, "gates.latency", "unknown gate key 'latency'"),
    ({"metrics": ["r2 => 0.85"]}, "gates.metrics", "r2 => 0.85"),
    ({"metrics": ["gini >= 0.3"]}, "gates.metrics", "unknown metric 'gini'"),
    ({"metrics": 0.85}, "gates.metrics", "must be text"),
    ({"no_regression": {"metrics": ["rmse"], "max_drop": "a lot"}}, "gates.no_regression",
     "max_drop"),
    ({"no_regression": {"metric": "rmse"}}, "gates.no_regression", "metric"),
    ({"no_regression": {"metrics": "gini"}}, "gates.no_regression", "gini"),
    ({"fairness": {"sensitive": "gender"}}, "gates.fairness", "at least one"),
    ({"fairness": "gender"}, "gates.fairness", "a table"),
    ({"behaviour": ["not a path"]}, "gates.behaviour", "package.module:function"),
    ({"signature": "yes"}, "gates.signature", "true or false"),
])
def test_gates_from_config_errors(config: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message) as caught:
        gates_from_config(config)
    assert caught.value.details["field"] == field
    assert field.split(".", 1)[1] in caught.value.message or field == "gates.metrics"


def test_gates_from_config_needs_a_table() -> None:
    with pytest.raises(InvalidInputError) as caught:
        gates_from_config(["r2 >= 0.85"])  # type: ignore[arg-type]
    assert caught.value.details["field"] == "gates"
