"""Gate verdicts: the ``check_*`` functions and :func:`run_behaviour` decide pass/fail from
what was measured and return a :class:`GateResult`; a :class:`GateReport` holds every result
for one candidate. They load nothing and store nothing."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelyard.errors import InvalidInputError
from modelyard.registry.evaluation import HIGHER_IS_BETTER, TASKS, Task
from modelyard.registry.gates.declarations import (
    OPS,
    BehaviourGate,
    FairnessGate,
    MetricGate,
    RegressionGate,
    SignatureGate,
    on_data,
)

__all__ = ["GateReport", "GateResult", "Value", "check_fairness", "check_metric",
           "check_regression", "check_signature", "primary_metric", "run_behaviour"]

Value = float | str | None


@dataclass(frozen=True)
class GateResult:
    """The verdict of one gate on one candidate."""

    gate: str
    kind: str
    passed: bool
    measured: dict[str, Value] = field(default_factory=dict)
    bounds: dict[str, Value] = field(default_factory=dict)
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"gate": self.gate, "kind": self.kind, "passed": self.passed,
                "measured": dict(self.measured), "bounds": dict(self.bounds),
                "detail": self.detail}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateResult:
        try:
            return cls(gate=str(data["gate"]), kind=str(data["kind"]),
                       passed=bool(data["passed"]),
                       measured=dict(data.get("measured") or {}),
                       bounds=dict(data.get("bounds") or {}),
                       detail=str(data.get("detail", "")))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"not a gate result: {exc}", field="result") from exc


@dataclass(frozen=True)
class GateReport:
    """Every gate's result for one candidate."""

    results: tuple[GateResult, ...] = ()

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> list[GateResult]:
        return [r for r in self.results if not r.passed]

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "results": [r.to_dict() for r in self.results]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateReport:
        results = data.get("results") if isinstance(data, Mapping) else None
        if not isinstance(results, list):
            raise InvalidInputError("not a gate report: no results list", field="report")
        return cls(tuple(GateResult.from_dict(r) for r in results))

    def summary(self) -> str:
        """One line per failed gate: what was measured against which bound, and why."""
        total = len(self.results)
        if self.passed:
            return f"all {total} gate(s) passed"
        lines = [f"{len(self.failures)} of {total} gate(s) failed:"]
        for r in self.failures:
            measured = ", ".join(f"{k}={_show(v)}" for k, v in r.measured.items()) or "-"
            bounds = ", ".join(f"{k} {_show(v)}" for k, v in r.bounds.items()) or "-"
            lines.append(f"- {r.gate}: measured {measured}; bound {bounds}; {r.detail}")
        return "\n".join(lines)


