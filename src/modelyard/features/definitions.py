"""Feature definitions in code: entities, sources, features and feature groups.

Each definition has a canonical ``spec()`` (plain JSON-able data) and a ``content_hash`` over
it; applying a changed definition stores a new version, an unchanged one is a no-op. Window
features are declared, not hand-written SQL, so every offline engine (DuckDB now, Spark later)
can compile the same definition.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from modelyard.errors import InvalidDefinitionError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_WINDOW = re.compile(r"^(\d+)(s|m|h|d|w)$")
_UNIT_US = {"s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000, "d": 86_400_000_000,
            "w": 7 * 86_400_000_000}
WINDOW_FUNCS = ("mean", "sum", "count", "min", "max", "std", "last", "count_distinct")
_AGG = re.compile(r"^\s*(\w+)\s*\((.*)\)\s*$", re.DOTALL)
_AGG_ALIASES = {"avg": "mean", "stddev": "std", "count_distinct": "count_distinct"}
COLUMN_TYPES = ("int", "float", "string", "bool", "timestamp", "date")

SourceKind = Literal["parquet", "csv", "frame", "sql"]


def check_name(kind: str, name: object) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidDefinitionError(
            f"{kind} name {name!r} is not valid: use letters, digits and _, starting with a "
            "letter or _ (at most 128 characters)", field=kind, value=repr(name),
        )
    return name


def parse_duration(text: object, what: str = "window") -> int:
    """``"30d"`` -> microseconds. Units: s, m, h, d, w; a positive whole number before."""
    if not isinstance(text, str) or not (m := _WINDOW.match(text.strip())) or int(m[1]) == 0:
        raise InvalidDefinitionError(
            f"{what} {text!r} is not valid: write a positive whole number and a unit, like "
            "30m, 12h, 7d or 2w (units: s, m, h, d, w)", field=what, value=repr(text),
        )
    return int(m[1]) * _UNIT_US[m[2]]


def content_hash(spec: Mapping[str, Any]) -> str:
    body = json.dumps(spec, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def _meta(description: str, owner: str, tags: Sequence[str] | Mapping[str, str]
          ) -> dict[str, Any]:
    return {"description": description, "owner": owner,
            "tags": dict(tags) if isinstance(tags, Mapping) else sorted(tags)}


# --- entity -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entity:
    """What features describe (a customer, a policy...), identified by one or more keys."""

    name: str
    keys: tuple[str, ...]
    description: str = ""
    owner: str = ""
    tags: tuple[str, ...] = ()

    def __init__(self, name: str, key: str | Sequence[str], *, description: str = "",
                 owner: str = "", tags: Sequence[str] = ()) -> None:
        keys = (key,) if isinstance(key, str) else tuple(key)
        if not keys:
            raise InvalidDefinitionError(f"entity {name!r} needs at least one key column",
                                         field="key")
        for k in keys:
            check_name("key column", k)
        if len(set(keys)) != len(keys):
            raise InvalidDefinitionError(f"entity {name!r} repeats a key column", field="key")
        object.__setattr__(self, "name", check_name("entity", name))
        object.__setattr__(self, "keys", keys)
        object.__setattr__(self, "description", description)
        object.__setattr__(self, "owner", owner)
        object.__setattr__(self, "tags", tuple(tags))

    kind = "entity"

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "keys": list(self.keys),
                **_meta(self.description, self.owner, self.tags)}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Entity:
        return cls(spec["name"], spec["keys"], description=spec.get("description", ""),
                   owner=spec.get("owner", ""), tags=spec.get("tags", ()))


# --- source -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """Where raw rows come from. Rows are ingested into the source's offline table, which
    every training set reads (so a training set can be rebuilt as of any commit)."""

    name: str
    kind_of_source: SourceKind
    timestamp: str
    location: str = ""  # file or folder for parquet/csv; the query for sql
    uri: str = ""  # database URI for sql
    schema: tuple[tuple[str, str], ...] = ()  # declared (column, type), optional
    timestamps_utc: bool = False  # naive timestamps are UTC (else they are refused)
    description: str = ""
    owner: str = ""
    tags: tuple[str, ...] = ()

    kind = "source"

    @classmethod
    def _make(cls, kind: SourceKind, name: str, *, timestamp: str, location: str = "",
              uri: str = "", schema: Mapping[str, str] | None = None,
              timestamps_utc: bool = False, description: str = "", owner: str = "",
              tags: Sequence[str] = ()) -> Source:
        check_name("source", name)
        check_name("timestamp column", timestamp)
        declared = tuple(sorted((schema or {}).items()))
        for column, dtype in declared:
            check_name("column", column)
            if dtype not in COLUMN_TYPES:
                raise InvalidDefinitionError(
                    f"column {column!r} of source {name!r} has type {dtype!r}; "
                    f"use one of {', '.join(COLUMN_TYPES)}", field="schema",
                )
        return cls(name, kind, timestamp, location, uri, declared, timestamps_utc,
                   description, owner, tuple(tags))

    @classmethod
    def parquet(cls, path: str | Path, *, timestamp: str, name: str | None = None,
                **options: Any) -> Source:
        """Parquet file or folder of files."""
        return cls._make("parquet", name or _stem(path), timestamp=timestamp,
                         location=str(path), **options)

    @classmethod
    def csv(cls, path: str | Path, *, timestamp: str, name: str | None = None,
            **options: Any) -> Source:
        """CSV file or folder of files."""
        return cls._make("csv", name or _stem(path), timestamp=timestamp,
                         location=str(path), **options)

    @classmethod
    def frame(cls, name: str, *, timestamp: str, **options: Any) -> Source:
        """Rows pushed by ``yard.ingest(source, frame)`` (pandas, Polars or Arrow)."""
        return cls._make("frame", name, timestamp=timestamp, **options)

    @classmethod
    def sql(cls, query: str, uri: str, *, timestamp: str, name: str, **options: Any
            ) -> Source:
        """The result of a SQL query against a database (SQLAlchemy URI)."""
        if not query.strip():
            raise InvalidDefinitionError(f"source {name!r} has an empty query", field="query")
        return cls._make("sql", name, timestamp=timestamp, location=query, uri=uri, **options)

    @property
    def declared_schema(self) -> dict[str, str]:
        return dict(self.schema)

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.kind_of_source, "timestamp": self.timestamp,
                "location": self.location, "uri": self.uri, "schema": dict(self.schema),
                "timestamps_utc": self.timestamps_utc,
                **_meta(self.description, self.owner, self.tags)}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Source:
        return cls._make(spec["type"], spec["name"], timestamp=spec["timestamp"],
                         location=spec.get("location", ""), uri=spec.get("uri", ""),
                         schema=spec.get("schema") or None,
                         timestamps_utc=spec.get("timestamps_utc", False),
                         description=spec.get("description", ""),
                         owner=spec.get("owner", ""), tags=spec.get("tags", ()))


def _stem(path: str | Path) -> str:
    stem = Path(path).name.split(".")[0]
    return re.sub(r"\W", "_", stem) or "source"


# --- feature ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Feature:
    """A SQL expression over source columns, or with ``window`` an aggregation over each
    entity's history (``"mean(claim_amount)"``, ``"count(*)"``) evaluated point in time."""

    name: str
    expr: str
    window: str | None = None
    description: str = ""
    owner: str = ""
    tags: tuple[str, ...] = ()
    expect: tuple[tuple[str, Any], ...] = ()  # declared expectations, checked at ingestion

    def __init__(self, name: str, expr: str, *, window: str | None = None,
                 description: str = "", owner: str = "", tags: Sequence[str] = (),
                 min: float | None = None, max: float | None = None, not_null: bool = False,
                 allowed: Sequence[Any] | None = None, unique: bool = False) -> None:
        """``min``/``max``/``not_null``/``allowed``/``unique`` declare expectations on a
        row-level feature: an ingested batch whose computed values break one is refused."""
        check_name("feature", name)
        if not isinstance(expr, str) or not expr.strip():
            raise InvalidDefinitionError(f"feature {name!r} needs an expression", field="expr")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "expr", expr.strip())
        object.__setattr__(self, "window", window)
        object.__setattr__(self, "description", description)
        object.__setattr__(self, "owner", owner)
        object.__setattr__(self, "tags", tuple(tags))
        expect: list[tuple[str, Any]] = []
        if min is not None or max is not None:
            expect.append(("range", (min, max)))
        if not_null:
            expect.append(("not_null", True))
        if allowed is not None:
            expect.append(("allowed", tuple(allowed)))
        if unique:
            expect.append(("unique", True))
        object.__setattr__(self, "expect", tuple(expect))
        if window is not None:
            parse_duration(window)
            self.aggregation()  # validates the form
            if expect:
                raise InvalidDefinitionError(
                    f"window feature {name!r}: expectations apply to row-level features "
                    "(checked on each ingested batch), not to aggregations", field="expect")

    @property
    def pii(self) -> bool:
        return "pii" in self.tags

    @property
    def window_us(self) -> int | None:
        return None if self.window is None else parse_duration(self.window)

    def aggregation(self) -> tuple[str, str | None]:
        """(function, inner SQL expression or None for count(*)) of a window feature."""
        m = _AGG.match(self.expr)
        func = _AGG_ALIASES.get(m[1].lower(), m[1].lower()) if m else ""
        if not m or func not in WINDOW_FUNCS:
            raise InvalidDefinitionError(
                f"window feature {self.name!r} must aggregate, like mean(column), count(*) "
                f"or max(a * b); functions: {', '.join(WINDOW_FUNCS)}; got {self.expr!r}",
                field="expr",
            )
        inner = m[2].strip()
        if inner == "*":
            if func != "count":
                raise InvalidDefinitionError(
                    f"window feature {self.name!r}: only count takes *", field="expr")
            return func, None
        if not inner:
            raise InvalidDefinitionError(
                f"window feature {self.name!r}: {func}() needs an expression", field="expr")
        return func, inner

    def spec(self) -> dict[str, Any]:
        spec = {"name": self.name, "expr": self.expr, "window": self.window,
                **_meta(self.description, self.owner, self.tags)}
        if self.expect:  # only when declared, so earlier versions keep their hash
            spec["expect"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.expect}
        return spec

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Feature:
        expect = dict(spec.get("expect") or {})
        low, high = expect.get("range") or (None, None)
        return cls(spec["name"], spec["expr"], window=spec.get("window"),
                   description=spec.get("description", ""), owner=spec.get("owner", ""),
                   tags=spec.get("tags", ()), min=low, max=high,
                   not_null=bool(expect.get("not_null")), allowed=expect.get("allowed"),
                   unique=bool(expect.get("unique")))


