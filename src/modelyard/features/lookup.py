"""Online lookups: entity keys in, feature values out, with a status per row.

A lookup is planned once per distinct feature list (refs resolved, each group's stored layout
found) and the plan is reused for a second, so the hot path is: check the keys, one read from
the online store for every group at once, unpack, apply each group's TTL.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgpack

from modelyard.backends.online.base import STAMP_BYTES
from modelyard.errors import InvalidInputError
from modelyard.features.codec import Layout, check_key_types, converters, entity_keys

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from modelyard.backends.online.base import OnlineStore
    from modelyard.features.request import SelectedRequest

FOUND, MISSING, EXPIRED = "found", "missing", "expired"
_unpack = msgpack.unpackb


@dataclass(frozen=True)
class GroupPlan:
    """What to read of one feature group version and where its values go."""

    group: str
    version: int
    layout: Layout
    positions: tuple[int, ...]  # of the requested features in a stored value (after 2 heads)
    names: tuple[str, ...]  # output column of each
    row_level: tuple[bool, ...]  # which are row features (nulled when the value expired)
    convert: tuple[Any, ...]
    empty: tuple[Any, ...] = ()  # each feature's value for an entity with no history


@dataclass(frozen=True)
class LookupPlan:
    groups: tuple[GroupPlan, ...]
    key_columns: tuple[str, ...]  # every key column the groups need, in order
    outputs: tuple[str, ...]  # feature columns of the result, in the order asked
    refs: tuple[str, ...]  # resolved "group@vN:feature" refs
    requests: tuple[SelectedRequest, ...] = ()  # request-time features to compute
    request_columns: tuple[str, ...] = ()  # the request values they need
    hidden: tuple[str, ...] = ()  # inputs of request features not asked for themselves


@dataclass
class OnlineResult:
    """Feature values per entity row, the row's status, and each group's status."""

    keys: dict[str, list[Any]]
    values: dict[str, list[Any]]
    status: list[str]  # found / missing / expired, per row (the worst over the groups)
    group_status: dict[str, list[str]] = field(default_factory=dict)
    refs: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.status)

    def to_dict(self) -> dict[str, list[Any]]:
        """Columns: the keys, the features, then ``status``."""
        return {**self.keys, **self.values, "status": self.status}

    def to_records(self) -> list[dict[str, Any]]:
        columns = self.to_dict()
        names = list(columns)
        return [dict(zip(names, row, strict=True))
                for row in zip(*columns.values(), strict=True)]

    def to_pandas(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.to_dict())

    def to_arrow(self) -> pa.Table:
        import pyarrow as pa

        return pa.table(self.to_dict())


def entity_columns(entities: Any, needed: Sequence[str], allowed: Sequence[str] = (),
                   request: Any = None) -> dict[str, list[Any]]:
    """Key columns from a mapping of column -> values (or one value), a list of row dicts,
    or a DataFrame, plus the ``request`` mapping's columns; every needed column present,
    all of one length."""
    if isinstance(entities, Mapping):
        columns = {str(k): _as_list(v) for k, v in entities.items()}
    elif isinstance(entities, Sequence) and not isinstance(entities, (str, bytes)):
        rows = list(entities)
        if not all(isinstance(r, Mapping) for r in rows):
            raise InvalidInputError("entities must be a mapping of key column to values, or a "
                                    "list of row mappings", field="entities")
        names = list(dict.fromkeys(k for r in rows for k in r))
        columns = {n: [r.get(n) for r in rows] for n in names}
    elif type(entities).__module__.split(".")[0] in ("pandas", "polars", "pyarrow"):
        import pyarrow as pa

        from modelyard.features.training import to_arrow

        table = entities if isinstance(entities, pa.Table) else to_arrow(entities, "entities")
        columns = {n: table.column(n).to_pylist() for n in table.column_names}
    else:
        raise InvalidInputError(
            "entities must be a mapping like {'customer_id': [1, 2]}, a list of row "
            f"mappings or a DataFrame, not {type(entities).__name__}", field="entities")
    if request is not None:
        if not isinstance(request, Mapping):
            raise InvalidInputError("request must be a mapping of column to values",
                                    field="request")
        columns.update({str(k): _as_list(v) for k, v in request.items()})
    missing = [k for k in needed if k not in columns]
    if missing:
        raise InvalidInputError(
            f"entities lack key column(s) {', '.join(missing)} (the features asked for need "
            f"{', '.join(needed)})", field=missing[0])
    unknown = [k for k in columns if k not in needed and k not in allowed]
    if unknown:
        raise InvalidInputError(
            f"unknown entity column(s) {', '.join(unknown)}; expected "
            f"{', '.join([*needed, *allowed])}", field=unknown[0])
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise InvalidInputError("every entity column must hold the same number of values",
                                field="entities")
    return columns


def _as_list(value: Any) -> list[Any]:
    """A column's values; a single value is a column of one."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        return [value]
    if hasattr(value, "tolist"):  # numpy arrays and pandas series, as Python values
        return list(value.tolist())
    return list(value)


