"""Alert rules over a monitoring result: what they say, in text and in config.

A rule is written as one line of text (in ``modelyard.toml``, ``[models.NAME.monitoring]
alerts = [...]``) and read by :func:`parse_rule`; :meth:`AlertRule.text` writes the same
canonical form back. :func:`modelyard.monitoring.rule_checks.evaluate_rules` holds the rules
against a monitoring result.

Text forms (``OP`` is one of ``>``, ``>=``, ``<``, ``<=``; ``N`` a number such as ``900``,
``0.05`` or ``1e-3``; ``COLUMN`` a column name, or ``*`` for any feature column)

=====================================  ====================================================
text                                   fires when
=====================================  ====================================================
``dataset_drift``                      the drift check declared dataset drift
``prediction_drift``                   a prediction (output) column drifted
``quality``                            the data quality check found any issue
``drift(COLUMN)``                      that feature column drifted (``drift`` or
                                       ``drift(*)``: any feature column drifted)
``psi(COLUMN) OP N``                   the column's population stability index holds
                                       against ``N``; ``psi(*) OP N``: any column's does.
                                       Also ``jensenshannon(...)`` and ``wasserstein(...)``
                                       (numeric columns only)
``METRIC OP N``                        the measured performance metric (``rmse > 900``,
                                       ``accuracy < 0.8``; the names of
                                       :data:`modelyard.stats.evaluation.METRICS`)
``METRIC worse by N%``                 the measured metric is at least N% worse than the
                                       registered evaluation ("worse" follows
                                       :data:`~modelyard.stats.evaluation.HIGHER_IS_BETTER`)
``estimated METRIC OP N``              the estimated performance (e.g. CBPE) holds
``error_rate OP N``                    the serving error rate (a share, 0 to 1) holds
``p50_latency_ms OP N``                the serving latency percentile, in ms (also ``p90``,
                                       ``p99``)
=====================================  ====================================================

Any form may end in `` [critical]`` (or `` [warning]``, the default) to set the severity.
The canonical text carries everything but :attr:`AlertRule.name`, which only the config
table form (``{rule = "rmse > 900", severity = "critical", name = "cost error"}``) or
:meth:`AlertRule.to_dict` hold. For ``worse by`` rules :attr:`AlertRule.bound` is in
percent (``10.0`` for 10%).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

from modelyard.errors import InvalidInputError
from modelyard.stats.evaluation import HIGHER_IS_BETTER

__all__ = ["KINDS", "AlertRule", "Kind", "Op", "Severity", "finite_number",
           "number_text", "parse_rule", "rules_from_config"]

Kind = Literal["dataset_drift", "prediction_drift", "feature_drift", "quality", "performance",
               "estimated_performance", "error_rate", "latency"]
Op = Literal[">", ">=", "<", "<="]
Severity = Literal["warning", "critical"]
KINDS: tuple[Kind, ...] = get_args(Kind)
OPS: tuple[Op, ...] = get_args(Op)
SEVERITIES: tuple[Severity, ...] = get_args(Severity)

FEATURE_STATISTICS = ("psi", "jensenshannon", "wasserstein")
PERCENTILES = ("p50", "p90", "p99")
_FLAGS: tuple[Kind, ...] = ("dataset_drift", "prediction_drift", "quality")
_NUM = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_OP = r">=|<=|>|<"
_NO_FORM = "not one of the rule forms"
_SUFFIX = re.compile(r"\s*\[\s*(\w*)\s*\]$")
FORMS = ("dataset_drift | prediction_drift | quality | drift(COLUMN) | "
         "psi(COLUMN) OP N (also jensenshannon, wasserstein; COLUMN * for any) | "
         "METRIC OP N (e.g. rmse > 900) | METRIC worse by N% | estimated METRIC OP N | "
         "error_rate OP N | p50_latency_ms OP N (p90, p99); OP one of > >= < <=; "
         "optional suffix [critical]")


def number_text(x: float) -> str:
    """The canonical text of a number: parses back to the same float."""
    if x.is_integer() and abs(x) < 1e16:
        return str(int(x))
    return repr(x)


def finite_number(value: object) -> float | None:
    """``value`` as a float if it is a finite int or float (a bool is not a number)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int past the float range
        return None
    return number if math.isfinite(number) else None


