"""The wire codec: every metadata record and every error crosses it unchanged."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import math
import pkgutil
import types
import typing
from typing import Any

import pytest

import modelyard.backends.metadata as metadata_pkg
from modelyard import errors
from modelyard.backends.metadata import wire
from modelyard.backends.metadata.base import Comparison, MetricPoint, RunQuery, RunRecord
from modelyard.errors import InvalidInputError, ModelyardError


def _records() -> list[type]:
    found: dict[str, type] = {}
    for info in pkgutil.iter_modules(metadata_pkg.__path__):
        if info.ispkg:
            continue
        module = importlib.import_module(f"{metadata_pkg.__name__}.{info.name}")
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if obj.__module__ != module.__name__:
                continue
            if dataclasses.is_dataclass(obj) or (issubclass(obj, tuple)
                                                 and hasattr(obj, "_fields")):
                found[f"{module.__name__}.{obj.__name__}"] = obj
    return [found[k] for k in sorted(found)]


RECORDS = _records()


def _sample(hint: Any, depth: int = 0) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return {"nested": [1, 2.5, "x", None, {"deep": True}]}
    if origin in (typing.Union, types.UnionType):
        return _sample(next(a for a in args if a is not type(None)), depth)
    if origin is typing.Literal:
        return args[-1]
    if origin is not None and isinstance(origin, type) and issubclass(
            origin, typing.Mapping):  # type: ignore[arg-type]
        return {"k": _sample(args[1] if args else Any, depth + 1)}
    if origin is tuple:
        return (_sample(args[0], depth + 1),)
    if origin in (list, typing.Sequence) or (origin is not None and isinstance(
            origin, type) and issubclass(origin, typing.Sequence)):  # type: ignore[arg-type]
        return [_sample(args[0] if args else Any, depth + 1)]
    if hint is bool:
        return True
    if hint is int:
        return 7
    if hint is float:
        return 0.25
    if hint is str:
        return "x/y é"
    if hint is dict:
        return {"a": [1, {"b": "c"}]}
    if hint is list:
        return [1, "two"]
    if isinstance(hint, type) and (dataclasses.is_dataclass(hint) or hasattr(hint, "_fields")):
        hints = typing.get_type_hints(hint)
        names = ([f.name for f in dataclasses.fields(hint) if f.init]
                 if dataclasses.is_dataclass(hint) else list(hint._fields))
        return hint(**{n: _sample(hints[n], depth + 1) for n in names})
    raise AssertionError(f"no sample for {hint!r}")


def _trip(cls: Any, value: Any) -> Any:
    return wire.decode(cls, wire.loads(wire.dumps(wire.encode(value))))


@pytest.mark.parametrize("cls", RECORDS, ids=lambda c: c.__name__)
def test_every_record_round_trips(cls: type) -> None:
    value = _sample(cls)
    back = _trip(cls, value)
    assert back == value and type(back) is cls


def test_nested_records_tuples_and_non_finite_floats() -> None:
    query = RunQuery(experiment_ids=[1, 2], where=[
        Comparison("param", "depth", "IN", ("3", "5")),
        Comparison("metric", "r2", ">", 0.5)], limit=3)
    assert _trip(RunQuery, query) == RunQuery(
        experiment_ids=[1, 2], where=[Comparison("param", "depth", "IN", ("3", "5")),
                                      Comparison("metric", "r2", ">", 0.5)],
        order_by=[], statuses=[], limit=3)  # sequences come back as lists
    point = MetricPoint("r", "loss", math.inf, 3, 9)
    assert _trip(MetricPoint, point) == point
    nan = _trip(dict[str, float], {"x": math.nan})
    assert math.isnan(nan["x"])


def test_bad_values_name_the_field() -> None:
    with pytest.raises(InvalidInputError, match=r"info\.start_time must be a whole number"):
        wire.decode(RunRecord, {"info": {"run_id": "r", "experiment_id": 1, "name": "n",
                                         "status": "running", "start_time": "soon",
                                         "end_time": None, "parent_run_id": None,
                                         "user": "u", "host": "h", "pid": 1,
                                         "heartbeat": 1}}, "body")
    with pytest.raises(InvalidInputError, match="unknown fields: surprise"):
        wire.decode(MetricPoint, {"run_id": "r", "key": "k", "value": 1.0, "step": 0,
                                  "timestamp": 0, "surprise": 1})
    with pytest.raises(InvalidInputError, match="not valid JSON"):
        wire.loads(b"{nope")


def _error_classes() -> list[type[ModelyardError]]:
    return [getattr(errors, name) for name in errors.__all__
            if isinstance(getattr(errors, name), type)]


@pytest.mark.parametrize("cls", _error_classes(), ids=lambda c: c.__name__)
def test_every_error_comes_back_as_its_class(cls: type[ModelyardError]) -> None:
    error = cls("it went wrong", field="x", report={"passed": False, "failed": ["r2"]})
    payload = wire.loads(wire.dumps(wire.encode_error(error)))
    assert payload["status"] == cls.http_status
    back = wire.decode_error(payload, cls.http_status)
    assert type(back) is cls
    assert (back.message, back.details) == (error.message, error.details)


def test_an_answer_that_is_no_error_body_maps_by_status() -> None:
    assert type(wire.decode_error("<html>bad gateway</html>", 502)) is errors.StorageError
    assert type(wire.decode_error(None, 404)) is errors.NotFoundError