def lookup(store: OnlineStore, plan: LookupPlan, columns: Mapping[str, Sequence[Any]],
           now_us: int | None = None) -> OnlineResult:
    """Read every group's values for the entities in ``columns`` in one round trip."""
    now = time.time_ns() // 1_000 if now_us is None else now_us
    n = len(next(iter(columns.values()))) if columns else 0
    requests: list[tuple[str, list[str]]] = []
    keyed: dict[tuple[str, ...], list[str]] = {}
    for g in plan.groups:
        key_values = [columns[k] for k in g.layout.keys]
        if g.layout.keys not in keyed:
            check_key_types(g.layout, key_values)
            keyed[g.layout.keys] = entity_keys(key_values)
        requests.append((g.layout.table, keyed[g.layout.keys]))
    stored = store.read(requests) if n else [[] for _ in requests]
    values: dict[str, list[Any]] = {}
    group_status: dict[str, list[str]] = {}
    status = [FOUND] * n
    for g, found in zip(plan.groups, stored, strict=True):
        out: list[list[Any]] = [[e] * n for e in g.empty]
        states = [FOUND] * n
        ttl = g.layout.ttl_us
        fields = list(enumerate(zip(g.positions, g.convert, g.row_level, strict=True)))
        for row, raw in enumerate(found):
            if raw is None:
                states[row] = MISSING
                status[row] = MISSING
                continue
            event, _snapshot, *items = _unpack(raw[STAMP_BYTES:])
            expired = ttl is not None and event is not None and now - event > ttl
            if expired:
                states[row] = EXPIRED
                if status[row] == FOUND:
                    status[row] = EXPIRED
            for i, (at, convert, row_level) in fields:
                if expired and row_level:
                    continue
                value = items[at]
                out[i][row] = value if convert is None else convert(value)
        for name, column in zip(g.names, out, strict=True):
            values[name] = column
        group_status[f"{g.group}@v{g.version}"] = states
    if plan.requests:
        values.update(_request_values(plan, columns, values, n))
    ordered = {name: values[name] for name in plan.outputs if name in values}
    keys = {k: list(columns[k]) for k in plan.key_columns}
    return OnlineResult(keys, ordered, status, group_status, list(plan.refs))


def group_plan(group: str, version: int, layout: Layout, wanted: Sequence[str],
               window_features: Sequence[str], count_features: Sequence[str] = ()
               ) -> GroupPlan:
    """``count_features`` (count windows) read 0 for an entity with no history, as a
    training set computes them; every other feature reads null."""
    positions = tuple(layout.features.index(f) for f in wanted)
    kinds = [layout.kinds[p] for p in positions]
    return GroupPlan(group, version, layout, positions, tuple(wanted),
                     tuple(f not in window_features for f in wanted),
                     tuple(converters(kinds)),
                     tuple(0 if f in count_features else None for f in wanted))


_ARROW_KINDS = {"int": "int64", "float": "float64", "string": "string", "bool": "bool",
                "date": "date32"}


def _request_values(plan: LookupPlan, columns: Mapping[str, Sequence[Any]],
                    values: dict[str, list[Any]], n: int) -> dict[str, list[Any]]:
    """Request-time features, computed by the same function as in training sets over the
    request's values and the stored inputs (typed as they were stored)."""
    import pyarrow as pa

    from modelyard.features.request import compute

    arrays: dict[str, pa.Array] = {}
    for name in plan.request_columns:
        arrays[name] = pa.array(list(columns[name]))
    for g in plan.groups:
        for name, position in zip(g.names, g.positions, strict=True):
            kind = g.layout.kinds[position]
            dtype: pa.DataType | None = None
            if kind == "timestamp":
                dtype = pa.timestamp("us", tz="UTC")
            elif kind in _ARROW_KINDS:
                dtype = pa.type_for_alias(_ARROW_KINDS[kind])
            arrays[name] = pa.array(values[name], type=dtype)
    table = pa.table(arrays) if arrays else pa.table({"__rows": [None] * n})
    computed = compute(table, plan.requests, "the request")
    return {name: computed.column(name).to_pylist() for name in computed.column_names}