def _bad(message: str, field_name: str) -> InvalidInputError:
    return InvalidInputError(message, field=field_name)


@dataclass(frozen=True)
class AlertRule:
    """One alert rule; see the module docstring for its text forms."""

    kind: Kind
    metric: str | None = None  # performance metric, feature statistic or "drifted", p50/p90/p99
    feature: str | None = None  # feature_drift: one column, or None for any column
    op: Op | None = None
    bound: float | None = None
    relative: bool = False  # performance: bound is a % worsening against the registered value
    name: str | None = None  # shown in alerts; default: the text form
    severity: Severity = "warning"

    def __post_init__(self) -> None:
        if self.kind == "feature_drift" and self.metric is None:
            object.__setattr__(self, "metric", "drifted")
        if self.feature == "*":
            object.__setattr__(self, "feature", None)
        if isinstance(self.bound, int) and (bound := finite_number(self.bound)) is not None:
            object.__setattr__(self, "bound", bound)  # 900 -> 900.0 (a bool is not a number)
        problem = self._problem()
        if problem:
            raise _bad(f"rule: {problem}", "rule")

    def _problem(self) -> str | None:
        if self.kind not in KINDS:
            return f"unknown kind {self.kind!r}; expected one of {', '.join(KINDS)}"
        if self.severity not in SEVERITIES:
            return f"severity must be 'warning' or 'critical', not {self.severity!r}"
        if self.name is not None and (not isinstance(self.name, str) or not self.name.strip()):
            return f"name must be a non-empty string or None, not {self.name!r}"
        if self.feature is not None and (self.kind != "feature_drift" or not _column_ok(
                self.feature)):
            return (f"feature {self.feature!r} is only for feature_drift rules and must be a "
                    "non-empty column name without surrounding spaces")
        if not isinstance(self.relative, bool) or (self.relative and self.kind != "performance"):
            return "relative must be true or false, and only for performance rules"
        allowed = _metrics_for(self.kind)
        if (self.metric is None) != (not allowed) or (allowed and self.metric not in allowed):
            expected = ", ".join(allowed) if allowed else "no metric"
            return f"a {self.kind} rule takes {expected}, not metric {self.metric!r}"
        needs_bound = self.kind not in _FLAGS and self.metric != "drifted"
        if not needs_bound:
            if self.op is not None or self.bound is not None or self.relative:
                return f"a {self.kind} rule takes no op or bound"
            return None
        if self.bound is None or finite_number(self.bound) is None:
            return f"bound must be a finite number, not {self.bound!r}"
        if self.relative:
            if self.op is not None or self.bound < 0:
                return "a relative rule takes no op and a bound >= 0 (percent worse)"
        elif self.op not in OPS:
            return f"op must be one of {', '.join(OPS)}, not {self.op!r}"
        if self.kind == "error_rate" and not 0 <= self.bound <= 1:
            return (f"error_rate is a share between 0 and 1, not {number_text(self.bound)} "
                    "(5% is 0.05)")
        return None

    @property
    def condition(self) -> str:
        """The text form without the severity suffix."""
        bound = "" if self.bound is None else number_text(float(self.bound))
        feature = "*" if self.feature is None else self.feature
        if self.kind in _FLAGS:
            return self.kind
        if self.kind == "feature_drift":
            if self.metric == "drifted":
                return f"drift({feature})"
            return f"{self.metric}({feature}) {self.op} {bound}"
        if self.relative:
            return f"{self.metric} worse by {bound}%"
        subject = {"performance": f"{self.metric}", "error_rate": "error_rate",
                   "estimated_performance": f"estimated {self.metric}",
                   "latency": f"{self.metric}_latency_ms"}[self.kind]
        return f"{subject} {self.op} {bound}"

    @property
    def label(self) -> str:
        """What alerts call the rule: its name, else its condition."""
        return self.name or self.condition

    def text(self) -> str:
        """The canonical text form; :func:`parse_rule` reads it back to an equal rule
        (less :attr:`name`, which the text does not carry)."""
        return self.condition + (" [critical]" if self.severity == "critical" else "")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "metric": self.metric, "feature": self.feature,
                "op": self.op, "bound": self.bound, "relative": self.relative,
                "name": self.name, "severity": self.severity}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, field: str = "rule") -> AlertRule:
        if not isinstance(data, Mapping):
            raise _bad(f"{field} must be a table, not {type(data).__name__}", field)
        unknown = set(data) - {"kind", "metric", "feature", "op", "bound", "relative", "name",
                               "severity"}
        if unknown or "kind" not in data:
            raise _bad(f"{field} must have a kind and only the keys kind, metric, feature, op, "
                       f"bound, relative, name, severity; got {sorted(map(str, data))}", field)
        try:
            return cls(data["kind"], data.get("metric"), data.get("feature"), data.get("op"),
                       data.get("bound"), data.get("relative", False), data.get("name"),
                       data.get("severity", "warning"))
        except InvalidInputError as exc:
            raise _bad(f"{field}: {exc.message.removeprefix('rule: ')}", field) from None