# --- transform ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Transform:
    """A Python function DataFrame -> DataFrame applied to a source's rows before features
    are computed. Its source code is stored and hashed, never pickled."""

    name: str
    code: str

    @classmethod
    def from_function(cls, fn: Callable[..., Any]) -> Transform:
        try:
            code = textwrap.dedent(inspect.getsource(fn))
        except (OSError, TypeError) as exc:
            raise InvalidDefinitionError(
                f"the source code of transform {getattr(fn, '__name__', fn)!r} cannot be read "
                "(define it in a .py file, not in an interactive prompt)", field="transform",
            ) from exc
        code = re.sub(r"^@[^\n]*\n", "", code, flags=re.MULTILINE)  # decorators
        return cls(check_name("transform", fn.__name__), code)

    def load(self) -> Callable[..., Any]:
        """The function, rebuilt from the stored code (imports inside it run then)."""
        namespace: dict[str, Any] = {}
        exec(compile(self.code, f"<transform {self.name}>", "exec"), namespace)
        fn = namespace.get(self.name)
        if not callable(fn):
            raise InvalidDefinitionError(
                f"transform {self.name!r}: the stored code does not define it",
                field="transform")
        return fn  # type: ignore[no-any-return]

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "code": self.code}


# --- feature group ------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureGroup:
    """Features of one entity computed from one source, versioned together."""

    name: str
    entity: Entity
    source: Source
    features: tuple[Feature, ...]
    ttl: str | None = None
    transform: Transform | None = None
    description: str = ""
    owner: str = ""
    tags: tuple[str, ...] = ()
    _ttl_us: int | None = field(default=None, repr=False, compare=False)

    kind = "feature_group"

    def __init__(self, name: str, *, entity: Entity, source: Source,
                 features: Sequence[Feature], ttl: str | None = None,
                 transform: Callable[..., Any] | Transform | None = None,
                 description: str = "", owner: str = "", tags: Sequence[str] = ()) -> None:
        check_name("feature group", name)
        if not isinstance(entity, Entity):
            raise InvalidDefinitionError(f"feature group {name!r}: entity must be an Entity",
                                         field="entity")
        if not isinstance(source, Source):
            raise InvalidDefinitionError(f"feature group {name!r}: source must be a Source",
                                         field="source")
        if not features:
            raise InvalidDefinitionError(f"feature group {name!r} has no features",
                                         field="features")
        names = [f.name for f in features]
        clash = {n for n in names if names.count(n) > 1} | (set(names) & set(entity.keys))
        if clash:
            raise InvalidDefinitionError(
                f"feature group {name!r}: feature names must be unique and differ from the "
                f"entity's keys: {', '.join(sorted(clash))}", field="features")
        if transform is not None and not isinstance(transform, Transform):
            transform = Transform.from_function(transform)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "entity", entity)
        object.__setattr__(self, "source", source)
        object.__setattr__(self, "features", tuple(features))
        object.__setattr__(self, "ttl", ttl)
        object.__setattr__(self, "transform", transform)
        object.__setattr__(self, "description", description)
        object.__setattr__(self, "owner", owner)
        object.__setattr__(self, "tags", tuple(tags))
        object.__setattr__(self, "_ttl_us", None if ttl is None else parse_duration(ttl, "ttl"))

    @property
    def ttl_us(self) -> int | None:
        return self._ttl_us

    def feature(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    def spec(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "entity": self.entity.spec(),
            "source": self.source.spec(),
            "features": [f.spec() for f in self.features],
            "ttl": self.ttl,
            "transform": None if self.transform is None else self.transform.spec(),
            **_meta(self.description, self.owner, self.tags),
        }

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> FeatureGroup:
        code = spec.get("transform")
        return cls(spec["name"], entity=Entity.from_spec(spec["entity"]),
                   source=Source.from_spec(spec["source"]),
                   features=[Feature.from_spec(f) for f in spec["features"]],
                   ttl=spec.get("ttl"),
                   transform=None if code is None else Transform(code["name"], code["code"]),
                   description=spec.get("description", ""), owner=spec.get("owner", ""),
                   tags=spec.get("tags", ()))


Definition = Entity | Source | FeatureGroup


def transform(fn: Callable[..., Any]) -> Transform:
    """Decorator: ``@modelyard.transform`` turns a function into a stored, hashed transform."""
    return Transform.from_function(fn)
