"""Alert rules held against a monitoring result: whether each fires.

:func:`evaluate_rules` holds each :class:`~modelyard.monitoring.alerts.AlertRule` against a
monitoring result (the JSON-safe dict of a monitoring check) and says, for each, ``fired``,
``ok`` or ``no data`` (the value the rule needs is absent from the result, e.g. no labels
yet), with a message and the piece of the result that decided it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from modelyard.errors import InvalidInputError
from modelyard.monitoring.alerts import AlertRule, finite_number, number_text
from modelyard.stats.evaluation import HIGHER_IS_BETTER

__all__ = ["RuleOutcome", "evaluate_rules"]

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
}


def _show(x: float) -> str:
    """A number for a human: 0.31, 886.4, 1,012.5."""
    if abs(x) >= 1000:
        text = f"{x:,.1f}"
        return text[:-2] if text.endswith(".0") else text
    return f"{x:.4g}"


@dataclass(frozen=True)
class RuleOutcome:
    """A rule held against one result. ``value`` is the number compared to the bound (for
    ``worse by`` rules the percent worsening; for flag rules a count or share)."""

    rule: AlertRule
    fired: bool
    status: Literal["fired", "ok", "no data"]
    value: float | None
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule.to_dict(), "label": self.rule.label, "fired": self.fired,
                "status": self.status, "value": self.value, "message": self.message,
                "evidence": self.evidence}


_ROW_KEYS = ("column", "kind", "test", "statistic", "p_value", "threshold", "drifted", "status",
             "message")
_HEALTH_KEYS = ("requests", "unmeasured", "errors", "error_rate", "latency_ms")
# what a threshold rule compares: (value, subject, unit, evidence, note), or why it cannot
_Reading = tuple[float, str, str, dict[str, Any], str] | str


def evaluate_rules(rules: Sequence[AlertRule], result: Mapping[str, Any]) -> list[RuleOutcome]:
    """Hold every rule against one monitoring result, in order. A rule whose value is not
    in the result (a section None or missing, a column not compared) does not fire: its
    status is ``no data`` and its message says why."""
    if not isinstance(result, Mapping):
        raise InvalidInputError(
            f"result must be a monitoring result dict, not {type(result).__name__}",
            field="result")
    return [_evaluate(rule, result) for rule in rules]


def _evaluate(rule: AlertRule, result: Mapping[str, Any]) -> RuleOutcome:
    if rule.kind == "dataset_drift":
        return _dataset_drift(rule, _section(result, "drift"))
    if rule.kind == "prediction_drift":
        return _drifted_rows(rule, _section(result, "drift"), "predictions")
    if rule.kind == "quality":
        return _quality(rule, _section(result, "quality"))
    if rule.kind == "feature_drift" and rule.metric == "drifted":
        return _drifted_rows(rule, _section(result, "drift"), "columns")
    if rule.kind == "feature_drift" and rule.feature is None:
        return _any_column(rule, _section(result, "feature_statistics"))
    if rule.relative:
        return _relative(rule, _section(result, "performance"))
    reading = _read(rule, result)
    if isinstance(reading, str):
        return _no_data(rule, reading)
    value, subject, unit, evidence, note = reading
    assert rule.op is not None and rule.bound is not None
    fired = _COMPARE[rule.op](value, rule.bound)
    held = f"{rule.op} {number_text(rule.bound)}{unit}"
    message = f"{subject} = {_show(value)}{unit} " + (held if fired else f"(not {held})")
    return _done(rule, fired, value, message + note, evidence)


def _read(rule: AlertRule, result: Mapping[str, Any]) -> _Reading:
    metric = str(rule.metric)
    if rule.kind == "feature_drift":
        stats = _section(result, "feature_statistics")
        column = None if stats is None else _section(stats, str(rule.feature))
        value = None if column is None else finite_number(column.get(metric))
        if column is None or value is None:
            only = " (numeric columns only)" if metric == "wasserstein" else ""
            return f"no {metric} for column {rule.feature!r} in the result{only}"
        return value, f"{metric}({rule.feature})", "", {"column": rule.feature, **column}, ""
    if rule.kind in ("performance", "estimated_performance"):
        key = "performance" if rule.kind == "performance" else "estimate"
        section = _section(result, key)
        if section is None or (key == "performance" and section.get("labelled_rows") == 0):
            return ("no labels in the window yet: performance not measured" if key ==
                    "performance" else "no performance estimate in the result")
        metrics = _section(section, "metrics") or {}
        value = finite_number(metrics.get(metric))
        if value is None:
            verb = "measured" if key == "performance" else "estimated"
            return (f"{metric} was not {verb} in the window ({verb}: "
                    f"{', '.join(map(str, metrics)) or 'none'})")
        rows, method = section.get("labelled_rows"), section.get("method")
        if key == "performance":
            note = f" over {rows:,} labelled rows" if isinstance(rows, int) else ""
            evidence = {"metric": metric, "value": value, "labelled_rows": rows,
                        "task": section.get("task")}
            return value, metric, "", evidence, note
        return (value, f"estimated {metric}", "", {"metric": metric, "value": value,
                "method": method}, f" ({method})" if method else "")
    health = _section(result, "health")
    if health is None:
        what = "error rate" if rule.kind == "error_rate" else "latency"
        return f"no serving health in the result: {what} not measured"
    evidence = {k: health.get(k) for k in _HEALTH_KEYS}
    # health counts answered requests and failed ones apart (errors / (requests + errors))
    answered, errors = finite_number(health.get("requests")), finite_number(health.get("errors"))
    if rule.kind == "latency":
        value = finite_number((_section(health, "latency_ms") or {}).get(metric))
        unmeasured = finite_number(health.get("unmeasured")) or 0
        if value is None:
            if answered == 0:
                return "no answered request in the window: latency not measured"
            if answered is not None and unmeasured >= answered:
                return (f"latency not measured: the window's {answered:,.0f} requests were "
                        "scored in batch, not served")
            return f"the serving health has no {metric} latency"
        served = None if answered is None else answered - unmeasured
        note = f" over {served:,.0f} answered requests" if served else ""
        if unmeasured:
            note += f" ({unmeasured:,.0f} more scored in batch: latency not measured)"
        return value, f"{metric} latency", " ms", evidence, note
    total = None if answered is None or errors is None else answered + errors
    value = finite_number(health.get("error_rate"))
    if value is None and total:
        value = errors / total if errors is not None else None
    if value is None:
        return ("no requests in the window: error rate not measured" if total == 0
                else "the serving health has no error rate")
    note = f" ({errors:,.0f} of {total:,.0f} requests failed)" if total else ""
    return value, "error_rate", "", evidence, note


def _done(rule: AlertRule, fired: bool, value: float | None, message: str,
          evidence: dict[str, Any]) -> RuleOutcome:
    return RuleOutcome(rule, fired, "fired" if fired else "ok", value, message, evidence)


def _no_data(rule: AlertRule, reason: str, evidence: dict[str, Any] | None = None) -> RuleOutcome:
    return RuleOutcome(rule, False, "no data", None, reason, evidence or {})


def _section(data: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    value = data.get(key)
    return value if isinstance(value, Mapping) else None




def _names(names: Sequence[str], most: int = 5) -> str:
    shown = ", ".join(map(str, names[:most]))
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _dataset_drift(rule: AlertRule, drift: Mapping[str, Any] | None) -> RuleOutcome:
    if drift is None or not isinstance(drift.get("dataset_drift"), bool):
        return _no_data(rule, "no drift check in the result: dataset drift not measured")
    share = finite_number(drift.get("drifted_share"))
    bound = finite_number(drift.get("share_bound"))
    drifted = [str(c) for c in drift.get("drifted_columns") or []]
    fired = drift["dataset_drift"]
    text = (f"{share:.0%} of the feature columns drifted" if share is not None
            else f"{len(drifted)} feature columns drifted")
    text += f" (bound {bound:.0%})" if bound is not None else ""
    text += f": {_names(drifted)}" if drifted else ""
    evidence = {k: drift.get(k) for k in ("dataset_drift", "drifted_share", "share_bound",
                                          "drifted_columns")}
    return _done(rule, fired, share, ("dataset drift: " if fired else "no dataset drift: ") + text,
                 evidence)


def _drifted_rows(rule: AlertRule, drift: Mapping[str, Any] | None, key: str) -> RuleOutcome:
    """``drift(COLUMN)``, ``drift(*)`` (key "columns") and prediction drift ("predictions")."""
    what = "prediction" if key == "predictions" else "feature"
    if drift is None:
        return _no_data(rule, f"no drift check in the result: {what} drift not measured")
    rows = [r for r in drift.get(key) or [] if isinstance(r, Mapping)]
    if rule.feature is not None:
        rows = [r for r in rows if r.get("column") == rule.feature]
        if not rows:
            return _no_data(rule, f"column {rule.feature!r} is not among the drift results")
    compared = [r for r in rows
                if finite_number(r.get("statistic")) is not None or r.get("drifted")]
    if not compared:
        why = "; ".join(f"{r.get('column')}: {r.get('message') or r.get('status')}" for r in rows)
        return _no_data(rule, f"no {what} column was compared" + (f" ({why})" if why else ""),
                        {"columns": [_row(r) for r in rows]})
    drifted = [r for r in compared if r.get("drifted") is True]
    if rule.feature is not None:
        row = compared[0]
        detail = row.get("message") or f"{row.get('test')} statistic {row.get('statistic')}"
        message = f"{rule.feature} {'drifted' if drifted else 'did not drift'}: {detail}"
        return _done(rule, bool(drifted), finite_number(row.get("statistic")), message, _row(row))
    if drifted:
        message = f"{what} drift in {len(drifted)} of {len(compared)} {what} columns: " + "; ".join(
            f"{r.get('column')}" + (f" ({r['message']})" if r.get("message") else "")
            for r in drifted[:5]) + (f"; and {len(drifted) - 5} more" if len(drifted) > 5 else "")
    else:
        message = f"no {what} drift in the {len(compared)} compared {what} column(s)"
    return _done(rule, bool(drifted), float(len(drifted)), message,
                 {"compared": len(compared), "columns": [_row(r) for r in drifted]})


def _row(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in _ROW_KEYS if k in row}


def _any_column(rule: AlertRule, stats: Mapping[str, Any] | None) -> RuleOutcome:
    metric = str(rule.metric)
    values = {str(c): v for c, s in (stats or {}).items()
              if isinstance(s, Mapping) and (v := finite_number(s.get(metric))) is not None}
    if not values:
        only = " (numeric columns only)" if metric == "wasserstein" else ""
        return _no_data(rule, f"no column has {metric} in the result{only}")
    assert rule.op is not None and rule.bound is not None
    ranked = sorted(values.items(), key=lambda cv: cv[1], reverse=rule.op in (">", ">="))
    hits = [(c, v) for c, v in ranked if _COMPARE[rule.op](v, rule.bound)]
    held = f"{rule.op} {number_text(rule.bound)}"
    if hits:
        message = (f"{metric} {held} in {len(hits)} of {len(values)} columns: "
                   + _names([f"{c} = {_show(v)}" for c, v in hits]))
    else:
        message = (f"no column has {metric} {held} (closest: {ranked[0][0]} = "
                   f"{_show(ranked[0][1])}, over {len(values)} columns)")
    return _done(rule, bool(hits), ranked[0][1], message,
                 {"metric": metric, "columns": dict(hits or ranked[:1])})


def _quality(rule: AlertRule, quality: Mapping[str, Any] | None) -> RuleOutcome:
    if quality is None:
        return _no_data(rule, "no data quality check in the result")
    issues = [str(i) for i in quality.get("issues") or []]
    fired = bool(issues) or quality.get("ok") is False
    if issues:
        message = f"{len(issues)} data quality issue(s): " + "; ".join(issues[:5]) + (
            f"; and {len(issues) - 5} more" if len(issues) > 5 else "")
    else:
        message = "the data quality check failed" if fired else "no data quality issue"
    return _done(rule, fired, float(len(issues)), message,
                 {"ok": quality.get("ok"), "issues": issues})


def _relative(rule: AlertRule, performance: Mapping[str, Any] | None) -> RuleOutcome:
    metric, bound = str(rule.metric), float(rule.bound or 0)
    if performance is None or performance.get("labelled_rows") == 0:
        return _no_data(rule, "no labels in the window yet: performance not measured")
    changes = [c for c in performance.get("changes") or [] if isinstance(c, Mapping)]
    change = next((c for c in changes if c.get("metric") == metric), None)
    if change is None:
        return _no_data(rule, f"no registered evaluation of {metric} to compare with")
    value, reference = finite_number(change.get("value")), finite_number(change.get("reference"))
    if value is None or reference is None or reference == 0:
        return _no_data(rule, f"{metric} {change.get('value')!r} cannot be compared with the "
                        f"registered {change.get('reference')!r}", dict(change))
    worse = (value - reference) / abs(reference) * 100
    worse = -worse if HIGHER_IS_BETTER[metric] else worse
    how = f"{worse:.1f}% worse" if worse >= 0 else f"{-worse:.1f}% better"
    message = (f"{metric} {_show(value)} is {how} than the registered {_show(reference)} "
               f"(bound {number_text(bound)}%)")
    return _done(rule, worse >= bound, worse, message, dict(change))
