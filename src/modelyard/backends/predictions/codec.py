"""Prediction records and labels checked and turned into stored rows, and stored rows turned
into the frames a reader gets. Shared by every prediction store, so they all accept, store
and return the same things.

Values are stored as JSON text: NaN, infinities, NaT and pandas' NA become null; datetimes,
dates and times ISO 8601 text (numpy datetimes to the microsecond); durations seconds;
numpy scalars and arrays plain numbers and lists; Decimals floats; bytes hexadecimal text;
anything else its ``str()``. An entity is stored as canonical JSON (keys sorted, no
spaces), which is also how a label finds the predictions about the same entity: entity
values must therefore match in type as well as value (``42`` is not ``"42"``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

from modelyard.backends.metadata.predictions import (
    FAILURE_COLUMNS,
    RECORD_COLUMNS,
    ROLES,
    STATUSES,
    FailureRecord,
    Label,
    PredictionRecord,
)
from modelyard.errors import InvalidInputError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CheckedLabel",
    "StoredFailure",
    "StoredPrediction",
    "check_failure",
    "check_label",
    "check_model",
    "check_query",
    "check_record",
    "entity_key",
    "failure_frame",
    "json_safe",
    "labels_frame",
    "prediction_frame",
]

MAX_REQUEST_ID = 128
MAX_FIELD = 255  # characters of a failure's field name
MAX_REASON = 1_000  # characters of why a row has no prediction
_MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")  # as the model registry's names
_ERROR_CLASS = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")  # a class name, never a message
_ENDPOINT = re.compile(r"^[A-Za-z0-9_.\-]{1,32}$")


class StoredPrediction(NamedTuple):
    """A checked record as stored: ``entity``, ``features`` and ``output`` are JSON text."""

    request_id: str
    row: int
    model: str
    version: int
    role: str
    at_us: int
    latency_ms: float | None
    status: str | None
    reason: str | None
    entity: str | None
    features: str
    output: str


class StoredFailure(NamedTuple):
    """A checked failure record as stored (the fields of FailureRecord, in order)."""

    request_id: str
    model: str
    version: int | None
    role: str | None
    at_us: int
    latency_ms: float
    status: int
    error: str
    endpoint: str
    field: str | None


class CheckedLabel(NamedTuple):
    """A checked label: by request (``request_id``, ``row``) or by entity (``entity``,
    ``at_us``); ``values`` is JSON text."""

    request_id: str | None
    row: int
    entity: str | None
    at_us: int | None
    values: str

    def describe(self) -> str:
        if self.request_id is not None:
            return f"request {self.request_id!r} row {self.row}"
        return f"entity {self.entity} at {self.at_us}"


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON types (see the module docstring)."""
    kind = type(value)
    if value is None or kind is str or kind is int or kind is bool:
        return value
    if kind is float:
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, int):  # IntEnum and friends
        return int(value)
    if isinstance(value, float):  # numpy.float64 is a float
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, (datetime, date, time)):
        return None if value != value else value.isoformat()  # NaT is a datetime
    if isinstance(value, timedelta):
        return None if value != value else value.total_seconds()
    if isinstance(value, Decimal):
        return json_safe(float(value))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if kind.__module__ == "numpy":
        name = kind.__name__
        if name in ("datetime64", "timedelta64"):
            plain = value.astype(f"{name}[us]").item()  # datetime / timedelta / None
            return json_safe(plain)
        if hasattr(value, "tolist"):  # numpy scalars and arrays
            return json_safe(value.tolist())
    if kind.__name__ == "NAType":  # pandas.NA
        return None
    if isinstance(value, (set, frozenset)):
        return [json_safe(v) for v in sorted(value, key=repr)]
    return str(value)


def _dumps(value: Any, *, canonical: bool = False) -> str:
    if not canonical and _fast is not None and type(value) is dict and set(
            map(type, value)) <= _TEXT and set(map(type, value.values())) <= _PLAIN:
        try:  # plain values: orjson writes them as below (NaN and infinities as null)
            text: str = _fast(value).decode()
            return text
        except TypeError:  # an integer past 64 bits
            pass
    return json.dumps(json_safe(value), separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False, sort_keys=canonical)


def _orjson() -> Any:
    try:
        import orjson
    except ImportError:  # without the server extra: the standard library's encoder
        return None
    return orjson.dumps


# The prediction log's records mostly hold plain values (a request's numbers and text), which
# orjson encodes several times faster, with no json_safe pass. Not for the canonical
# (sorted) entity JSON, which labels are matched on as text: that stays json's, whose
# number formatting the stored entities already have.
_fast = _orjson()
_TEXT = frozenset({str})
_PLAIN = frozenset({str, int, float, bool, type(None)})