def _show(value: Value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "not measured" if value is None else str(value)


# --- checks -----------------------------------------------------------------------------


def check_metric(gate: MetricGate, metrics: Mapping[str, float]) -> GateResult:
    bound = f"{gate.op} {gate.bound:g}"
    value = _get(metrics, gate.metric)
    if value is None:
        passed, detail = False, f"{gate.metric} was not measured{on_data(gate.data)}"
    else:
        passed = OPS[gate.op](value, gate.bound)
        verdict = "meets" if passed else "does not meet"
        detail = f"{gate.metric} = {value:.6g} {verdict} {bound}"
    return GateResult(gate=gate.name, kind=gate.kind, passed=passed,
                      measured={gate.metric: value}, bounds={gate.metric: bound},
                      detail=detail)


def primary_metric(task: Task, candidate: Mapping[str, float],
                   holder: Mapping[str, float] | None = None) -> str:
    """roc_auc for classification when measured on both sides, else accuracy; rmse for
    regression."""
    if task not in TASKS:
        raise InvalidInputError(f"task must be one of {list(TASKS)}, got {task!r}",
                                field="task")
    if task == "regression":
        return "rmse"
    if "roc_auc" in candidate and (holder is None or "roc_auc" in holder):
        return "roc_auc"
    return "accuracy"


def check_regression(gate: RegressionGate, task: Task, candidate: Mapping[str, float],
                     holder: Mapping[str, float] | None, holder_label: str) -> GateResult:
    metrics = gate.metrics or (primary_metric(task, candidate, holder),)
    title = f"{gate.title(metrics)} vs {holder_label}"
    if holder is None:
        return GateResult(gate=title, kind=gate.kind, passed=True,
                          measured={m: _get(candidate, m) for m in metrics},
                          detail="no current holder")
    measured: dict[str, Value] = {}
    bounds: dict[str, Value] = {}
    problems: list[str] = []
    notes: list[str] = []
    for metric in metrics:
        mine, theirs = _get(candidate, metric), _get(holder, metric)
        measured[metric] = mine
        measured[f"{metric} ({holder_label})"] = theirs
        if theirs is None:
            notes.append(f"{holder_label} has no {metric} to compare with")
            continue
        higher = HIGHER_IS_BETTER[metric]
        allowed = gate.max_drop
        if gate.max_relative_drop is not None:
            allowed = max(allowed, gate.max_relative_drop * abs(theirs))
        limit = theirs - allowed if higher else theirs + allowed
        bounds[metric] = f"{'>=' if higher else '<='} {limit:.6g}"
        if mine is None:
            problems.append(f"{metric} was not measured on the candidate")
            continue
        worse_by = theirs - mine if higher else mine - theirs
        if worse_by > allowed and not math.isclose(worse_by, allowed, rel_tol=1e-9,
                                                   abs_tol=1e-12):
            problems.append(f"{metric} {mine:.6g} is worse than {holder_label}'s "
                            f"{theirs:.6g} by {worse_by:.6g} (allowed {allowed:.6g})")
        else:
            notes.append(f"{metric} {mine:.6g} vs {theirs:.6g}")
    detail = "; ".join(problems or notes)
    return GateResult(gate=title, kind=gate.kind, passed=not problems, measured=measured,
                      bounds=bounds, detail=detail)


def check_fairness(gate: FairnessGate, measured: Mapping[str, float]) -> GateResult:
    values: dict[str, Value] = {}
    bounds: dict[str, Value] = {}
    problems: list[str] = []
    for attribute, bound in gate.bounds().items():
        metric = gate.BOUNDS[attribute]
        value = _get(measured, metric)
        values[metric] = value
        bounds[metric] = f"<= {bound:g}"
        if value is None:
            problems.append(f"{metric} was not measured")
        elif value > bound:
            problems.append(f"{metric} = {value:.6g} exceeds {bound:g}")
    detail = "; ".join(problems) or ", ".join(
        f"{m} = {v:.6g}" for m, v in values.items() if isinstance(v, float))
    return GateResult(gate=gate.name, kind=gate.kind, passed=not problems, measured=values,
                      bounds=bounds, detail=f"across {gate.sensitive} groups: {detail}")


def run_behaviour(gate: BehaviourGate, model: Any) -> GateResult:
    """Run the test on ``model``: returning passes; ``AssertionError`` fails with its
    message; any other exception (including a failed import) fails with type and message.
    The detail is one line: a multi-line message has its lines joined with "; "."""
    label = gate.test if isinstance(gate.test, str) else getattr(gate.test, "__name__", "")

    def result(passed: bool, detail: str) -> GateResult:
        return GateResult(gate=gate.name, kind=gate.kind, passed=passed,
                          measured={"test": label}, detail=detail)

    try:
        test = gate.resolve()
    except Exception as exc:
        return result(False, f"cannot load {label}: {type(exc).__name__}: {_line(exc)}")
    try:
        test(model)
    except AssertionError as exc:
        return result(False, _line(exc) or "assertion failed")
    except Exception as exc:
        return result(False, f"{type(exc).__name__}: {_line(exc)}")
    return result(True, "passed")


def _line(exc: BaseException) -> str:
    """The exception's message on one line (a multi-line message joined with "; ")."""
    return "; ".join(part.strip() for part in str(exc).splitlines() if part.strip())


def check_signature(problems: Sequence[str]) -> GateResult:
    found = list(problems)
    return GateResult(
        gate="signature", kind=SignatureGate.kind, passed=not found,
        measured={"problems": float(len(found))}, bounds={"problems": "none"},
        detail="; ".join(found) if found else "compatible with the current holder")


def _get(values: Mapping[str, float], metric: str) -> float | None:
    value = values.get(metric)
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None