def _column_ok(column: object) -> bool:
    return isinstance(column, str) and bool(column) and column == column.strip()


def _metrics_for(kind: Kind) -> tuple[str, ...]:
    if kind in ("performance", "estimated_performance"):
        return tuple(HIGHER_IS_BETTER)
    return {"feature_drift": (*FEATURE_STATISTICS, "drifted"), "latency": PERCENTILES}.get(
        kind, ())


# -- parsing -------------------------------------------------------------------------------

def parse_rule(text: str, *, field: str = "rule") -> AlertRule:
    """Read one rule from its text form (see the module docstring)."""
    if not isinstance(text, str):
        raise _bad(f"{field} must be a rule text, not {type(text).__name__}", field)
    condition, severity = text.strip(), "warning"
    suffix = _SUFFIX.search(condition)
    if suffix:
        severity, condition = suffix.group(1).lower(), condition[:suffix.start()]
        if severity not in SEVERITIES:
            raise _bad(f"{field}: {text!r} ends in [{suffix.group(1)}]; the severity is "
                       "[warning] or [critical]", field)
    try:
        return _parse_condition(condition, cast(Severity, severity))
    except InvalidInputError as exc:
        detail = exc.message.removeprefix("rule: ")
        if detail == _NO_FORM:
            detail = f"expected one of: {FORMS}"
        raise _bad(f"{field}: cannot read the alert rule {text!r}: {detail}", field) from None


def _parse_condition(text: str, severity: Severity) -> AlertRule:
    def bound(number: str) -> float:
        value = float(number)
        if not math.isfinite(value):
            raise _bad(f"{number} is not a finite number", "rule")
        return value

    if text in _FLAGS:
        return AlertRule(text, severity=severity)
    if text == "drift":
        return AlertRule("feature_drift", "drifted", severity=severity)
    if m := re.fullmatch(rf"(\w+)\s*\((.*)\)\s*({_OP})\s*({_NUM})", text, re.DOTALL):
        func, column = m.group(1).lower(), m.group(2).strip()
        if func not in FEATURE_STATISTICS:
            raise _bad(("drift(...) takes no comparison" if func == "drift" else
                        f"unknown column statistic {func!r}") + "; the column statistics are "
                       f"{', '.join(FEATURE_STATISTICS)}", "rule")
        return AlertRule("feature_drift", func, _column(column), cast(Op, m.group(3)),
                         bound(m.group(4)), severity=severity)
    if m := re.fullmatch(r"(\w+)\s*\((.*)\)", text, re.DOTALL):
        func, column = m.group(1).lower(), m.group(2).strip()
        if func != "drift":
            raise _bad(f"{func}(...) needs a comparison, e.g. {func}(column) > 0.2"
                       if func in FEATURE_STATISTICS else f"unknown function {func!r}", "rule")
        return AlertRule("feature_drift", "drifted", _column(column), severity=severity)
    if m := re.fullmatch(rf"(\w+)\s+worse\s+by\s+({_NUM})\s*%", text):
        return AlertRule("performance", _metric(m.group(1)), bound=bound(m.group(2)),
                         relative=True, severity=severity)
    if m := re.fullmatch(rf"estimated\s+(\w+)\s*({_OP})\s*({_NUM})", text):
        return AlertRule("estimated_performance", _metric(m.group(1)), op=cast(Op, m.group(2)),
                         bound=bound(m.group(3)), severity=severity)
    if m := re.fullmatch(rf"(\w+)\s*({_OP})\s*({_NUM})", text):
        subject, op, number = m.group(1).lower(), cast(Op, m.group(2)), bound(m.group(3))
        if subject == "error_rate":
            return AlertRule("error_rate", op=op, bound=number, severity=severity)
        if (p := subject.removesuffix("_latency_ms")) != subject:
            if p not in PERCENTILES:
                raise _bad(f"unknown latency percentile {p!r}; expected p50, p90 or p99",
                           "rule")
            return AlertRule("latency", p, op=op, bound=number, severity=severity)
        return AlertRule("performance", _metric(subject), op=op, bound=number,
                         severity=severity)
    raise _bad(_NO_FORM, "rule")


