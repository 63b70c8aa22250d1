"""Gates in their written forms: the text form of a metric gate and the ``gates`` table of
a model in ``modelyard.toml``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, cast

from modelyard.errors import InvalidInputError
from modelyard.registry.gates.declarations import (
    BehaviourGate,
    FairnessGate,
    Gate,
    MetricGate,
    Op,
    RegressionGate,
    SignatureGate,
)

__all__ = ["gates_from_config", "parse_metric_gate"]

_METRIC_TEXT = re.compile(
    r"^\s*(?P<metric>[A-Za-z_][A-Za-z0-9_.]*)\s*(?P<op>>=|<=|>|<)\s*"
    r"(?P<bound>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)"
    r"(?:\s+on\s+(?P<data>\S+))?\s*$")
_FORM = "'METRIC OP NUMBER [on DATA]' with OP one of >=, >, <=, <, e.g. 'r2 >= 0.85'"


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
