"""The feature store: definitions, ingestion, training sets, profiles and forgetting."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelyard.backends.metadata.feature_registry import (
    DefinitionRecord,
    FeatureRegistryStore,
    TrainingSetRecord,
)
from modelyard.backends.metadata.writes import Completion, Repair, WriteIntent, WriteStore
from modelyard.backends.offline.engine import OfflineEngine
from modelyard.backends.offline.tables import COMMIT, Commit, OfflineTableStore
from modelyard.errors import InvalidDefinitionError, InvalidInputError, NotFoundError
from modelyard.features import training
from modelyard.features.columns import batch_columns, plan_columns
from modelyard.features.definitions import Entity, FeatureGroup, Source
from modelyard.features.loading import load_source
from modelyard.features.refs import parse_refs
from modelyard.features.registry import (
    AnyDefinition,
    Change,
    DefinitionRegistry,
    validate_group,
)
from modelyard.features.request import RequestFeatureGroup, SelectedRequest
from modelyard.features.sql import SourceColumns, select
from modelyard.features.training import SelectedGroup, Selection, TrainingSet, to_arrow
from modelyard.idempotency import guard

if TYPE_CHECKING:
    import pyarrow as pa

    from modelyard.features.online import OnlineService
    from modelyard.features.profiles import Profile, ProfileReport


def _as_of(value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise InvalidInputError(f"as_of {value!r} is not an ISO date-time",
                                    field="as_of") from exc
    if value.tzinfo is None:
        raise InvalidInputError("as_of must be timezone-aware (e.g. ...+00:00)",
                                field="as_of")
    return value.astimezone(UTC)


@dataclass(frozen=True)
class CommitReport:
    """One ingestion's stored profile, and what looks wrong in its rows."""

    source: str
    commit: Commit
    profile: Profile
    report: ProfileReport


