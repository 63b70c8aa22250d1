"""Quality gates: the rules a model version must pass before an alias moves to it.

A gate is a frozen declaration (:class:`MetricGate`, :class:`RegressionGate`,
:class:`FairnessGate`, :class:`BehaviourGate`, :class:`SignatureGate`); the ``check_*``
functions and :func:`run_behaviour` decide pass/fail from what was measured and return a
:class:`GateResult`. They load nothing and store nothing.

Gates are declared in ``modelyard.toml`` under ``[models.NAME.gates]``::

    metrics = ["r2 >= 0.85", "rmse <= 900 on holdout"]
    no_regression = { metrics = ["rmse"], max_relative_drop = 0.02 }
    fairness = { sensitive = "gender", max_error_gap = 150.0 }
    behaviour = ["claims_tests:test_more_damage_costs_more"]
    signature = true

``data`` (``on NAME`` in the text form) names the evaluation data set a gate reads; None
means the default one.
"""

from __future__ import annotations

import importlib
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, cast

from modelyard.errors import InvalidInputError
from modelyard.registry.evaluation import HIGHER_IS_BETTER, TASKS, Task

__all__ = [
    "BehaviourGate",
    "FairnessGate",
    "Gate",
    "GateReport",
    "GateResult",
    "MetricGate",
    "Op",
    "RegressionGate",
    "SignatureGate",
    "check_fairness",
    "check_metric",
    "check_regression",
    "check_signature",
    "gate_from_dict",
    "gates_from_config",
    "parse_metric_gate",
    "primary_metric",
    "run_behaviour",
]

Op = Literal[">=", ">", "<=", "<"]
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}
_METRIC_TEXT = re.compile(
    r"^\s*(?P<metric>[A-Za-z_][A-Za-z0-9_.]*)\s*(?P<op>>=|<=|>|<)\s*"
    r"(?P<bound>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)"
    r"(?:\s+on\s+(?P<data>\S+))?\s*$")
_TEST_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_FORM = "'METRIC OP NUMBER [on DATA]' with OP one of >=, >, <=, <, e.g. 'r2 >= 0.85'"


def _known_metric(metric: str, field: str) -> None:
    if metric not in HIGHER_IS_BETTER:
        raise InvalidInputError(
            f"unknown metric {metric!r}; known metrics: {', '.join(sorted(HIGHER_IS_BETTER))}",
            field=field, metric=metric)


def _number(value: Any, what: str, *, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInputError(f"{what} must be a number, got {value!r}", field=what)
    number = float(value)
    if not math.isfinite(number) or (minimum is not None and number < minimum):
        floor = f" >= {minimum:g}" if minimum is not None else ""
        raise InvalidInputError(f"{what} must be a finite number{floor}, got {value!r}",
                                field=what)
    return number


def _on(data: str | None) -> str:
    return f" on {data}" if data else ""


def _check_data(data: Any) -> None:
    if data is not None and (not isinstance(data, str) or not data.strip()):
        raise InvalidInputError(f"data must name an evaluation data set or be None, got "
                                f"{data!r}", field="data")


@dataclass(frozen=True)
class MetricGate:
    """``metric op bound``, e.g. ``r2 >= 0.85``, on the evaluation named ``data``."""

    metric: str
    op: Op
    bound: float
    data: str | None = None
    kind: ClassVar[str] = "metric"

    def __post_init__(self) -> None:
        _known_metric(self.metric, "metric")
        _check_data(self.data)
        if self.op not in _OPS:
            raise InvalidInputError(f"op must be one of {list(_OPS)}, got {self.op!r}",
                                    field="op")
        object.__setattr__(self, "bound", _number(self.bound, "bound"))

    @property
    def name(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}{_on(self.data)}"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "metric": self.metric, "op": self.op,
                "bound": self.bound, "data": self.data}


