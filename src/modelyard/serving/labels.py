"""Ground truth given as a table, turned into :class:`Label` records for the prediction log.

Two ways to say which prediction a label belongs to:

- **by request**: a ``request_id`` column (the id the server answered with) and, for a
  request of several rows, a ``row`` column (the row's position, 0 when absent);
- **by entity and time**: the entity's key columns (``entity=["customer_id"]``) and an
  ``at`` column. The label belongs to the latest prediction about that entity made at or
  before ``at`` (for example, the claim cost known on 1 March labels the last quote given to
  that customer up to 1 March). ``at`` is a timezone-aware datetime, ISO 8601 text with an
  offset, or epoch microseconds.

The label columns are ``values`` (default: every other column).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from modelyard.backends.metadata.predictions import Label
from modelyard.errors import InvalidInputError

__all__ = ["epoch_us", "labels_from"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_us(value: object, field: str = "at") -> int:
    """Epoch microseconds of an aware datetime, ISO text with an offset, or an integer."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise InvalidInputError(f"{field!r} value {value!r} is not an ISO 8601 date-time",
                                    field=field) from exc
    if isinstance(value, datetime):
        if value.tzinfo is None or value != value:
            raise InvalidInputError(
                f"{field!r} must be a timezone-aware time (e.g. ...+00:00), got {value!r}",
                field=field)
        return (value - _EPOCH) // timedelta(microseconds=1)
    if not isinstance(value, bool) and hasattr(value, "__index__"):
        return int(value.__index__())
    raise InvalidInputError(f"{field!r} must be a timezone-aware datetime, ISO text or epoch "
                            f"microseconds, got {type(value).__name__}", field=field)


def _rows(data: Any) -> list[Mapping[str, Any]]:
    if hasattr(data, "to_dict") and hasattr(data, "columns"):  # a pandas DataFrame
        return list(data.to_dict("records"))
    if isinstance(data, Mapping):
        columns = {str(k): list(v) for k, v in data.items()}
        lengths = {len(v) for v in columns.values()}
        if len(lengths) > 1:
            raise InvalidInputError("label columns must all have the same length",
                                    field="labels")
        n = lengths.pop() if lengths else 0
        return [{k: v[i] for k, v in columns.items()} for i in range(n)]
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)) and all(
            isinstance(r, Mapping) for r in data):
        return list(data)
    raise InvalidInputError("labels must be a DataFrame, a list of row dicts or a dict of "
                            f"columns, got {type(data).__name__}", field="labels")


def labels_from(data: Any, *, entity: Sequence[str] | str | None = None,
                values: Sequence[str] | str | None = None, request_id: str = "request_id",
                row: str = "row", at: str = "at") -> list[Label]:
    """Label records from a DataFrame, a list of row dicts or a dict of columns: by request
    (the ``request_id`` and optional ``row`` columns) or, when ``entity`` names the key
    columns, by entity and the ``at`` column."""
    rows = _rows(data)
    keys = [entity] if isinstance(entity, str) else list(entity or [])
    used = [*keys, at] if keys else [request_id, row]
    wanted = [values] if isinstance(values, str) else None if values is None else list(values)
    labels = []
    for i, r in enumerate(rows):
        needed = [*keys, at] if keys else [request_id]
        missing = [c for c in [*needed, *(wanted or [])] if c not in r]
        if missing:
            raise InvalidInputError(f"label row {i} has no column {missing[0]!r}",
                                    field=missing[0])
        columns = wanted if wanted is not None else [c for c in r if c not in used]
        if not columns:
            raise InvalidInputError(f"label row {i} holds no label column (only {list(r)})",
                                    field="values")
        label_values = {c: r[c] for c in columns}
        if keys:
            labels.append(Label(label_values, entity={k: r[k] for k in keys},
                                at_us=epoch_us(r[at], at)))
        else:
            position = r.get(row, 0)
            labels.append(Label(label_values, request_id=str(r[request_id]),
                                row=0 if position is None else position))
    return labels