class FeatureService:
    def __init__(self, registry: FeatureRegistryStore, tables: OfflineTableStore,
                 engine: OfflineEngine, project_root: Path | None,
                 online: Callable[[FeatureService], OnlineService] | None = None, *,
                 writes: WriteStore) -> None:
        self.store = registry
        self.writes = writes
        self.definitions = DefinitionRegistry(registry)
        self.tables = tables
        self.engine = engine
        self.base = project_root or Path.cwd()
        self._online_factory = online

    @functools.cached_property
    def online(self) -> OnlineService:
        """The online side: materialize, look up, push, freshness (opened on first use)."""
        if self._online_factory is None:
            from modelyard.errors import ConfigurationError

            raise ConfigurationError("this feature store has no online store configured")
        return self._online_factory(self)

    # --- definitions ----------------------------------------------------------------------

    def plan(self, objects: Sequence[AnyDefinition]) -> list[Change]:
        """What :meth:`apply` would change, without storing anything. Each feature group's
        expressions are bound to its source's columns where they are known without reading
        its rows (see :mod:`modelyard.features.columns`): a column it lacks is refused."""
        return self.definitions.plan(objects, self._plan_columns)

    def apply(self, objects: Sequence[AnyDefinition]) -> list[Change]:
        """Store new versions of changed definitions; unchanged ones are no-ops. Nothing is
        stored when any definition is refused."""
        return self.definitions.apply(objects, self._plan_columns)

    def _plan_columns(self, group: FeatureGroup) -> SourceColumns | None:
        return plan_columns(group, self.base, self.tables)

    def list_definitions(self, kind: str | None = None) -> list[DefinitionRecord]:
        return self.store.list_definitions(kind)

    def history(self, kind: str, name: str) -> list[DefinitionRecord]:
        return self.store.definition_history(kind, name)

    def group(self, name: str, version: int | None = None) -> FeatureGroup:
        return self.definitions.group(name, version)[0]

    # --- ingestion ------------------------------------------------------------------------

    def _source(self, target: Source | FeatureGroup | str) -> Source:
        """The registered source behind ``target``."""
        if isinstance(target, FeatureGroup):
            name = target.source.name
        elif isinstance(target, Source):
            name = target.name
        elif isinstance(target, str):
            name = target
            with contextlib.suppress(NotFoundError):  # a group's name means its source
                name = self.definitions.group(target)[0].source.name
        else:
            raise InvalidInputError(
                f"ingest into a Source, a FeatureGroup or a name, not {type(target).__name__}",
                field="target")
        try:
            source = self.definitions.source(name)
        except NotFoundError as exc:
            raise NotFoundError(
                f"no source or feature group named {name!r} is applied; "
                "yard.apply([...]) it first", name=name) from exc
        return source

    def source(self, target: Source | FeatureGroup | str) -> Source:
        """The registered source behind a source, a feature group, or either's name."""
        return self._source(target)

    def ingest(self, target: Source | FeatureGroup | str, data: Any = None, *,
               idempotency_key: str | None = None) -> Commit:
        """Validate a batch (a frame, or the source's own files/query when ``data`` is None)
        and append it to the source's offline table as one atomic commit, stored with its
        profile. Under an ``idempotency_key`` already used for the same source and rows, the
        first commit is returned and nothing is written (the key with other rows is refused
        with IdempotencyConflictError)."""
        import uuid

        from modelyard.features import recovery
        from modelyard.features.profiles import profile
        from modelyard.features.validation import validate_batch

        source = self._source(target)
        groups = [g for g, _ in self.definitions.groups() if g.source.name == source.name]
        keys: list[str] = []  # every key column a group of this source joins on
        for group in groups:
            keys += [k for k in group.entity.keys if k not in keys]
        raw = load_source(source, self.base) if data is None else to_arrow(data, "data")
        write = guard(self.writes, "ingest", idempotency_key, source=source.name,
                      rows=None if idempotency_key is None else recovery.table_digest(raw))
        done = write.replay()
        if done is not None:
            return Commit.from_dict(done)
        batch = validate_batch(raw, source.declared_schema or None, keys=keys,
                               timestamp=source.timestamp,
                               naive_timestamps_are_utc=source.timestamps_utc)
        for group in groups:  # before anything is written
            validate_group(group, batch_columns(group, batch, self.tables))
        self._check_expectations(source, groups, batch)
        summary = profile(batch, batch.column_names).to_dict()
        commit_id = uuid.uuid4().hex
        done = write.begin("ingest", source.name, {
            "commit_id": commit_id, "profile": summary, "fingerprint": write.fingerprint,
            "table_paths": recovery.table_paths(self, source.name)}, self.recover_intent)
        if done is not None:  # a dead writer's claim on the key, completed meanwhile
            return Commit.from_dict(done)
        assert write.intent is not None
        try:
            commit = self.tables.append(source.name, batch, commit_id=commit_id)
        except BaseException:
            with contextlib.suppress(Exception):  # the append's own error matters more
                if not any(c.commit_id == commit_id for c in self.commits(source.name)):
                    self.writes.discard(write.intent.intent_id)
            raise
        self.store.save_profile(source.name, commit.commit_id, summary,
                                done=write.completion(**commit.to_dict()))
        return commit

    def recover_intent(self, intent: WriteIntent) -> Repair | None:
        """Complete or roll back an ingestion or forget whose writer died mid-way."""
        from modelyard.features import recovery

        if intent.kind == "forget":
            return recovery.recover_forget(self, intent)
        return recovery.recover_ingest(self, intent)

    def _check_expectations(self, source: Source, groups: Sequence[FeatureGroup],
                            batch: pa.Table) -> None:
        """Refuse the batch if a row-level feature computed from it breaks what its
        definition declares (min/max, not_null, allowed, unique)."""
        import pyarrow as pa

        from modelyard.errors import DataValidationError
        from modelyard.features.expectations import Expectation, check_expectations

        problems: list[str] = []
        for group in groups:
            declared = [f for f in group.features if f.expect and f.window is None]
            if not declared:
                continue
            rows = batch
            if group.transform is not None:
                now = pa.scalar(datetime.now(UTC), pa.timestamp("us", tz="UTC"))
                rows = training.apply_transform(
                    batch.append_column(training.INGESTED_AT,
                                        pa.array([now.as_py()] * batch.num_rows, now.type)),
                    group)
            values = select(rows, [(f.name, f.expr) for f in declared])
            rules: list[Expectation] = []
            for f in declared:
                for kind, arg in f.expect:
                    if kind == "range":
                        rules.append(Expectation.range(f.name, arg[0], arg[1]))
                    elif kind == "not_null":
                        rules.append(Expectation.not_null(f.name))
                    elif kind == "allowed":
                        rules.append(Expectation.allowed_values(f.name, arg))
                    else:
                        rules.append(Expectation.unique(f.name))
            problems += [f"{group.name}: {v.to_text()}"
                         for v in check_expectations(values, rules)]
        if problems:
            raise DataValidationError(
                f"the batch for {source.name!r} breaks {len(problems)} declared "
                "expectation(s); nothing was written:\n  " + "\n  ".join(problems),
                problems=problems)

    def commits(self, source: str) -> list[Commit]:
        return self.tables.history(source) if self.tables.exists(source) else []

    # --- training sets --------------------------------------------------------------------

    def resolve_features(self, features: Sequence[str] | str
                         ) -> list[tuple[FeatureGroup | RequestFeatureGroup, int, str]]:
        """(group, version, feature name) for each feature that references name, in order;
        ``group:*`` expands to every feature of the group. A group may be a request feature
        group."""
        resolved: list[tuple[FeatureGroup | RequestFeatureGroup, int, str]] = []
        groups: dict[tuple[str, int | None], tuple[FeatureGroup | RequestFeatureGroup, int]] = {}
        for ref in parse_refs(features):
            if (ref.group, ref.version) not in groups:
                groups[ref.group, ref.version] = self.definitions.any_group(ref.group,
                                                                            ref.version)
            group, version = groups[ref.group, ref.version]
            names = [f.name for f in group.features] if ref.feature == "*" else [ref.feature]
            for name in names:
                try:
                    group.feature(name)
                except KeyError:
                    raise NotFoundError(
                        f"feature group {group.name!r} (v{version}) has no feature {name!r}; "
                        f"it has {', '.join(f.name for f in group.features)}",
                        feature=str(ref)) from None
                resolved.append((group, version, name))
        return resolved

    def select_features(self, features: Sequence[str] | str) -> Selection:
        """The groups and features a list of references asks for; request feature groups
        bring their inputs along (hidden from the result unless asked for too)."""
        chosen: dict[tuple[str, int], list[str]] = {}
        groups: dict[tuple[str, int], FeatureGroup] = {}
        requests: dict[tuple[str, int], tuple[RequestFeatureGroup, list[str]]] = {}
        resolved = self.resolve_features(features)
        for group, version, name in resolved:
            if isinstance(group, RequestFeatureGroup):
                entry = requests.setdefault((group.name, version), (group, []))
                if name not in entry[1]:
                    entry[1].append(name)
                continue
            groups[group.name, version] = group
            if name not in chosen.setdefault((group.name, version), []):
                chosen[group.name, version].append(name)
        asked = {n for names in chosen.values() for n in names}
        hidden: list[str] = []
        for request_group, _ in requests.values():
            for group, version, name in self.resolve_features(list(request_group.inputs)):
                if isinstance(group, RequestFeatureGroup):
                    raise InvalidDefinitionError(
                        f"request feature group {request_group.name!r} takes input "
                        f"{group.name}:{name} from another request feature group; inputs must "
                        "be stored features", field="inputs")
                groups[group.name, version] = group
                if name not in chosen.setdefault((group.name, version), []):
                    chosen[group.name, version].append(name)
                if name not in asked and name not in hidden:
                    hidden.append(name)
        return Selection(
            [SelectedGroup(groups[k], k[1], tuple(v)) for k, v in chosen.items()],
            [SelectedRequest(g, k[1], tuple(names)) for k, (g, names) in requests.items()],
            tuple(hidden), tuple(dict.fromkeys(name for _, _, name in resolved)))

    def training_set(self, spine: Any = None, features: Sequence[str] | str = (), *,
                     label: str | None = None, timestamp: str | None = None,
                     as_of: datetime | str | None = None, start: datetime | None = None,
                     end: datetime | None = None) -> TrainingSet:
        """Point-in-time-correct features for every spine row (keys + timestamp [+ label]);
        without a spine, for every entity event of the first group between start and end."""
        selection = self.select_features(features)
        selected = selection.groups
        if not selected:
            raise InvalidInputError("name at least one stored feature (a request feature "
                                    "group's inputs count)", field="features")
        when = self._resolve_as_of(as_of, selected)
        if spine is None:
            spine_table = self._spine_for_period(selected[0], start, end, when)
            timestamp = selected[0].group.source.timestamp
        else:
            if start is not None or end is not None:
                raise InvalidInputError("pass a spine or start/end, not both", field="spine")
            spine_table = to_arrow(spine, "spine")
        ts = training.spine_timestamp(spine_table, timestamp)
        if label is not None and label not in spine_table.column_names:
            raise InvalidInputError(f"the spine has no label column {label!r}", field="label")
        for s in selected:
            missing = [k for k in s.group.entity.keys if k not in spine_table.column_names]
            if missing:
                raise InvalidInputError(
                    f"the spine lacks key column(s) {', '.join(missing)} of entity "
                    f"{s.group.entity.name!r} (feature group {s.group.name!r})", field="spine")
        result = training.build(self.engine, self.tables, spine_table, selected,
                                timestamp=ts, label=label, as_of=when,
                                requests=selection.requests, hidden=selection.hidden)
        self.store.save_training_set(TrainingSetRecord(result.training_set_id,
                                                       result.created_at, result.lineage()))
        return result

    def _resolve_as_of(self, value: datetime | str | None, selected: Sequence[SelectedGroup]
                       ) -> datetime | None:
        """A time, an ISO date-time, or the id of a commit of one of the selected groups'
        sources (its ingestion time then cuts every table)."""
        if not isinstance(value, str):
            return _as_of(value)
        try:
            return _as_of(value)
        except InvalidInputError:
            pass
        for s in selected:
            for commit in self.commits(s.group.source.name):
                if commit.commit_id == value:
                    return commit.ingested_at.astimezone(UTC)
        raise InvalidInputError(
            f"as_of {value!r} is neither an ISO date-time nor the id of a commit of "
            f"{', '.join(sorted({s.group.source.name for s in selected}))}", field="as_of")

    def _spine_for_period(self, selected: SelectedGroup, start: datetime | None,
                          end: datetime | None, as_of: datetime | None) -> pa.Table:
        import pyarrow.compute as pc

        if start is None or end is None:
            raise InvalidInputError("without a spine, give both start and end",
                                    field="start")
        group = selected.group
        lo, hi = _as_of(start), _as_of(end)
        keys, ts = list(group.entity.keys), group.source.timestamp
        if not self.tables.exists(group.source.name):
            raise NotFoundError(f"source {group.source.name!r} has no data yet",
                                source=group.source.name)
        rows = self.tables.read(group.source.name, columns=[*keys, ts], as_of=as_of)
        mask = pc.and_(pc.greater_equal(rows[ts], lo), pc.less(rows[ts], hi))
        period = rows.filter(mask)
        return period.group_by([*keys, ts]).aggregate([]).sort_by(
            [(ts, "ascending"), *((k, "ascending") for k in keys)])

    def get_training_set(self, training_set_id: str) -> TrainingSetRecord:
        return self.store.get_training_set(training_set_id)

    # --- profiles and forgetting ----------------------------------------------------------

    def _ingestion(self, source: str, commit_id: str | None) -> Commit:
        """The newest ingestion of ``source``, or the one whose id starts with ``commit_id``."""
        ingestions = [c for c in self.commits(source) if c.operation == "ingest"]
        if not ingestions:
            raise NotFoundError(f"source {source!r} has no data yet", source=source)
        if commit_id is None:
            return ingestions[-1]
        found = [c for c in ingestions if c.commit_id.startswith(commit_id)] if commit_id else []
        if len(found) != 1:
            problem = "several ingestions" if found else "no ingestion"
            raise NotFoundError(f"{problem} of {source!r} with an id starting with "
                                f"{commit_id!r}", source=source, commit=commit_id)
        return found[0]

    def commit_profile(self, source: str, commit_id: str | None = None) -> dict[str, Any]:
        """The profile stored when a commit was ingested (the newest by default)."""
        from modelyard.features import recovery

        commit = self._ingestion(source, commit_id)
        found = self.store.get_profile(source, commit.commit_id)
        if found is None:  # a writer died between the commit and its profile
            return recovery.missing_profile(self, source, commit)
        return found

    def commit_report(self, target: Source | FeatureGroup | str,
                      commit_id: str | None = None) -> CommitReport:
        """The stored profile of an ingestion into ``target``'s source (the newest by
        default) with the report on that ingestion's rows as they are now."""
        import pyarrow as pa
        import pyarrow.compute as pc

        from modelyard.features.profiles import Profile, report

        source = self.source(target).name
        commit = self._ingestion(source, commit_id)
        summary = Profile.from_dict(self.commit_profile(source, commit.commit_id))
        names = list(summary.columns)
        rows = self.tables.read(source, columns=[*names, COMMIT], as_of=commit.commit_id)
        rows = rows.filter(pc.equal(rows[COMMIT].cast(pa.string()), commit.commit_id))
        same = rows.num_rows == summary.rows  # else some were forgotten: profile them anew
        return CommitReport(source, commit, summary,
                            report(rows, names, summary=summary if same else None))

    def typed_keys(self, entity: Entity | str, texts: Sequence[str]) -> pa.Table:
        """Key values written as text (on a command line) in the type of the entity's key
        column: as stored in its sources' offline tables, else as their schemas declare."""
        import pyarrow as pa

        from modelyard.features.validation import COLUMN_TYPES

        ent = entity if isinstance(entity, Entity) else self.definitions.entity(entity)
        if len(ent.keys) != 1:
            raise InvalidInputError(
                f"entity {ent.name!r} has a composite key ({', '.join(ent.keys)}): give its "
                f"values by column from Python, yard.features.forget({ent.name!r}, "
                f"{{{', '.join(f'{k!r}: [...]' for k in ent.keys)}}})", field="keys")
        key = ent.keys[0]
        kind: pa.DataType = pa.string()
        for group, _ in reversed(self.definitions.groups()):
            if group.entity.name != ent.name:
                continue
            if self.tables.exists(group.source.name):
                kind = self.tables.scan(group.source.name, columns=[key]).schema.field(0).type
                break
            if key in group.source.declared_schema:
                kind = COLUMN_TYPES[group.source.declared_schema[key]]
        values = []
        for text in texts:
            try:
                values.append(pa.scalar(text, pa.string()).cast(kind))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise InvalidInputError(
                    f"{text!r} is not a valid {key} ({kind}) for entity {ent.name!r}",
                    field="keys", value=text) from exc
        return pa.table({key: pa.array([v.as_py() for v in values], kind)})

    def forget(self, entity: Entity | str, keys: Any) -> int:
        """Delete an entity's rows from every version of every offline table that holds it
        (a real delete, not a filter) and its values from the online store, and record that
        it happened."""
        import pyarrow as pa

        ent = entity if isinstance(entity, Entity) else self.definitions.entity(entity)
        if isinstance(keys, dict):
            key_table = pa.table({k: list(v) for k, v in keys.items()})
        elif isinstance(keys, (list, tuple)):
            if len(ent.keys) != 1:
                raise InvalidInputError(
                    f"entity {ent.name!r} has a composite key; pass a dict of columns "
                    f"{list(ent.keys)}", field="keys")
            key_table = pa.table({ent.keys[0]: list(keys)})
        else:
            key_table = to_arrow(keys, "keys")
        missing = [k for k in ent.keys if k not in key_table.column_names]
        if missing:
            raise InvalidInputError(f"keys lack column(s) {', '.join(missing)} of entity "
                                    f"{ent.name!r}", field="keys")
        sources = sorted({g.source.name for g, _ in self.definitions.groups()
                          if g.entity.name == ent.name})
        # recorded first, so that a crash part-way is finished on the next open
        intent = self.writes.begin("forget", ent.name, {
            "keys": key_table.select(list(ent.keys)).to_pydict(), "sources": sources,
            "table_paths": [p for s in sources for p in _table_paths(self, s)]})
        removed = 0
        per_source: dict[str, int] = {}
        for source in sources:
            if self.tables.exists(source):
                n = self.tables.forget(source, ent.keys, key_table.select(list(ent.keys)))
                per_source[source] = n
                removed += n
        details: dict[str, Any] = {"sources": per_source}
        if self._online_factory is not None:
            details["online_values"] = self.online.forget(
                ent, key_table.select(list(ent.keys)))
        self.store.log_forget(ent.name, key_table.num_rows, removed, details,
                              done=Completion("forget", intent_id=intent.intent_id))
        return removed


def _table_paths(service: FeatureService, source: str) -> list[str]:
    from modelyard.features.recovery import table_paths

    return table_paths(service, source)
