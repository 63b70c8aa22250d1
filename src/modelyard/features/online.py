"""The online side of the feature store: materialize, look up, push, freshness, forget.

Everything here reuses the offline definitions and engine (see :mod:`features.materialize`),
so a value served online is the value a training set computes for the same entity and time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from modelyard.backends.metadata.materializations import (
    MaterializationRecord,
    MaterializationStore,
)
from modelyard.errors import InvalidInputError, NotFoundError
from modelyard.features.codec import Layout, entity_keys, epoch_us, from_epoch_us
from modelyard.features.definitions import Entity, FeatureGroup
from modelyard.features.lookup import LookupPlan, OnlineResult, entity_columns, group_plan
from modelyard.features.lookup import lookup as read_values
from modelyard.features.materialize import Materializer, Progress, table_name

if TYPE_CHECKING:
    import pyarrow as pa

    from modelyard.backends.online.base import OnlineStore
    from modelyard.features.service import FeatureService
    from modelyard.features.skew import SkewReport

PLAN_SECONDS = 1.0  # how long a resolved lookup plan is reused (new versions show up after)
MAX_PLANS = 1024  # distinct feature lists whose plans are kept
FRESHNESS_RECORDS = 500  # newest finished records freshness looks at


@dataclass(frozen=True)
class Freshness:
    """How current one feature group's online values are."""

    group: str
    version: int
    store: str
    newest_event: datetime | None  # the newest event time among the values written
    last_materialized: datetime | None  # when the last run or push finished
    materialized_as_of: datetime | None  # the cut-off of the last run or push
    runs: int

    def event_age(self, now: datetime | None = None) -> float | None:
        return _age(self.newest_event, now)

    def materialization_age(self, now: datetime | None = None) -> float | None:
        return _age(self.last_materialized, now)

    def to_dict(self) -> dict[str, Any]:
        return {"group": self.group, "version": self.version, "store": self.store,
                "newest_event": _iso(self.newest_event),
                "last_materialized": _iso(self.last_materialized),
                "materialized_as_of": _iso(self.materialized_as_of),
                "event_age_seconds": self.event_age(),
                "materialization_age_seconds": self.materialization_age(), "runs": self.runs}


def _age(moment: datetime | None, now: datetime | None) -> float | None:
    if moment is None:
        return None
    now_us = epoch_us(now) if now is not None else time.time_ns() // 1_000
    return (now_us - epoch_us(moment)) / 1e6


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


@dataclass(frozen=True)
class PushResult:
    commit_id: str
    rows: int
    entities: int
    groups: list[MaterializationRecord]