def entity_key(entity: Mapping[str, Any]) -> str:
    """The canonical JSON of an entity's key values."""
    return _dumps(dict(entity), canonical=True)


def check_model(model: object) -> str:
    if not isinstance(model, str) or not _MODEL.match(model):
        raise InvalidInputError(
            "a model name is 1-128 letters, digits, '_', '.' or '-', starting with a letter "
            f"or digit; got {model!r}", field="model")
    return model


def check_query(model: str, version: int | None, start_us: int | None, end_us: int | None,
                role: str | None, limit: int | None = None) -> None:
    """InvalidInputError unless the arguments of a read or count are well formed."""
    check_model(model)
    for name, value, least in (("version", version, 1), ("start_us", start_us, 0),
                               ("end_us", end_us, 0), ("limit", limit, 0)):
        if value is not None and ((number := _integer(value)) is None or number < least):
            raise InvalidInputError(f"{name!r} must be an integer >= {least}, got {value!r}",
                                    field=name)
    if role is not None and role not in ROLES:
        raise InvalidInputError(f"'role' must be one of {', '.join(ROLES)}; got {role!r}",
                                field="role")


def _integer(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value.__index__())  # type: ignore[attr-defined]
    except (AttributeError, TypeError):
        return None


def _json_of(value: object, field: str, where: str, *, canonical: bool = False) -> str:
    if not isinstance(value, Mapping):
        raise InvalidInputError(
            f"{where}: {field!r} must be a mapping of column name to value, got "
            f"{type(value).__name__}", field=field)
    try:
        return _dumps(value, canonical=canonical)
    except (ValueError, TypeError, RecursionError) as exc:
        raise InvalidInputError(f"{where}: {field!r} cannot be stored as JSON: {exc}",
                                field=field) from exc


def check_record(record: PredictionRecord) -> StoredPrediction:
    """The record as stored, or InvalidInputError naming the record and the field."""
    quick = _quick_record(record)
    if quick is not None:
        return quick
    if not isinstance(record, PredictionRecord):
        raise InvalidInputError(
            f"a prediction record must be a PredictionRecord, got {type(record).__name__}",
            field="records")
    where = f"prediction record (request {record.request_id!r}, row {record.row!r})"
    request_id, at_us = _check_common(record.request_id, record.at_us, where)
    # None: scored in batch, not served, so no request latency was measured
    latency = None if record.latency_ms is None else _check_latency(
        record.latency_ms, where, allowed=" or None (not measured: scored in batch)")
    row = _integer(record.row)
    if row is None or row < 0:
        raise InvalidInputError(f"{where}: 'row' must be an integer >= 0", field="row")
    model = check_model(record.model)
    version = _integer(record.version)
    if version is None or version < 1:
        raise InvalidInputError(f"{where}: 'version' must be an integer >= 1, got "
                                f"{record.version!r}", field="version")
    if record.role not in ROLES:
        raise InvalidInputError(f"{where}: 'role' must be one of {', '.join(ROLES)}; got "
                                f"{record.role!r}", field="role")
    if record.status is not None and record.status not in STATUSES:
        raise InvalidInputError(f"{where}: 'status' must be None or one of "
                                f"{', '.join(STATUSES)}; got {record.status!r}", field="status")
    if record.reason is not None and not isinstance(record.reason, str):
        raise InvalidInputError(f"{where}: 'reason' must be None or text", field="reason")
    entity = None if record.entity is None else _json_of(record.entity, "entity", where,
                                                         canonical=True)
    return StoredPrediction(request_id, row, model, version, record.role, at_us, latency,
                            record.status,
                            None if record.reason is None else record.reason[:MAX_REASON],
                            entity,
                            _json_of(record.features, "features", where),
                            _json_of(record.output, "output", where))


def _quick_record(record: Any) -> StoredPrediction | None:
    """The record as stored when every field has its plain type and is in range (what the
    model server logs), checked without building the messages of :func:`check_record`;
    None sends it through those checks."""
    if type(record) is not PredictionRecord:
        return None
    rid, row, model, version, at, latency = (record.request_id, record.row, record.model,
                                             record.version, record.at_us, record.latency_ms)
    entity, status, reason = record.entity, record.status, record.reason
    if not (type(rid) is str and 0 < len(rid) <= MAX_REQUEST_ID and type(row) is int
            and row >= 0 and type(version) is int and version >= 1 and type(at) is int
            and at >= 0 and (latency is None or (type(latency) is float
                                                 and 0.0 <= latency < math.inf))
            and record.role in ROLES and (status is None or status in STATUSES)
            and (reason is None or type(reason) is str) and type(model) is str
            and _MODEL.match(model) is not None and type(record.features) is dict
            and type(record.output) is dict and (entity is None or type(entity) is dict)):
        return None
    try:
        return StoredPrediction(
            rid, row, model, version, record.role, at, latency, status,
            None if reason is None else reason[:MAX_REASON],
            None if entity is None else _dumps(entity, canonical=True),
            _dumps(record.features), _dumps(record.output))
    except (ValueError, TypeError, RecursionError):  # check_record says which
        return None


