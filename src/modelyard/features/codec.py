"""How feature values are laid out in an online store.

An entity's value in one feature group version is ``stamp + msgpack([event_us, snapshot_us,
v1, v2, ...])``: the instant it was computed as of (see ``backends.online.base``), the event
time of the row its row-level features come from, the ingestion cut-off it was computed over,
then one value per feature in the group's order. Timestamps travel as microseconds and dates
as days since the epoch; the :class:`Layout` records each feature's type so a lookup turns
them back. msgpack keeps floats bit for bit (NaN included), so a served value equals the value
a training set computes.

Entity keys are strings: the value itself for a one-column key, a JSON list for a composite
key.
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgpack

from modelyard.backends.online.base import STAMP_BYTES, stamp
from modelyard.errors import InvalidInputError

if TYPE_CHECKING:
    import pyarrow as pa

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DATE = date(1970, 1, 1)
KEY_KINDS = ("int", "string", "other")


def _kind_of(dtype: pa.DataType) -> str:
    import pyarrow as pa

    if pa.types.is_integer(dtype):
        return "int"
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return "string"
    if pa.types.is_timestamp(dtype):
        return "timestamp"
    if pa.types.is_date(dtype):
        return "date"
    if pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return "float"
    if pa.types.is_boolean(dtype):
        return "bool"
    return "other"


@dataclass(frozen=True)
class Layout:
    """What one feature group version's online values hold."""

    table: str  # "group@vN"
    keys: tuple[str, ...]
    key_kinds: tuple[str, ...]  # "int" | "string" | "other"
    features: tuple[str, ...]
    kinds: tuple[str, ...]  # per feature: int, float, string, bool, timestamp, date, other
    ttl_us: int | None

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.table, "keys": list(self.keys), "key_kinds": list(self.key_kinds),
                "features": list(self.features), "kinds": list(self.kinds),
                "ttl_us": self.ttl_us}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Layout:
        return cls(data["table"], tuple(data["keys"]), tuple(data["key_kinds"]),
                   tuple(data["features"]), tuple(data["kinds"]), data.get("ttl_us"))

    @classmethod
    def of(cls, table_name: str, values: pa.Table, keys: Sequence[str],
           features: Sequence[str], ttl_us: int | None) -> Layout:
        schema = values.schema
        key_kinds = tuple(k if (k := _kind_of(schema.field(c).type)) in KEY_KINDS else "other"
                          for c in keys)
        kinds = tuple(_kind_of(schema.field(f).type) for f in features)
        return cls(table_name, tuple(keys), key_kinds, tuple(features), kinds, ttl_us)


# --- entity keys -----------------------------------------------------------------------------

def _key_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return str(int(value))
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat() if value.tzinfo else value.isoformat()
    return str(value)


def entity_keys(columns: Sequence[Sequence[Any]]) -> list[str]:
    """The store keys of entities given column by column (one list per key column)."""
    if len(columns) == 1:
        return [_key_text(v) for v in columns[0]]
    return [json.dumps([_key_text(v) for v in row], separators=(",", ":"))
            for row in zip(*columns, strict=True)]


def check_key_types(layout: Layout, columns: Sequence[Sequence[Any]]) -> None:
    """Refuse a key value whose type cannot be the entity's, naming the column."""
    for name, kind, values in zip(layout.keys, layout.key_kinds, columns, strict=True):
        if kind == "int":
            bad = next((v for v in values if not isinstance(v, numbers.Integral)
                        or isinstance(v, bool)), _NOTHING)
        elif kind == "string":
            bad = next((v for v in values if not isinstance(v, str)), _NOTHING)
        else:
            bad = next((v for v in values if v is None), _NOTHING)
        if bad is not _NOTHING:
            word = "an integer" if kind == "int" else "a string" if kind == "string" else "a value"
            raise InvalidInputError(
                f"entity key {name!r} must be {word}; got {bad!r} ({type(bad).__name__})",
                field=name, value=repr(bad))


_NOTHING = object()


# --- values --------------------------------------------------------------------------------

def _plain_columns(values: pa.Table, names: Sequence[str]) -> list[list[Any]]:
    """Python lists per column, timestamps as epoch microseconds, dates as epoch days."""
    import pyarrow as pa

    out: list[list[Any]] = []
    for name in names:
        column = values.column(name)
        dtype = column.type
        if pa.types.is_timestamp(dtype):
            column = column.cast(pa.timestamp("us", tz=dtype.tz)).cast(pa.int64())
        elif pa.types.is_date(dtype):
            column = column.cast(pa.date32()).cast(pa.int32())
        elif pa.types.is_decimal(dtype):
            column = column.cast(pa.float64())
        out.append(column.to_pylist())
    return out


def encode_rows(values: pa.Table, layout: Layout, event_column: str, at_us: int,
                snapshot_us: int) -> list[tuple[str, bytes]]:
    """``(entity key, value)`` for each row of ``values`` (keys, event time, features)."""
    keys = entity_keys(_plain_key_columns(values, layout.keys))
    events, *features = _plain_columns(values, [event_column, *layout.features])
    head = stamp(at_us)
    pack = msgpack.Packer(use_bin_type=True).pack
    return [(key, head + pack([event, snapshot_us, *row]))
            for key, event, *row in zip(keys, events, *features, strict=True)]


def _plain_key_columns(values: pa.Table, keys: Sequence[str]) -> list[list[Any]]:
    return [values.column(k).to_pylist() for k in keys]


@dataclass(frozen=True)
class Stored:
    at_us: int
    event_us: int | None
    snapshot_us: int
    values: list[Any]


def decode(value: bytes) -> Stored:
    at = int(value[:STAMP_BYTES], 16)
    event, snapshot, *values = msgpack.unpackb(value[STAMP_BYTES:], raw=False)
    return Stored(at, event, snapshot, values)


def _to_timestamp(v: Any) -> Any:
    return None if v is None else _EPOCH + timedelta(microseconds=v)


def _to_date(v: Any) -> Any:
    return None if v is None else _EPOCH_DATE + timedelta(days=v)


def converters(kinds: Sequence[str]) -> list[Callable[[Any], Any] | None]:
    """Per feature, the function that turns a stored value back (None: as stored)."""
    table: dict[str, Callable[[Any], Any]] = {"timestamp": _to_timestamp, "date": _to_date}
    return [table.get(k) for k in kinds]


def epoch_us(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise InvalidInputError("the time must be timezone-aware (e.g. ...+00:00)", field="at")
    return (moment - _EPOCH) // timedelta(microseconds=1)


def from_epoch_us(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)