@dataclass(frozen=True)
class RegressionGate:
    """The candidate may be worse than the alias's current holder on each metric by at most
    ``max_drop`` (absolute) or, when set, ``max_relative_drop`` (a fraction of the holder's
    value), whichever allows more. "Worse" follows ``HIGHER_IS_BETTER``. No metrics means
    the task's primary metric (:func:`primary_metric`)."""

    metrics: tuple[str, ...] = ()
    max_drop: float = 0.0
    max_relative_drop: float | None = None
    data: str | None = None
    kind: ClassVar[str] = "regression"

    def __post_init__(self) -> None:
        given: Any = self.metrics
        if isinstance(given, str):
            given = (given,)
        if not isinstance(given, Sequence):
            raise InvalidInputError(f"metrics must be a list of metric names, got {given!r}",
                                    field="metrics")
        metrics = tuple(given)
        _check_data(self.data)
        for metric in metrics:
            _known_metric(metric, "metrics")
        object.__setattr__(self, "metrics", metrics)
        object.__setattr__(self, "max_drop", _number(self.max_drop, "max_drop", minimum=0))
        if self.max_relative_drop is not None:
            object.__setattr__(self, "max_relative_drop", _number(
                self.max_relative_drop, "max_relative_drop", minimum=0))

    @property
    def name(self) -> str:
        return self.title(self.metrics)

    def title(self, metrics: Sequence[str]) -> str:
        listed = ", ".join(metrics) if metrics else "primary metric"
        return f"no regression ({listed}){_on(self.data)}"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "metrics": list(self.metrics), "max_drop": self.max_drop,
                "max_relative_drop": self.max_relative_drop, "data": self.data}


@dataclass(frozen=True)
class FairnessGate:
    """Bounds on :func:`modelyard.registry.fairness.fairness_metrics` across the groups of
    the ``sensitive`` column. ``max_error_gap`` bounds ``error_gap_mae`` (regression)."""

    sensitive: str
    max_demographic_parity_difference: float | None = None
    max_equalized_odds_difference: float | None = None
    max_error_gap: float | None = None
    data: str | None = None
    kind: ClassVar[str] = "fairness"
    BOUNDS: ClassVar[dict[str, str]] = {
        "max_demographic_parity_difference": "demographic_parity_difference",
        "max_equalized_odds_difference": "equalized_odds_difference",
        "max_error_gap": "error_gap_mae",
    }

    def __post_init__(self) -> None:
        if not isinstance(self.sensitive, str) or not self.sensitive:
            raise InvalidInputError("sensitive must name a column", field="sensitive")
        _check_data(self.data)
        if not self.bounds():
            raise InvalidInputError(
                f"a fairness gate needs at least one of {', '.join(self.BOUNDS)}",
                field="fairness")
        for attribute in self.bounds():
            object.__setattr__(self, attribute, _number(getattr(self, attribute), attribute,
                                                        minimum=0))

    def bounds(self) -> dict[str, float]:
        """Set bound attribute -> its value."""
        return {a: getattr(self, a) for a in self.BOUNDS if getattr(self, a) is not None}

    @property
    def name(self) -> str:
        return f"fairness ({self.sensitive}){_on(self.data)}"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "sensitive": self.sensitive,
                **{a: getattr(self, a) for a in self.BOUNDS}, "data": self.data}


@dataclass(frozen=True, init=False)
class BehaviourGate:
    """A test function that receives the candidate model; it passes when it returns
    without raising. ``test`` is the function or a ``"package.module:function"`` path
    imported when the gate runs."""

    test: str | Callable[[Any], Any]
    _name: str = field(repr=False)
    kind: ClassVar[str] = "behaviour"

    def __init__(self, test: str | Callable[[Any], Any], name: str | None = None) -> None:
        if isinstance(test, str):
            if not _TEST_PATH.match(test):
                raise InvalidInputError(
                    f"behaviour test {test!r} is not of the form 'package.module:function'",
                    field="test")
            default = test.rsplit(":", 1)[1].rsplit(".", 1)[-1]
        elif callable(test):
            default = getattr(test, "__name__", type(test).__name__)
        else:
            raise InvalidInputError(
                f"behaviour test must be a function or a 'module:function' path, got {test!r}",
                field="test")
        object.__setattr__(self, "test", test)
        object.__setattr__(self, "_name", name or f"behaviour {default}")

    @property
    def name(self) -> str:
        return self._name

    @property
    def path(self) -> str:
        """The ``module:function`` path of the test (refused for local functions)."""
        if isinstance(self.test, str):
            return self.test
        module = getattr(self.test, "__module__", None)
        qualname = getattr(self.test, "__qualname__", "")
        if not module or not qualname or "<" in qualname:
            raise InvalidInputError(
                f"behaviour test {self.test!r} has no importable 'module:function' path; "
                "use a module-level function or give the path as text", field="test")
        return f"{module}:{qualname}"

    def resolve(self) -> Callable[[Any], Any]:
        """The test function; a path is imported now."""
        if not isinstance(self.test, str):
            return self.test
        module_name, attribute = self.test.split(":", 1)
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
        if not callable(target):
            raise TypeError(f"{self.test} is not callable")
        return cast(Callable[[Any], Any], target)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "test": self.path, "name": self.name}


