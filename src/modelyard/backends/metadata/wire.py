"""One wire codec for every metadata record and every error.

A record (a frozen dataclass or a NamedTuple of the ``backends/metadata`` modules) becomes
plain JSON values with :func:`encode` and comes back as the same class with
:func:`decode`, guided by the class's type hints: nested records, ``Mapping[str, X]``,
``Sequence[X]``, ``tuple[X, ...]``, ``X | None`` and literals. Errors travel as
:meth:`~modelyard.errors.ModelyardError.to_dict` and come back as the same class with
:func:`decode_error`. The server and the REST stores use nothing else, so a record or an error
crosses the wire as it is.

Floats keep NaN and infinities (``json`` writes them as ``NaN`` / ``Infinity``; both ends are
this codec), so an evaluation or a gate report survives the trip exactly.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar, Union

from modelyard.errors import InvalidInputError, ModelyardError, error_from_dict

__all__ = ["decode", "decode_error", "dumps", "encode", "encode_error", "loads"]

T = TypeVar("T")


def dumps(value: Any) -> bytes:
    """JSON bytes of already-encoded values (NaN and infinities kept)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def loads(data: bytes | str) -> Any:
    """The values :func:`dumps` wrote; InvalidInputError when ``data`` is not JSON."""
    try:
        return json.loads(data)
    except ValueError as exc:
        raise InvalidInputError(f"the body is not valid JSON: {exc}", field="body") from None


def encode(value: Any) -> Any:
    """``value`` (records, lists, mappings, primitives) as JSON values."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a NamedTuple
        return {name: encode(getattr(value, name)) for name in value._fields}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [encode(v) for v in value]
    raise TypeError(f"{type(value).__name__} has no wire form")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def decode(cls: Any, value: Any, where: str = "body") -> Any:
    """The instance of ``cls`` (a type hint) that :func:`encode` turned into ``value``;
    InvalidInputError naming ``where`` when it does not fit."""
    origin = typing.get_origin(cls)
    if cls is Any or cls is object:
        return value
    if origin in (Union, types.UnionType):
        options = typing.get_args(cls)
        if value is None and type(None) in options:
            return None
        problems = []
        for option in options:
            if option is type(None):
                continue
            try:
                return decode(option, value, where)
            except InvalidInputError as exc:
                problems.append(exc.message)
        raise InvalidInputError(f"{where}: {'; '.join(problems)}", field=where)
    if origin is typing.Literal:
        if value not in typing.get_args(cls):
            raise InvalidInputError(f"{where} must be one of {typing.get_args(cls)}, got "
                                    f"{value!r}", field=where)
        return value
    if origin is not None and isinstance(origin, type) and issubclass(origin, Mapping):
        if not isinstance(value, dict):
            raise _expected(where, "an object", value)
        args = typing.get_args(cls) or (str, Any)
        return {str(k): decode(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if origin in (list, tuple, Sequence) or (isinstance(origin, type)
                                             and issubclass(origin, Sequence)):
        if not isinstance(value, (list, tuple)):
            raise _expected(where, "a list", value)
        args = typing.get_args(cls)
        item = args[0] if args else Any
        items = [decode(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if isinstance(cls, type):
        return _decode_class(cls, value, where)
    return value


def _decode_class(cls: type, value: Any, where: str) -> Any:
    if cls is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _expected(where, "a number", value)
        return float(value)
    if cls is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _expected(where, "a whole number", value)
        return value
    if cls in (str, bool):
        if not isinstance(value, cls):
            raise _expected(where, "a string" if cls is str else "true or false", value)
        return value
    if cls is dict or cls is list:
        if not isinstance(value, cls):
            raise _expected(where, "an object" if cls is dict else "a list", value)
        return value
    if dataclasses.is_dataclass(cls) or (issubclass(cls, tuple) and hasattr(cls, "_fields")):
        if not isinstance(value, dict):
            raise _expected(where, f"a {cls.__name__} object", value)
        hints = _hints(cls)
        names = ([f.name for f in dataclasses.fields(cls) if f.init]
                 if dataclasses.is_dataclass(cls) else list(cls._fields))  # type: ignore[attr-defined]
        unknown = set(value) - set(names)
        if unknown:
            raise InvalidInputError(f"{where} has unknown fields: {', '.join(sorted(unknown))}",
                                    field=where)
        kwargs = {n: decode(hints[n], value[n], f"{where}.{n}") for n in names if n in value}
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise InvalidInputError(f"{where} is not a {cls.__name__}: {exc}",
                                    field=where) from None
    if not isinstance(value, cls):
        raise _expected(where, cls.__name__, value)
    return value


def _expected(where: str, what: str, value: Any) -> InvalidInputError:
    return InvalidInputError(f"{where} must be {what}, got {type(value).__name__}",
                             field=where)


def encode_error(error: ModelyardError) -> dict[str, Any]:
    """An error as its wire form (``error``, ``message``, ``status``, ``details``)."""
    return error.to_dict()


def decode_error(payload: Any, status: int) -> ModelyardError:
    """The error a server answered with, as the same class; a body that is not one (a proxy's
    page, say) becomes the class of its HTTP status."""
    if isinstance(payload, dict) and "error" in payload and "message" in payload:
        return error_from_dict(payload)
    from modelyard import errors

    by_status: dict[int, type[ModelyardError]] = {
        404: errors.NotFoundError, 409: errors.ConflictError, 422: errors.InvalidInputError,
        400: errors.InvalidInputError, 503: errors.StorageError}
    cls = by_status.get(status, errors.StorageError if status >= 500 else ModelyardError)
    return cls(f"the server answered {status}: {str(payload)[:200]}", status=status)