def _check_common(request_id: object, at_us: object, where: str) -> tuple[str, int]:
    """The request id and time every record has, or InvalidInputError."""
    if not isinstance(request_id, str) or not 0 < len(request_id) <= MAX_REQUEST_ID:
        raise InvalidInputError(
            f"{where}: 'request_id' must be a string of 1-{MAX_REQUEST_ID} characters",
            field="request_id")
    at = _integer(at_us)
    if at is None or at < 0:
        raise InvalidInputError(f"{where}: 'at_us' must be epoch microseconds (an integer "
                                f">= 0), got {at_us!r}", field="at_us")
    return request_id, at


def _check_latency(latency: object, where: str, *, allowed: str = "") -> float:
    """A latency in milliseconds, or InvalidInputError (``allowed`` names what else the
    caller accepts)."""
    if isinstance(latency, bool) or not isinstance(latency, (int, float)) or not (
            math.isfinite(latency) and latency >= 0):
        raise InvalidInputError(f"{where}: 'latency_ms' must be a finite number >= 0"
                                f"{allowed}, got {latency!r}", field="latency_ms")
    return float(latency)


def check_failure(record: FailureRecord) -> StoredFailure:
    """The failure as stored, or InvalidInputError naming the record and the field."""
    if not isinstance(record, FailureRecord):
        raise InvalidInputError(
            f"a failure record must be a FailureRecord, got {type(record).__name__}",
            field="records")
    where = f"failure record (request {record.request_id!r})"
    request_id, at_us = _check_common(record.request_id, record.at_us, where)
    latency = _check_latency(record.latency_ms, where)
    model = check_model(record.model)
    version = None if record.version is None else _integer(record.version)
    if record.version is not None and (version is None or version < 1):
        raise InvalidInputError(f"{where}: 'version' must be None or an integer >= 1, got "
                                f"{record.version!r}", field="version")
    if record.role is not None and record.role not in ROLES:
        raise InvalidInputError(f"{where}: 'role' must be None or one of {', '.join(ROLES)}; "
                                f"got {record.role!r}", field="role")
    status = _integer(record.status)
    if status is None or not 400 <= status <= 599:
        raise InvalidInputError(f"{where}: 'status' must be an HTTP error status (400-599), "
                                f"got {record.status!r}", field="status")
    if not isinstance(record.error, str) or not _ERROR_CLASS.match(record.error):
        raise InvalidInputError(f"{where}: 'error' must be an exception class name, not a "
                                "message", field="error")
    if not isinstance(record.endpoint, str) or not _ENDPOINT.match(record.endpoint):
        raise InvalidInputError(f"{where}: 'endpoint' must be 1-32 letters, digits, '_', "
                                f"'.' or '-', got {record.endpoint!r}", field="endpoint")
    if record.field is not None and (not isinstance(record.field, str)
                                     or len(record.field) > MAX_FIELD):
        raise InvalidInputError(f"{where}: 'field' must be None or a field name of at most "
                                f"{MAX_FIELD} characters", field="field")
    return StoredFailure(request_id, model, version, record.role, at_us, latency, status,
                         record.error, record.endpoint, record.field)


def check_label(label: Label, position: int) -> CheckedLabel:
    """The label as stored, or InvalidInputError naming its position in the call."""
    where = f"label {position}"
    if not isinstance(label, Label):
        raise InvalidInputError(f"{where} must be a Label, got {type(label).__name__}",
                                field="labels")
    values = _json_of(label.values, "values", where)
    if not label.values:
        raise InvalidInputError(f"{where}: 'values' holds no label column", field="values")
    by_request = label.request_id is not None
    by_entity = label.entity is not None or label.at_us is not None
    if by_request == by_entity:
        raise InvalidInputError(
            f"{where}: give either 'request_id' (and 'row') or both 'entity' and 'at_us'",
            field="labels")
    if by_request:
        request_id, row = label.request_id, _integer(label.row)
        if not isinstance(request_id, str) or not 0 < len(request_id) <= MAX_REQUEST_ID:
            raise InvalidInputError(
                f"{where}: 'request_id' must be a string of 1-{MAX_REQUEST_ID} characters, "
                f"got {request_id!r}", field="request_id")
        if row is None or row < 0:
            raise InvalidInputError(f"{where}: 'row' must be an integer >= 0, got "
                                    f"{label.row!r}", field="row")
        return CheckedLabel(request_id, row, None, None, values)
    at_us = _integer(label.at_us)
    if label.entity is None or not label.entity:
        raise InvalidInputError(f"{where}: 'entity' must name the entity's key values",
                                field="entity")
    if at_us is None or at_us < 0:
        raise InvalidInputError(f"{where}: 'at_us' must be epoch microseconds (an integer "
                                f">= 0), got {label.at_us!r}", field="at_us")
    return CheckedLabel(None, 0, _json_of(label.entity, "entity", where, canonical=True),
                        at_us, values)