class OnlineService:
    def __init__(self, features: FeatureService, store: OnlineStore,
                 records: MaterializationStore, chunk_rows: int) -> None:
        self.features = features
        self.store = store
        self.records = records
        self.store_id = _redacted(store.uri)
        self.materializer = Materializer(features.tables, features.engine, store, records,
                                         self.store_id, chunk_rows)
        self._plans: dict[tuple[str, ...], tuple[float, LookupPlan]] = {}
        self._layouts: dict[tuple[str, int], Layout] = {}
        self._lock = threading.Lock()

    # --- materialization ------------------------------------------------------------------

    def _targets(self, groups: Sequence[str] | str | None) -> list[tuple[FeatureGroup, int]]:
        registry = self.features.definitions
        if groups is None:
            found = [(g, v) for g, v in registry.groups()
                     if self.features.tables.exists(g.source.name)]
            if not found:
                raise NotFoundError("no feature group has ingested data to materialize")
            return found
        names = [groups] if isinstance(groups, str) else list(groups)
        chosen = []
        for name in names:
            group, _, version = name.partition("@v")
            chosen.append(registry.group(group, int(version) if version else None))
        return chosen

    def materialize(self, groups: Sequence[str] | str | None = None, *,
                    at: datetime | None = None, since: datetime | None = None,
                    incremental: bool = False,
                    progress: Callable[[str, int, int], None] | None = None,
                    ) -> list[MaterializationRecord]:
        """Write the latest values of each group (every group with data by default) as of
        ``at`` (default: now). ``since`` or ``incremental`` (since the last run) recompute
        only the entities that can have changed. A crashed run is resumed."""
        records = []
        for group, version in self._targets(groups):
            report: Progress | None = None
            if progress is not None:
                def report(done: int, total: int, name: str = group.name) -> None:
                    progress(name, done, total)
            records.append(self.materializer.run(group, version, at=at, since=since,
                                                 incremental=incremental, progress=report))
        self._forget_plans()
        return records

    def history(self, group: str | None = None, limit: int | None = 50
                ) -> list[MaterializationRecord]:
        return self.records.list_materializations(group, store=self.store_id, limit=limit)

    # --- lookups --------------------------------------------------------------------------

    def plan(self, features: Sequence[str] | str) -> LookupPlan:
        key = (features,) if isinstance(features, str) else tuple(features)
        now = time.monotonic()
        cached = self._plans.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        plan = self._make_plan(key)
        with self._lock:
            if len(self._plans) >= MAX_PLANS:  # many distinct lists: start over, stay bounded
                self._plans.clear()
            self._plans[key] = (now + PLAN_SECONDS, plan)
        return plan

    def _forget_plans(self) -> None:
        with self._lock:
            self._plans.clear()

    def _make_plan(self, features: Sequence[str]) -> LookupPlan:
        selection = self.features.select_features(features)
        plans = []
        key_columns: list[str] = []
        for chosen in selection.groups:
            group = chosen.group
            layout = self.layout(group.name, chosen.version)
            windows = [f.name for f in group.features if f.window is not None]
            counts = [f.name for f in group.features if f.window is not None
                      and f.aggregation()[0] in ("count", "count_distinct")]
            plans.append(group_plan(group.name, chosen.version, layout, chosen.features,
                                    windows, counts))
            key_columns += [k for k in group.entity.keys if k not in key_columns]
        names = [n for g in selection.groups for n in g.features]
        names += [n for r in selection.requests for n in r.features]
        clash = sorted({n for n in names if names.count(n) > 1})
        if clash:
            raise InvalidInputError(
                f"feature name(s) {', '.join(clash)} asked from several groups; ask each "
                "from one group", field="features")
        outputs = [n for n in selection.asked if n not in selection.hidden]
        refs = [f"{g.group.name}@v{g.version}:{n}" for g in selection.groups
                for n in g.features if n not in selection.hidden]
        refs += [f"{r.group.name}@v{r.version}:{n}" for r in selection.requests
                 for n in r.features]
        request_columns = tuple(dict.fromkeys(
            c for r in selection.requests for c, _ in r.group.request))
        return LookupPlan(tuple(plans), tuple(key_columns), tuple(outputs), tuple(refs),
                          tuple(selection.requests), request_columns, selection.hidden)

    def layout(self, group: str, version: int) -> Layout:
        """How the group version's values are stored; NotFoundError if never materialized."""
        cached = self._layouts.get((group, version))
        if cached is not None:
            return cached
        for record in self.records.list_materializations(group, version=version,
                                                         store=self.store_id):
            if "table" in record.layout:  # a version's layout never changes: keep it
                layout = Layout.from_dict(record.layout)
                self._layouts[group, version] = layout
                return layout
        raise NotFoundError(
            f"feature group {group!r} v{version} has never been materialized into the online "
            f"store {self.store_id}: run `modelyard features materialize {group}`",
            group=group, version=version)

    def online_features(self, features: Sequence[str] | str, entities: Any, *,
                        request: dict[str, Any] | None = None,
                        at: datetime | None = None) -> OnlineResult:
        """The features of each entity: values, and a status per row (found / missing /
        expired by the group's TTL, measured at ``at``, default now). Request feature
        groups take their request columns from ``request`` (or from ``entities``)."""
        plan = self.plan(features)
        columns = entity_columns(entities, plan.key_columns, plan.request_columns, request)
        return read_values(self.store, plan, columns, None if at is None else epoch_us(at))

    # --- push -----------------------------------------------------------------------------

    def push(self, group: FeatureGroup | str, data: Any) -> PushResult:
        """Ingest rows into the group's source (one offline commit), then write the new
        values of every entity in them to the online store, for this group and for the
        other materialized groups of the same source."""
        from modelyard.features.training import to_arrow

        name = group.name if isinstance(group, FeatureGroup) else group
        target, version = self.features.definitions.group(name)
        commit = self.features.ingest(target.name, data)
        keys = to_arrow(data, "data").select(list(target.entity.keys))
        written = [self.materializer.push(target, version, keys)]
        for other, other_version in self.features.definitions.groups():
            if other.name == target.name or other.source.name != target.source.name:
                continue
            if self.materializer.last_done(other.name, other_version) is not None:
                other_keys = to_arrow(data, "data").select(list(other.entity.keys))
                written.append(self.materializer.push(other, other_version, other_keys))
        self._forget_plans()
        return PushResult(commit.commit_id, commit.rows, written[0].entities, written)

    # --- freshness and forgetting ---------------------------------------------------------

    def freshness(self, groups: Sequence[str] | str | None = None) -> list[Freshness]:
        registry = self.features.definitions
        targets = registry.groups() if groups is None else self._targets(groups)
        out = []
        for group, version in targets:
            done = self.records.list_materializations(
                group.name, version=version, store=self.store_id, status="done",
                limit=FRESHNESS_RECORDS)
            events = [r.max_event_us for r in done if r.max_event_us is not None]
            finished = [r.finished_at for r in done if r.finished_at is not None]
            cut = max((r.at_us for r in done), default=None)
            out.append(Freshness(
                group.name, version, self.store_id,
                from_epoch_us(max(events)) if events else None,
                from_epoch_us(max(finished) * 1000) if finished else None,
                from_epoch_us(cut) if cut is not None else None, len(done)))
        return out

    def forget(self, entity: Entity, keys: pa.Table) -> int:
        """Remove the entities from every materialized version of every group of ``entity``."""
        removed = 0
        for group, latest in self.features.definitions.groups():
            if group.entity.name != entity.name:
                continue
            encoded = entity_keys([keys.column(k).to_pylist() for k in entity.keys])
            for version in range(1, latest + 1):
                removed += self.store.delete(table_name(group.name, version), encoded)
        return removed

    def check_skew(self, group: str, *, sample: int = 100, seed: int | None = None
                   ) -> SkewReport:
        from modelyard.features.skew import check_skew

        return check_skew(self, group, sample=sample, seed=seed)


def _redacted(uri: str) -> str:
    """The store URI without a password."""
    if "@" in uri and "://" in uri:
        scheme, rest = uri.split("://", 1)
        credentials, host = rest.rsplit("@", 1)
        user = credentials.split(":", 1)[0]
        return f"{scheme}://{user + '@' if user else ''}{host}"
    return uri


__all__ = ["Freshness", "OnlineResult", "OnlineService", "PushResult", "from_epoch_us"]