@dataclass(frozen=True)
class SignatureGate:
    """The candidate's signature must be compatible with the current holder's."""

    kind: ClassVar[str] = "signature"

    @property
    def name(self) -> str:
        return "signature"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind}


Gate = MetricGate | RegressionGate | FairnessGate | BehaviourGate | SignatureGate


def parse_metric_gate(text: str, *, field: str = "gate") -> MetricGate:
    """``"r2 >= 0.85"`` or ``"rmse <= 12.5 on holdout"`` -> :class:`MetricGate`."""
    found = _METRIC_TEXT.match(text) if isinstance(text, str) else None
    if found is None:
        raise InvalidInputError(f"cannot read metric gate {text!r}: expected {_FORM}",
                                field=field, text=text)
    try:
        return MetricGate(found["metric"], cast(Op, found["op"]), float(found["bound"]),
                          found["data"])
    except InvalidInputError as exc:
        raise InvalidInputError(f"metric gate {text!r}: {exc.message}", field=field,
                                text=text) from exc


def gate_from_dict(data: Mapping[str, Any]) -> Gate:
    """Rebuild a gate from its ``to_dict()``."""
    if not isinstance(data, Mapping):
        raise InvalidInputError(f"a gate must be a mapping, got {data!r}", field="gate")
    args = {k: v for k, v in data.items() if k != "kind"}
    kind = data.get("kind")
    try:
        if kind == "metric":
            return MetricGate(**args)
        if kind == "regression":
            return RegressionGate(**args)
        if kind == "fairness":
            return FairnessGate(**args)
        if kind == "behaviour":
            return BehaviourGate(**args)
        if kind == "signature" and not args:
            return SignatureGate()
    except TypeError as exc:
        raise InvalidInputError(f"malformed {kind} gate {dict(data)!r}: {exc}",
                                field="gate") from exc
    raise InvalidInputError(
        f"unknown gate kind {kind!r} in {dict(data)!r}; expected one of metric, regression, "
        "fairness, behaviour, signature", field="gate")


_CONFIG_KEYS = ("metrics", "no_regression", "fairness", "behaviour", "signature")


def gates_from_config(config: Mapping[str, Any]) -> list[Gate]:
    """The gates declared in the ``gates`` table of one model in ``modelyard.toml``, in
    the order of its keys. Errors name the key (``field="gates.KEY"``)."""
    if not isinstance(config, Mapping):
        raise InvalidInputError(f"gates must be a table, got {config!r}", field="gates")
    gates: list[Gate] = []
    for key, value in config.items():
        where = f"gates.{key}"
        try:
            gates += _config_gates(key, value, where)
        except InvalidInputError as exc:
            message = exc.message if exc.message.startswith(where) else (
                f"{where}: {exc.message}")
            raise InvalidInputError(message, field=where) from exc
        except TypeError as exc:  # unexpected keys in a table
            raise InvalidInputError(f"{where}: {exc}", field=where) from exc
    return gates


def _config_gates(key: str, value: Any, where: str) -> list[Gate]:
    if key == "metrics":
        return [parse_metric_gate(t, field=where) for t in _list_of(value, str, where)]
    if key == "no_regression":
        tables = [] if value is False else [{}] if value is True else _list_of(
            value, Mapping, where)
        return [RegressionGate(**t) for t in tables]
    if key == "fairness":
        return [FairnessGate(**t) for t in _list_of(value, Mapping, where)]
    if key == "behaviour":
        return [BehaviourGate(t) for t in _list_of(value, str, where)]
    if key == "signature":
        if not isinstance(value, bool):
            raise InvalidInputError(f"{where} must be true or false, got {value!r}",
                                    field=where)
        return [SignatureGate()] if value else []
    raise InvalidInputError(
        f"unknown gate key {key!r}; expected one of {', '.join(_CONFIG_KEYS)}", field=where)


def _list_of(value: Any, kind: type, where: str) -> list[Any]:
    items = [value] if isinstance(value, kind) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, kind) for i in items):
        expected = "text" if kind is str else "a table"
        raise InvalidInputError(f"{where} must be {expected} or a list of them, got {value!r}",
                                field=where)
    return list(items)


# --- results ----------------------------------------------------------------------------

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
        passed, detail = False, f"{gate.metric} was not measured{_on(gate.data)}"
    else:
        passed = _OPS[gate.op](value, gate.bound)
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

