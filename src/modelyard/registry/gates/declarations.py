"""Gate declarations: what each gate demands, and its dict form.

A gate is frozen and validated when built, so a malformed one fails where it is declared,
not when a promotion runs it. ``to_dict`` / :func:`gate_from_dict` carry a gate through JSON
(gates declared in code are stored with the model that way).
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
from modelyard.registry.evaluation import HIGHER_IS_BETTER

__all__ = ["OPS", "BehaviourGate", "FairnessGate", "Gate", "MetricGate", "Op",
           "RegressionGate", "SignatureGate", "gate_from_dict", "on_data"]

Op = Literal[">=", ">", "<=", "<"]
OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}
_TEST_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


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


def on_data(data: str | None) -> str:
    """`` on NAME`` for a named evaluation data set, empty for the default one."""
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
        if self.op not in OPS:
            raise InvalidInputError(f"op must be one of {list(OPS)}, got {self.op!r}",
                                    field="op")
        object.__setattr__(self, "bound", _number(self.bound, "bound"))

    @property
    def name(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}{on_data(self.data)}"

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
        return f"no regression ({listed}){on_data(self.data)}"

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
        return f"fairness ({self.sensitive}){on_data(self.data)}"

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