def _column(column: str) -> str | None:
    if not column:
        raise _bad("the column is empty; name one, or * for any", "rule")
    return None if column == "*" else column


def _metric(name: str) -> str:
    if name.lower() not in HIGHER_IS_BETTER:
        raise _bad(f"unknown metric {name!r}; the metrics are {', '.join(HIGHER_IS_BETTER)}, "
                   "plus error_rate and p50/p90/p99_latency_ms", "rule")
    return name.lower()


def rules_from_config(items: Sequence[str | Mapping[str, Any]], *,
                      field: str = "alerts") -> list[AlertRule]:
    """Rules from the config list: each item a rule text, a table ``{rule = "...",
    severity = "critical", name = "..."}``, or an :meth:`AlertRule.to_dict` table."""
    if isinstance(items, str | bytes) or not isinstance(items, Sequence):
        raise _bad(f"{field} must be a list of rules, not {type(items).__name__}", field)
    rules: list[AlertRule] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        where = f"{field}[{i}]"
        rule = _rule_from_item(item, where)
        if rule.label in seen:
            raise _bad(f"{where}: {rule.label!r} repeats {field}[{seen[rule.label]}]; give one "
                       "of them another name", where)
        seen[rule.label] = i
        rules.append(rule)
    return rules


def _rule_from_item(item: str | Mapping[str, Any], where: str) -> AlertRule:
    if isinstance(item, str):
        return parse_rule(item, field=where)
    if not isinstance(item, Mapping):
        raise _bad(f"{where} must be a rule text or a table, not {type(item).__name__}", where)
    if "kind" in item:
        return AlertRule.from_dict(item, field=where)
    if set(item) - {"rule", "severity", "name"} or not isinstance(item.get("rule"), str):
        raise _bad(f"{where} must be a table with a rule text and optionally severity and "
                   f"name, e.g. {{rule = \"rmse > 900\", severity = \"critical\"}}; got keys "
                   f"{sorted(map(str, item))}", where)
    rule = parse_rule(item["rule"], field=f"{where}.rule")
    severity, name = item.get("severity", rule.severity), item.get("name")
    if severity not in SEVERITIES:
        raise _bad(f"{where}.severity must be 'warning' or 'critical', not {severity!r}",
                   f"{where}.severity")
    if _SUFFIX.search(item["rule"].strip()) and severity != rule.severity:
        raise _bad(f"{where}: the rule text says [{rule.severity}] but severity is "
                   f"{severity!r}; keep one", f"{where}.severity")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise _bad(f"{where}.name must be a non-empty string, not {name!r}", f"{where}.name")
    return AlertRule(rule.kind, rule.metric, rule.feature, rule.op, rule.bound, rule.relative,
                     name, cast(Severity, severity))