# --- frames -----------------------------------------------------------------------------------


def _expand(texts: Sequence[str | None], prefix: str, index: pd.Index) -> pd.DataFrame:
    """One column per key of the JSON objects in ``texts`` (null where a row lacks it)."""
    fast = _expand_arrow(texts, prefix, index) if len(texts) >= _ARROW_ROWS else None
    return fast if fast is not None else _expand_python(texts, prefix, index)


_ARROW_ROWS = 1_000  # below this, decoding row by row costs less than setting Arrow up
_ARROW_SIMPLE = ("int64", "double", "bool", "string", "null")
_LONG_INTEGER = re.compile(rb"\d{19}")


def _expand_arrow(texts: Sequence[str | None], prefix: str, index: pd.Index
                  ) -> pd.DataFrame | None:
    """:func:`_expand_python`'s frame, parsed by Arrow's JSON reader (several times
    faster), or None where the two could differ: values Arrow would read as times or
    nested types, or a key whose values change type between rows."""
    import io

    import pyarrow as pa
    import pyarrow.json as pa_json

    body = "\n".join(t if t else "{}" for t in texts).encode()
    if _LONG_INTEGER.search(body):  # Arrow reads integers past int64 as floats
        return None
    try:
        table = pa_json.read_json(io.BytesIO(body), read_options=pa_json.ReadOptions(
            block_size=max(1 << 20, len(body) + 1)))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if table.num_rows != len(texts) or table.num_columns == 0 or any(
            str(t) not in _ARROW_SIMPLE for t in table.schema.types):
        return None
    frame = table.to_pandas()
    frame.columns = [f"{prefix}.{name}" for name in table.column_names]
    frame.index = index
    return frame


def _expand_python(texts: Sequence[str | None], prefix: str, index: pd.Index
                   ) -> pd.DataFrame:
    import pandas as pd

    decoded = [json.loads(t) if t else {} for t in texts]
    names: dict[str, None] = {}
    for d in decoded:
        names.update(dict.fromkeys(d))
    columns = {f"{prefix}.{name}": [d.get(name) for d in decoded] for name in names}
    return pd.DataFrame(columns, index=index)


def prediction_frame(rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """The frame of stored rows ``(*RECORD_COLUMNS, entity, features, output, label)``, the
    last four JSON text (or None), in the given order."""
    import pandas as pd

    columns = list(zip(*rows, strict=True)) if rows else [()] * (len(RECORD_COLUMNS) + 4)
    base = pd.DataFrame({
        "request_id": pd.Series(columns[0], dtype="str"),
        "row": pd.Series(columns[1], dtype="int64"),
        "model": pd.Series(columns[2], dtype="str"),
        "version": pd.Series(columns[3], dtype="int64"),
        "role": pd.Series(columns[4], dtype="str"),
        "at_us": pd.Series(columns[5], dtype="int64"),
        "latency_ms": pd.Series(columns[6], dtype="float64"),
        "status": pd.Series(columns[7], dtype="object"),
        "reason": pd.Series(columns[8], dtype="object"),
    })
    parts = [base]
    for offset, prefix in enumerate(("entity", "features", "output", "label")):
        parts.append(_expand(columns[len(RECORD_COLUMNS) + offset], prefix, base.index))
    return pd.concat(parts, axis=1)


def failure_frame(rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """The frame of stored failures (the FAILURE_COLUMNS), in the given order; ``version``
    is a nullable integer column."""
    import pandas as pd

    columns = list(zip(*rows, strict=True)) if rows else [()] * len(FAILURE_COLUMNS)
    dtypes = ("str", "str", "Int64", "object", "int64", "float64", "int64", "str", "str",
              "object")
    return pd.DataFrame({name: pd.Series(values, dtype=dtype) for name, values, dtype
                         in zip(FAILURE_COLUMNS, columns, dtypes, strict=True)})


def labels_frame(rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """The frame of stored labels ``(request_id, row, labelled_at_us, values)``."""
    import pandas as pd

    columns = list(zip(*rows, strict=True)) if rows else [(), (), (), ()]
    base = pd.DataFrame({
        "request_id": pd.Series(columns[0], dtype="str"),
        "row": pd.Series(columns[1], dtype="int64"),
        "labelled_at_us": pd.Series(columns[2], dtype="int64"),
    })
    return pd.concat([base, _expand(columns[3], "label", base.index)], axis=1)
