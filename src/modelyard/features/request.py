"""Request-time features: values computed from what is only known when a prediction is asked
(the amount of the claim being filed) together with stored features.

A :class:`RequestFeatureGroup` declares the request columns (with types), the stored features
it reads (``inputs``) and SQL expressions over both. :func:`compute` evaluates them, and it is
the one function both sides call: a training set passes the spine's request columns and the
point-in-time inputs, a lookup passes the request's values and the online inputs, each cast
to the declared and stored types first. So a served value is the value trained on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelyard.errors import InvalidDefinitionError, InvalidInputError
from modelyard.features.definitions import (
    COLUMN_TYPES,
    Feature,
    _meta,
    check_name,
)
from modelyard.features.refs import parse_refs

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass(frozen=True)
class RequestFeatureGroup:
    """Features computed at request time from request values and stored features."""

    name: str
    request: tuple[tuple[str, str], ...]  # (column, type)
    inputs: tuple[str, ...]  # feature refs, "group:feature"
    features: tuple[Feature, ...]
    description: str = ""
    owner: str = ""
    tags: tuple[str, ...] = ()

    kind = "request_group"

    def __init__(self, name: str, *, request: Mapping[str, str], inputs: Sequence[str],
                 features: Sequence[Feature], description: str = "", owner: str = "",
                 tags: Sequence[str] = ()) -> None:
        check_name("request feature group", name)
        columns = tuple(sorted(request.items()))
        for column, dtype in columns:
            check_name("request column", column)
            if dtype not in COLUMN_TYPES:
                raise InvalidDefinitionError(
                    f"request column {column!r} of {name!r} has type {dtype!r}; use one of "
                    f"{', '.join(COLUMN_TYPES)}", field="request")
        refs = parse_refs(list(inputs)) if inputs else []
        if any(r.feature == "*" for r in refs):
            raise InvalidDefinitionError(
                f"request feature group {name!r}: name each input feature (no group:*)",
                field="inputs")
        if not features:
            raise InvalidDefinitionError(f"request feature group {name!r} has no features",
                                         field="features")
        for feature in features:
            if feature.window is not None:
                raise InvalidDefinitionError(
                    f"request feature {name}:{feature.name} cannot have a window; windows "
                    "belong to feature groups", field="features")
        names = [f.name for f in features]
        inputs_named = [r.feature for r in refs]
        clash = {n for n in names if names.count(n) > 1} | (set(names) & set(request)) | (
            set(names) & set(inputs_named)) | (set(request) & set(inputs_named))
        if clash:
            raise InvalidDefinitionError(
                f"request feature group {name!r}: names must differ between features, request "
                f"columns and inputs: {', '.join(sorted(clash))}", field="features")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "request", columns)
        object.__setattr__(self, "inputs", tuple(str(r) for r in refs))
        object.__setattr__(self, "features", tuple(features))
        object.__setattr__(self, "description", description)
        object.__setattr__(self, "owner", owner)
        object.__setattr__(self, "tags", tuple(tags))

    @property
    def request_schema(self) -> dict[str, str]:
        return dict(self.request)

    @property
    def input_names(self) -> list[str]:
        return [r.feature for r in parse_refs(list(self.inputs))] if self.inputs else []

    def feature(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "request": dict(self.request), "inputs": list(self.inputs),
                "features": [f.spec() for f in self.features],
                **_meta(self.description, self.owner, self.tags)}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> RequestFeatureGroup:
        return cls(spec["name"], request=spec["request"], inputs=spec["inputs"],
                   features=[Feature.from_spec(f) for f in spec["features"]],
                   description=spec.get("description", ""), owner=spec.get("owner", ""),
                   tags=spec.get("tags", ()))


def check(group: RequestFeatureGroup) -> None:
    """Refuse expressions that do not parse, are not row-level, or name a column that is
    neither a request column nor an input (the closest such name is suggested)."""
    import pyarrow as pa

    from modelyard.features.sql import SourceColumns, check_expressions
    from modelyard.features.validation import COLUMN_TYPES as ARROW_TYPES

    fields = [pa.field(c, ARROW_TYPES[t]) for c, t in group.request]
    fields += [pa.field(n, pa.null()) for n in group.input_names]  # types known when stored
    columns = SourceColumns(group.name, pa.schema(fields), "request columns and inputs",
                            kind="request feature group", names_only=True)
    check_expressions(
        [(f.expr, f"request feature group {group.name!r}, feature {f.name!r}", None)
         for f in group.features], columns)


@dataclass(frozen=True)
class SelectedRequest:
    group: RequestFeatureGroup
    version: int
    features: tuple[str, ...]


def request_columns(table: pa.Table, group: RequestFeatureGroup, where: str) -> list[pa.Array]:
    """The group's request columns of ``table``, cast to their declared types."""
    import pyarrow as pa

    from modelyard.features.validation import COLUMN_TYPES as ARROW_TYPES

    out = []
    for column, dtype in group.request:
        if column not in table.column_names:
            raise InvalidInputError(
                f"{where} lacks request column {column!r} ({dtype}) needed by request "
                f"features {group.name!r}", field=column)
        try:
            out.append(table.column(column).cast(ARROW_TYPES[dtype]))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise InvalidInputError(
                f"request column {column!r} must hold {dtype} values: {exc}",
                field=column) from exc
    return out


def compute(table: pa.Table, selected: Sequence[SelectedRequest], where: str) -> pa.Table:
    """The requested request-time features for each row of ``table``, which holds the request
    columns and every input feature (by its bare name)."""
    import pyarrow as pa

    from modelyard.features.sql import select

    result: dict[str, pa.ChunkedArray | pa.Array] = {}
    for chosen in selected:
        group = chosen.group
        names = [c for c, _ in group.request]
        inputs = group.input_names
        missing = [n for n in inputs if n not in table.column_names]
        if missing:
            raise InvalidInputError(f"input feature(s) {', '.join(missing)} of {group.name!r} "
                                    "were not computed", field="inputs")
        frame = pa.table([*request_columns(table, group, where),
                          *(table.column(n) for n in inputs)], names=[*names, *inputs])
        values = select(frame, [(f, group.feature(f).expr) for f in chosen.features])
        for name in chosen.features:
            result[name] = values.column(name)
    return pa.table(result) if result else pa.table({})
