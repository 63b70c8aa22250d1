"""Point-in-time-correct training sets: definitions + offline tables -> the engine.

For every spine row and every feature, the value is the latest one whose event time is at or
before the row's timestamp (within the group's TTL), ties on event time broken by ingestion
time; window features aggregate the entity's history up to the row's timestamp; with
``as_of`` only rows ingested by then are seen. The engine reads the tables and does the joins;
this module tells it which table versions and feature expressions, and records the lineage:
the :class:`TrainingSet` id is a hash of the feature versions, the table commits and the
spine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from modelyard.backends.offline.engine import (
    GroupInput,
    OfflineEngine,
    TableInput,
    WindowSpec,
    tie_columns,
)
from modelyard.backends.offline.tables import OfflineTableStore
from modelyard.errors import InvalidDefinitionError, InvalidInputError, NotFoundError
from modelyard.features.definitions import FeatureGroup
from modelyard.features.registry import validate_group
from modelyard.features.request import SelectedRequest, compute
from modelyard.features.sql import SourceColumns, quote, select

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl
    import pyarrow as pa

INGESTED_AT = "_ingested_at"


@dataclass(frozen=True)
class SelectedGroup:
    group: FeatureGroup
    version: int
    features: tuple[str, ...]


@dataclass(frozen=True)
class Selection:
    """What a list of feature references asks for: stored groups (with the inputs of request
    features), request feature groups, and the inputs not asked for themselves."""

    groups: list[SelectedGroup]
    requests: list[SelectedRequest]
    hidden: tuple[str, ...]
    asked: tuple[str, ...] = ()  # the feature names, in the order they were asked for


@dataclass
class TrainingSet:
    """The rows (spine columns, then features) and the lineage that rebuilds them."""

    training_set_id: str
    table: pa.Table
    features: list[str]  # "group@vN:feature"
    label: str | None
    timestamp: str
    commits: dict[str, str | None]  # source -> last commit seen
    spine_sha256: str
    as_of: str | None
    created_at: int = field(default_factory=lambda: time.time_ns() // 1_000_000)

    def to_pandas(self) -> pd.DataFrame:
        return self.table.to_pandas()

    def to_arrow(self) -> pa.Table:
        return self.table

    def to_polars(self) -> pl.DataFrame:
        import polars as pl

        result = pl.from_arrow(self.table)
        assert isinstance(result, pl.DataFrame)
        return result

    @property
    def frame(self) -> pd.DataFrame:
        return self.to_pandas()

    def __len__(self) -> int:
        return int(self.table.num_rows)

    def lineage(self) -> dict[str, Any]:
        return {"training_set_id": self.training_set_id, "features": self.features,
                "label": self.label, "timestamp": self.timestamp, "commits": self.commits,
                "spine_sha256": self.spine_sha256, "as_of": self.as_of,
                "rows": self.table.num_rows}


def to_arrow(data: Any, what: str) -> pa.Table:
    import pyarrow as pa

    if isinstance(data, pa.Table):
        return data
    module = type(data).__module__.split(".")[0]
    if module == "pandas":
        return pa.Table.from_pandas(data, preserve_index=False)
    if module == "polars":
        return data.to_arrow()  # type: ignore[no-any-return]
    raise InvalidInputError(
        f"{what} must be a pandas or Polars DataFrame or an Arrow table, got "
        f"{type(data).__name__}", field=what)


def spine_timestamp(spine: pa.Table, timestamp: str | None) -> str:
    import pyarrow as pa

    if timestamp is not None:
        if timestamp not in spine.column_names:
            raise InvalidInputError(
                f"the spine has no timestamp column {timestamp!r} (columns: "
                f"{', '.join(spine.column_names)})", field="timestamp")
        chosen = timestamp
    else:
        stamps = [f.name for f in spine.schema if pa.types.is_timestamp(f.type)]
        if len(stamps) != 1:
            raise InvalidInputError(
                "the spine needs one timestamp column per row (the time each row's features "
                f"are taken at); found {stamps or 'none'}: pass timestamp='column'",
                field="timestamp")
        chosen = stamps[0]
    kind = spine.schema.field(chosen).type
    if not pa.types.is_timestamp(kind):
        raise InvalidInputError(
            f"spine column {chosen!r} must hold timestamps, not {kind}", field="timestamp")
    if kind.tz is None:
        raise InvalidInputError(
            f"spine column {chosen!r} holds naive timestamps; make them timezone-aware "
            "(e.g. pandas .dt.tz_localize('UTC')) so no row can see the future by a time "
            "zone's offset", field="timestamp")
    return chosen


def group_input(tables: OfflineTableStore, selected: SelectedGroup,
                as_of: datetime | None) -> tuple[GroupInput, int]:
    """The engine's input for a group and the table version it reads.

    A group without a transform goes as a reference: the table, its current version and the
    SQL expressions of the features, which the engine computes where the table lies. A group
    with a Python ``transform`` cannot be pushed down: its rows are read here, transformed and
    sent to the engine as an Arrow table, the one case where history rows pass through this
    process."""
    group = selected.group
    source = group.source
    if not tables.exists(source.name):
        raise NotFoundError(
            f"source {source.name!r} of feature group {group.name!r} has no data yet: "
            f"ingest it first (yard.features.ingest({source.name!r}, ...))",
            source=source.name)
    snapshot = tables.snapshot(source.name)
    if group.transform is not None:
        return prepare_group(tables.read(source.name, as_of=as_of), selected), snapshot.version
    columns, row_features, windows = _plan(selected, None)
    schema = _computed(snapshot.schema.empty_table(), selected, columns).schema
    rows = TableInput(snapshot.ref, snapshot.version, tuple(columns), schema)
    return (GroupInput(group.name, group.entity.keys, rows, row_features, windows,
                       group.ttl_us), snapshot.version)


def prepare_group(raw: pa.Table, selected: SelectedGroup, *, event_feature: str | None = None,
                  ttl: bool = True) -> GroupInput:
    """The engine's input from a group's raw source rows: the transform applied and the
    features computed. ``event_feature`` adds the chosen row's event time as a row feature of
    that name; ``ttl=False`` keeps rows older than the group's TTL (the online side applies
    the TTL when values are read).

    The rows come from the offline store, whose full ties an engine breaks by the rows'
    values (see :mod:`modelyard.backends.offline.engine`): they are sorted so that table
    position, which breaks an Arrow table's ties, gives the same choice, and materialized
    values agree with training sets."""
    group = selected.group
    if group.transform is not None:
        raw = apply_transform(raw, group)
    columns, row_features, windows = _plan(selected, event_feature)
    table = _computed(raw, selected, columns)
    unordered = GroupInput(group.name, group.entity.keys, table, row_features, windows,
                           group.ttl_us if ttl else None)
    order = [*unordered.keys, "event_time", "ingested_at", *tie_columns(unordered)]
    ordered = select(table, [(c, quote(c)) for c in table.column_names], order=order)
    return dataclasses.replace(unordered, table=ordered)


def _plan(selected: SelectedGroup, event_feature: str | None
          ) -> tuple[list[tuple[str, str]], tuple[str, ...], tuple[WindowSpec, ...]]:
    """The (name, SQL expression) columns a group's rows are computed into, its row features
    and its windows."""
    group = selected.group
    source = group.source
    keys = group.entity.keys
    columns: list[tuple[str, str]] = [(k, quote(k)) for k in keys]
    columns += [("event_time", quote(source.timestamp)), ("ingested_at", quote(INGESTED_AT))]
    row_features: list[str] = []
    if event_feature is not None:
        columns.append((event_feature, quote(source.timestamp)))
        row_features.append(event_feature)
    windows: list[WindowSpec] = []
    for name in selected.features:
        feature = group.feature(name)
        if feature.window is None:
            columns.append((name, feature.expr))
            row_features.append(name)
        else:
            func, inner = feature.aggregation()
            column = None
            if inner is not None:
                column = f"__w_{name}"
                columns.append((column, inner))
            windows.append(WindowSpec(name, func, column,  # type: ignore[arg-type]
                                      int(feature.window_us or 0)))
    return columns, tuple(row_features), tuple(windows)


def _computed(raw: pa.Table, selected: SelectedGroup, columns: list[tuple[str, str]]
              ) -> pa.Table:
    try:
        return select(raw, columns)
    except InvalidDefinitionError:
        # name the feature and the column as plan/apply would (a version applied before
        # expressions were bound, or rows that changed since), not the internal column
        source = selected.group.source
        validate_group(selected.group,
                       SourceColumns(source.name, raw.schema, "in the stored rows"))
        raise


def apply_transform(raw: pa.Table, group: FeatureGroup) -> pa.Table:
    import pyarrow as pa

    assert group.transform is not None
    fn = group.transform.load()
    frame = raw.to_pandas()
    out = fn(frame)
    table = to_arrow(out, f"the result of transform {group.transform.name}")
    needed = [*group.entity.keys, group.source.timestamp, INGESTED_AT]
    missing = [c for c in needed if c not in table.column_names]
    if missing:
        raise InvalidInputError(
            f"transform {group.transform.name!r} of feature group {group.name!r} dropped "
            f"column(s) {', '.join(missing)}; it must keep the keys, the timestamp and "
            f"{INGESTED_AT}", field="transform")
    return pa.table(table)


def spine_digest(spine: pa.Table) -> str:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, spine.schema) as writer:
        writer.write_table(spine)
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()


def build(engine: OfflineEngine, tables: OfflineTableStore, spine: pa.Table,
          groups: Sequence[SelectedGroup], *, timestamp: str, label: str | None,
          as_of: datetime | None, requests: Sequence[SelectedRequest] = (),
          hidden: Sequence[str] = ()) -> TrainingSet:
    planned = [group_input(tables, g, as_of) for g in groups]
    inputs = [group for group, _ in planned]
    names = [n for g in groups for n in g.features] + [n for r in requests for n in r.features]
    clashes = {n for n in names if names.count(n) > 1} | (set(names) & set(spine.column_names))
    if clashes:
        raise InvalidInputError(
            f"feature name(s) {', '.join(sorted(clashes))} appear in several groups or in the "
            "spine; select them from one group, or rename the spine's column",
            field="features")
    result = engine.point_in_time(spine, timestamp, inputs, as_of=as_of)
    if requests:
        computed = compute(result, requests, "the spine")
        for name in computed.column_names:
            result = result.append_column(name, computed.column(name))
    if hidden:
        result = result.drop_columns(list(hidden))
    commits: dict[str, str | None] = {}
    for g, (_, version) in zip(groups, planned, strict=True):
        history = tables.history(g.group.source.name)
        seen = [c for c in history
                if c.version <= version and (as_of is None or c.ingested_at <= as_of)]
        commits[g.group.source.name] = seen[-1].commit_id if seen else None
    features = [f"{g.group.name}@v{g.version}:{f}" for g in groups for f in g.features
                if f not in hidden]
    features += [f"{r.group.name}@v{r.version}:{f}" for r in requests for f in r.features]
    digest = spine_digest(spine)
    as_of_text = None if as_of is None else as_of.isoformat()
    ident = hashlib.sha256(json.dumps(
        {"features": features, "commits": commits, "spine": digest, "label": label,
         "timestamp": timestamp, "as_of": as_of_text}, sort_keys=True).encode()).hexdigest()
    return TrainingSet(ident, result, features, label, timestamp, commits, digest, as_of_text)
