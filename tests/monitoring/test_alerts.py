"""Alert rules: their text forms and config forms."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelyard.errors import InvalidInputError
from modelyard.monitoring.alerts import (
    FEATURE_STATISTICS,
    PERCENTILES,
    AlertRule,
    parse_rule,
    rules_from_config,
)
from modelyard.registry.evaluation import HIGHER_IS_BETTER

# -- text forms ----------------------------------------------------------------------------

FORMS = [
    ("dataset_drift", AlertRule("dataset_drift")),
    ("prediction_drift", AlertRule("prediction_drift")),
    ("quality", AlertRule("quality")),
    ("drift(claim_amount)", AlertRule("feature_drift", "drifted", "claim_amount")),
    ("drift(*)", AlertRule("feature_drift", "drifted")),
    ("psi(claim_amount) > 0.2", AlertRule("feature_drift", "psi", "claim_amount", ">", 0.2)),
    ("jensenshannon(region) > 0.1", AlertRule("feature_drift", "jensenshannon", "region", ">",
                                              0.1)),
    ("wasserstein(age) > 0.3", AlertRule("feature_drift", "wasserstein", "age", ">", 0.3)),
    ("psi(*) > 0.25", AlertRule("feature_drift", "psi", None, ">", 0.25)),
    ("rmse > 900", AlertRule("performance", "rmse", op=">", bound=900.0)),
    ("accuracy < 0.8", AlertRule("performance", "accuracy", op="<", bound=0.8)),
    ("r2 <= 0.5", AlertRule("performance", "r2", op="<=", bound=0.5)),
    ("rmse worse by 10%", AlertRule("performance", "rmse", bound=10.0, relative=True)),
    ("estimated accuracy < 0.8", AlertRule("estimated_performance", "accuracy", op="<",
                                           bound=0.8)),
    ("error_rate > 0.05", AlertRule("error_rate", op=">", bound=0.05)),
    ("p99_latency_ms > 250", AlertRule("latency", "p99", op=">", bound=250.0)),
    ("p50_latency_ms >= 80", AlertRule("latency", "p50", op=">=", bound=80.0)),
    ("p90_latency_ms > 1.5", AlertRule("latency", "p90", op=">", bound=1.5)),
    ("quality [critical]", AlertRule("quality", severity="critical")),
    ("rmse > 900 [critical]", AlertRule("performance", "rmse", op=">", bound=900.0,
                                        severity="critical")),
]


@pytest.mark.parametrize(("text", "rule"), FORMS, ids=[t for t, _ in FORMS])
def test_every_form_parses_and_writes_back(text: str, rule: AlertRule) -> None:
    assert parse_rule(text) == rule
    assert rule.text() == text
    assert AlertRule.from_dict(json.loads(json.dumps(rule.to_dict()))) == rule


@pytest.mark.parametrize(("loose", "canonical"), [
    ("drift", "drift(*)"),
    ("  psi( claim amount )>=0.2  ", "psi(claim amount) >= 0.2"),
    ("RMSE>9e2", "rmse > 900"),
    ("r2 < .5", "r2 < 0.5"),
    ("rmse  worse  by 10.5 %", "rmse worse by 10.5%"),
    ("quality [warning]", "quality"),
    ("quality[CRITICAL]", "quality [critical]"),
    ("psi(f(x)) > 1", "psi(f(x)) > 1"),
])
def test_loose_spellings_read_to_the_canonical_form(loose: str, canonical: str) -> None:
    assert parse_rule(loose).text() == canonical


def test_the_name_is_not_in_the_text_but_labels_the_rule() -> None:
    rule = AlertRule("performance", "rmse", op=">", bound=900.0, name="cost error")
    assert rule.text() == "rmse > 900" and rule.label == "cost error"
    assert AlertRule.from_dict(rule.to_dict()) == rule
    assert parse_rule("rmse > 900 [critical]").label == "rmse > 900"


columns = st.text(min_size=1, max_size=12).filter(lambda c: c == c.strip() and c != "*")
bounds = st.floats(allow_nan=False, allow_infinity=False)
ops = st.sampled_from([">", ">=", "<", "<="])
severities = st.sampled_from(["warning", "critical"])
rules = st.one_of(
    st.builds(AlertRule, st.sampled_from(["dataset_drift", "prediction_drift", "quality"]),
              severity=severities),
    st.builds(AlertRule, st.just("feature_drift"), st.just("drifted"), st.none() | columns,
              severity=severities),
    st.builds(AlertRule, st.just("feature_drift"), st.sampled_from(FEATURE_STATISTICS),
              st.none() | columns, ops, bounds, severity=severities),
    st.builds(AlertRule, st.sampled_from(["performance", "estimated_performance"]),
              st.sampled_from(sorted(HIGHER_IS_BETTER)), op=ops, bound=bounds,
              severity=severities),
    st.builds(AlertRule, st.just("performance"), st.sampled_from(sorted(HIGHER_IS_BETTER)),
              bound=st.floats(min_value=0, max_value=1e6), relative=st.just(True),
              severity=severities),
    st.builds(AlertRule, st.just("error_rate"), op=ops, bound=st.floats(0, 1),
              severity=severities),
    st.builds(AlertRule, st.just("latency"), st.sampled_from(PERCENTILES), op=ops,
              bound=bounds, severity=severities),
)


@settings(max_examples=300, deadline=None)
@given(rules)
def test_text_round_trips(rule: AlertRule) -> None:
    assert parse_rule(rule.text()) == rule
    assert parse_rule(rule.text()).text() == rule.text()
    assert AlertRule.from_dict(json.loads(json.dumps(rule.to_dict()))) == rule


@pytest.mark.parametrize(("text", "expected"), [
    ("", "expected one of"),
    ("rmse", "expected one of"),
    ("rmse = 900", "expected one of"),
    ("rmse > lots", "expected one of"),
    ("rmsee > 900", "unknown metric 'rmsee'"),
    ("estimated foo < 1", "unknown metric 'foo'"),
    ("psi(claim_amount)", "needs a comparison"),
    ("psi() > 0.2", "the column is empty"),
    ("drift(age) > 0.2", "takes no comparison"),
    ("median(age) > 3", "unknown column statistic 'median'"),
    ("kl(age)", "unknown function 'kl'"),
    ("p95_latency_ms > 100", "expected p50, p90 or p99"),
    ("error_rate > 5", "error_rate is a share between 0 and 1"),
    ("rmse > 1e999", "not a finite number"),
    ("rmse worse by -5%", "bound >= 0"),
    ("rmse worse by 10", "expected one of"),
    ("quality [urgent]", "[warning] or [critical]"),
])
def test_bad_texts_name_the_text_and_what_was_expected(text: str, expected: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        parse_rule(text, field="models.claims.monitoring.alerts[0]")
    assert repr(text) in info.value.message
    assert expected in info.value.message
    assert info.value.details["field"] == "models.claims.monitoring.alerts[0]"


def test_parse_rule_wants_text() -> None:
    with pytest.raises(InvalidInputError, match="must be a rule text, not int"):
        parse_rule(3)  # type: ignore[arg-type]


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"kind": "drifty"}, "unknown kind"),
    ({"kind": "quality", "op": ">", "bound": 1.0}, "takes no op or bound"),
    ({"kind": "performance", "metric": "rmse"}, "bound must be a finite number"),
    ({"kind": "performance", "metric": "rmse", "op": "!=", "bound": 1.0}, "op must be one of"),
    ({"kind": "performance", "op": ">", "bound": 1.0}, "not metric None"),
    ({"kind": "latency", "metric": "p95", "op": ">", "bound": 1.0}, "p50, p90, p99"),
    ({"kind": "error_rate", "feature": "age", "op": ">", "bound": 0.1}, "only for feature_drift"),
    ({"kind": "feature_drift", "feature": " age"}, "without surrounding spaces"),
    ({"kind": "quality", "relative": True}, "only for performance rules"),
    ({"kind": "performance", "metric": "rmse", "op": ">", "bound": 1.0, "relative": True},
     "takes no op"),
    ({"kind": "quality", "severity": "urgent"}, "severity must be"),
    ({"kind": "quality", "name": " "}, "name must be a non-empty string"),
])
def test_rules_are_checked_however_they_are_made(kwargs: dict[str, Any], expected: str) -> None:
    with pytest.raises(InvalidInputError, match=expected):
        AlertRule(**kwargs)
    with pytest.raises(InvalidInputError, match=expected):
        AlertRule.from_dict(kwargs, field="alerts[0]")


def test_an_integral_bound_is_a_float_and_a_bool_or_huge_one_is_refused() -> None:
    rule = AlertRule.from_dict({"kind": "performance", "metric": "rmse", "op": ">", "bound": 0})
    assert rule.to_dict()["bound"] == 0.0 and isinstance(rule.bound, float)
    for bound in (True, 10**400, float("nan"), "900"):
        with pytest.raises(InvalidInputError, match="bound must be a finite number"):
            AlertRule("performance", "rmse", op=">", bound=bound)  # type: ignore[arg-type]


def test_from_dict_rejects_unknown_keys() -> None:
    with pytest.raises(InvalidInputError, match="only the keys") as info:
        AlertRule.from_dict({"kind": "quality", "colour": "red"}, field="alerts[2]")
    assert info.value.details["field"] == "alerts[2]"


# -- config form ---------------------------------------------------------------------------

def test_config_items_are_texts_or_tables() -> None:
    found = rules_from_config([
        "dataset_drift",
        {"rule": "rmse > 900", "severity": "critical", "name": "cost error"},
        {"rule": "psi(*) > 0.25 [critical]"},
        AlertRule("latency", "p99", op=">", bound=250.0).to_dict(),
    ])
    assert found == [
        AlertRule("dataset_drift"),
        AlertRule("performance", "rmse", op=">", bound=900.0, name="cost error",
                  severity="critical"),
        AlertRule("feature_drift", "psi", None, ">", 0.25, severity="critical"),
        AlertRule("latency", "p99", op=">", bound=250.0),
    ]


@pytest.mark.parametrize(("items", "field", "expected"), [
    ("rmse > 900", "alerts", "must be a list of rules"),
    (["quality", 3], "alerts[1]", "a rule text or a table, not int"),
    (["quality", "rmse >> 9"], "alerts[1]", "'rmse >> 9'"),
    ([{"rule": "rmse > 1", "when": "always"}], "alerts[0]", "got keys ['rule', 'when']"),
    ([{"severity": "critical"}], "alerts[0]", "with a rule text"),
    ([{"rule": "rmse > 1", "severity": "loud"}], "alerts[0].severity", "'warning' or"),
    ([{"rule": "rmse > 1 [critical]", "severity": "warning"}], "alerts[0].severity",
     "keep one"),
    ([{"rule": "rmse > 1", "name": ""}], "alerts[0].name", "non-empty string"),
    ([{"rule": "rmse > 1 ["}], "alerts[0].rule", "'rmse > 1 ['"),
    (["rmse > 1", {"rule": "rmse > 1", "severity": "critical"}], "alerts[1]", "repeats"),
])
def test_config_errors_name_the_item(items: Any, field: str, expected: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        rules_from_config(items)
    assert info.value.details["field"] == field
    assert expected in info.value.message


def test_two_rules_of_the_same_text_may_differ_by_name() -> None:
    found = rules_from_config([{"rule": "rmse > 1", "name": "a"}, {"rule": "rmse > 1"}])
    assert [r.label for r in found] == ["a", "rmse > 1"]
