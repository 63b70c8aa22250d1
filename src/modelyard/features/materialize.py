"""Materialization: the latest feature values per entity, computed by the training-set engine.

A materialization *at* instant T writes, for every entity with history at or before T, what a
training set would compute for a spine row (entity, T): the same definitions, the same
engine, the same code path (:func:`values_at`). Window features are therefore values as of T.
Rows are read from a *snapshot* of the offline tables (everything ingested when the run
started, named by the newest ingestion time among it), so a run is repeatable and resumable
even while new rows arrive, and two runs over the same data store the same bytes.

Memory stays bounded: entities are processed in chunks sized so that each reads about
``chunk_rows`` offline rows. After each chunk the run's record notes the last entity key
written, so a crashed run resumes after it. Writes are idempotent (newer-stamp-wins upserts),
so a chunk redone after a crash changes nothing.

An *incremental* run recomputes only entities whose values can have changed since the
previous run: those with rows ingested after its snapshot, and those with rows whose event
time lies between the previous cut-off (less the longest window, as rows leave windows too)
and T.
"""

from __future__ import annotations

import bisect
import json
import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from modelyard.backends.metadata.materializations import (
    MaterializationRecord,
    MaterializationStore,
    Mode,
    Status,
)
from modelyard.backends.offline.tables import COMMIT
from modelyard.errors import InvalidInputError, ModelyardError, NotFoundError
from modelyard.features.codec import Layout, encode_rows, epoch_us, from_epoch_us
from modelyard.features.definitions import FeatureGroup
from modelyard.features.training import INGESTED_AT, SelectedGroup, prepare_group

if TYPE_CHECKING:
    import pyarrow as pa

    from modelyard.backends.offline.engine import OfflineEngine
    from modelyard.backends.offline.tables import OfflineTableStore
    from modelyard.backends.online.base import OnlineStore

EVENT = "__modelyard_event_time"
AT = "__modelyard_at"
_FUTURE_SLACK_US = 5_000_000  # clocks of two machines may differ a little

Progress = Callable[[int, int], None]  # (chunks done, chunks in all)


def table_name(group: str, version: int) -> str:
    return f"{group}@v{version}"


def _now_us() -> int:
    return time.time_ns() // 1_000


def values_at(engine: OfflineEngine, selected: SelectedGroup, raw: pa.Table, keys: pa.Table,
              at_us: int) -> pa.Table:
    """Keys, the event time of the row the row features come from, and every selected
    feature, for each entity of ``keys`` as of ``at_us``; entities without history at or
    before then are left out. The group's TTL is not applied here (lookups apply it)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    group_input = prepare_group(raw, selected, event_feature=EVENT, ttl=False)
    stamp = pa.array([from_epoch_us(at_us)] * keys.num_rows, pa.timestamp("us", tz="UTC"))
    spine = keys.append_column(AT, stamp)
    out = engine.point_in_time(spine, AT, [group_input])
    out = out.filter(pc.is_valid(out[EVENT]))
    return out.drop_columns([AT])


@dataclass(frozen=True)
class _Plan:
    keys: pa.Table  # the entities to compute, sorted by key
    per_chunk: int
    whole: bool  # the keys are every entity of the table


class Materializer:
    """Runs materializations of one feature group version into one online store."""

    def __init__(self, tables: OfflineTableStore, engine: OfflineEngine, online: OnlineStore,
                 records: MaterializationStore, store_id: str, chunk_rows: int) -> None:
        if chunk_rows < 1:
            raise InvalidInputError("materialize_chunk_rows must be at least 1",
                                    field="materialize_chunk_rows")
        self.tables = tables
        self.engine = engine
        self.online = online
        self.records = records
        self.store_id = store_id
        self.chunk_rows = chunk_rows

    # --- runs ---------------------------------------------------------------------------------

    def run(self, group: FeatureGroup, version: int, *, at: datetime | None = None,
            since: datetime | None = None, incremental: bool = False,
            progress: Progress | None = None) -> MaterializationRecord:
        """Materialize ``group`` (all its features) as of ``at`` (default: now). A run left
        unfinished by a crash is resumed first when neither ``at`` nor ``since`` is given."""
        self._check_source(group)
        if at is None and since is None:
            unfinished = self._unfinished(group.name, version)
            if unfinished is not None:
                return self._execute(group, unfinished, progress)
        now = _now_us()
        at_us = now if at is None else epoch_us(at)
        if at_us > now + _FUTURE_SLACK_US:
            raise InvalidInputError(
                f"cannot materialize as of {from_epoch_us(at_us).isoformat()}, which is in "
                "the future", field="at")
        mode: Mode = "full"
        since_us: int | None = None
        previous_at: int | None = None
        if since is not None:
            since_us = previous_at = epoch_us(since)
            mode = "incremental"
        elif incremental:
            last = self.last_done(group.name, version)
            if last is not None:
                since_us, previous_at = last.snapshot_us, last.at_us
                mode = "incremental"
        record = MaterializationRecord(
            uuid.uuid4().hex, group.name, version, self.store_id, mode, "running", at_us, now,
            since_us, 0, 0, 0, 0, None, None, {"previous_at_us": previous_at},
            started_at=now // 1000)
        return self._execute(group, record, progress)

    def push(self, group: FeatureGroup, version: int, keys: pa.Table
             ) -> MaterializationRecord:
        """Recompute and write the given entities as of now (after a push ingested rows)."""
        now = _now_us()
        record = MaterializationRecord(
            uuid.uuid4().hex, group.name, version, self.store_id, "push", "running", now, now,
            None, 0, 0, 0, 0, None, None, {}, started_at=now // 1000)
        return self._execute(group, record, None, keys=_sorted_unique(keys))

    def _execute(self, group: FeatureGroup, record: MaterializationRecord,
                 progress: Progress | None, keys: pa.Table | None = None
                 ) -> MaterializationRecord:
        selected = SelectedGroup(group, record.version, tuple(f.name for f in group.features))
        try:
            plan = self._plan(group, record, keys)
            total = math.ceil(plan.keys.num_rows / plan.per_chunk)
            if record.chunks_total == 0:
                record.entities, record.chunks_total = plan.keys.num_rows, total
            self.records.save_materialization(record)
            if progress is not None:
                progress(record.chunks_done, record.chunks_total)
            start = _resume_index(plan.keys, record.resume_after)
            if plan.keys.num_rows == 0 and "table" not in record.layout:
                self._remember_layout(record, selected, plan.keys)
            source = group.source.name
            columns = [c for c in self.tables.scan(source).schema.names if c != COMMIT]
            for first in range(start, plan.keys.num_rows, plan.per_chunk):
                chunk = plan.keys.slice(first, plan.per_chunk)
                whole = plan.whole and first == 0 and chunk.num_rows == plan.keys.num_rows
                self._chunk(record, selected, chunk, columns, whole)
                record.chunks_done += 1
                last = chunk.slice(chunk.num_rows - 1, 1).to_pylist()[0]
                record.resume_after = json.dumps([last[k] for k in group.entity.keys],
                                                 default=str)
                self.records.save_materialization(record)
                if progress is not None:
                    progress(record.chunks_done, record.chunks_total)
        except BaseException as exc:
            record.status = "failed"
            record.error = str(exc) if isinstance(exc, ModelyardError) else repr(exc)
            self.records.save_materialization(record)
            raise
        record.status = "done"
        record.chunks_done = record.chunks_total
        record.finished_at = time.time_ns() // 1_000_000
        self.records.save_materialization(record)
        return record

    def _chunk(self, record: MaterializationRecord, selected: SelectedGroup,
               chunk: pa.Table, columns: list[str], whole: bool) -> None:
        """Compute and write one chunk's entities (``whole``: the chunk is every entity)."""
        group = selected.group
        raw = self._rows(group, record.snapshot_us, columns, None if whole else chunk)
        values = values_at(self.engine, selected, raw, chunk, record.at_us)
        if "table" not in record.layout:
            layout = Layout.of(table_name(group.name, record.version), values,
                               group.entity.keys, selected.features, group.ttl_us)
            record.layout.update(layout.to_dict())
        layout = Layout.from_dict(record.layout)
        rows = encode_rows(values, layout, EVENT, record.at_us, record.snapshot_us)
        record.rows_written += self.online.write(layout.table, rows)
        if values.num_rows:
            import pyarrow.compute as pc

            newest = pc.max(values[EVENT]).cast("int64").as_py()
            if newest is not None:
                record.max_event_us = max(record.max_event_us or newest, newest)

    def _remember_layout(self, record: MaterializationRecord, selected: SelectedGroup,
                         empty: pa.Table) -> None:
        """With nothing to write, still record the layout (from an empty computation)."""
        group = selected.group
        no_rows = self.tables.scan(group.source.name).schema.empty_table()
        values = values_at(self.engine, selected, no_rows, empty, record.at_us)
        record.layout.update(Layout.of(table_name(group.name, record.version), values,
                                       group.entity.keys, selected.features,
                                       group.ttl_us).to_dict())

    # --- planning -----------------------------------------------------------------------------

    def _plan(self, group: FeatureGroup, record: MaterializationRecord,
              keys: pa.Table | None) -> _Plan:
        import pyarrow.compute as pc

        names = list(group.entity.keys)
        ts = group.source.timestamp
        snapshot = from_epoch_us(record.snapshot_us)
        rows = self.tables.read(group.source.name, columns=[*names, ts, INGESTED_AT],
                                as_of=snapshot)
        total_rows = rows.num_rows
        if record.chunks_total == 0 and total_rows:
            # the snapshot is the newest ingestion the run sees, not the clock: two runs over
            # the same data then store the same bytes
            newest = pc.max(rows[INGESTED_AT]).as_py()
            if newest is not None:
                record.snapshot_us = epoch_us(newest)
        whole = False  # the keys are every entity of the table
        if keys is None:
            at = from_epoch_us(record.at_us)
            mask = pc.less_equal(rows[ts], at)
            if record.since_us is not None:
                changed = pc.greater(rows[INGESTED_AT], from_epoch_us(record.since_us))
                previous = record.layout.get("previous_at_us") or record.since_us
                lo = from_epoch_us(previous - _longest_window(group))
                moved = pc.and_(pc.greater(rows[ts], lo), mask)
                mask = pc.or_(pc.and_(changed, mask), moved)
            whole = total_rows > 0 and bool(pc.all(mask).as_py())
            keys = _sorted_unique((rows if whole else rows.filter(mask)).select(names))
        if total_rows <= self.chunk_rows:  # one chunk holds every row: no need to count
            return _Plan(keys, max(1, keys.num_rows), whole)
        everyone = keys.num_rows if whole else _sorted_unique(rows.select(names)).num_rows
        per_entity = max(1.0, total_rows / max(everyone, 1))
        return _Plan(keys, max(1, int(self.chunk_rows / per_entity)), whole)

    def _rows(self, group: FeatureGroup, snapshot_us: int, columns: list[str],
              chunk: pa.Table | None) -> pa.Table:
        """The source rows in the snapshot (``columns``: all but the commit ids): all of
        them, or those whose first key column lies in the chunk's range (chunks are slices of
        sorted keys, so a range filter is cheap where a set test is not; the spine holds only
        the chunk's entities, so no other entity is computed)."""
        import pyarrow.compute as pc

        source = group.source.name
        where = None
        if chunk is not None:
            first = chunk.column(group.entity.keys[0])
            low, high = first[0], first[len(first) - 1]
            name = group.entity.keys[0]
            where = (pc.field(name) >= low) & (pc.field(name) <= high)
        return self.tables.read(source, columns=columns, as_of=from_epoch_us(snapshot_us),
                                where=where)

    def _check_source(self, group: FeatureGroup) -> None:
        if not self.tables.exists(group.source.name):
            raise NotFoundError(
                f"source {group.source.name!r} of feature group {group.name!r} has no data "
                f"yet: ingest it first", source=group.source.name)

    # --- records ------------------------------------------------------------------------------

    def _unfinished(self, group: str, version: int) -> MaterializationRecord | None:
        """The latest run (pushes aside) when it did not finish."""
        last = self._latest_run(group, version, None)
        if last is not None and last.status != "done":
            last.status, last.error = "running", None
            return last
        return None

    def last_done(self, group: str, version: int) -> MaterializationRecord | None:
        return self._latest_run(group, version, "done")

    def _latest_run(self, group: str, version: int, status: Status | None
                    ) -> MaterializationRecord | None:
        """The newest record of a run (not a push), reading more records only while the
        newest ones are all pushes."""
        for limit in (20, 1_000, None):
            found = self.records.list_materializations(group, version=version,
                                                       store=self.store_id, status=status,
                                                       limit=limit)
            run = next((r for r in found if r.mode != "push"), None)
            if run is not None or limit is None or len(found) < limit:
                return run
        return None


def _longest_window(group: FeatureGroup) -> int:
    return max((f.window_us or 0 for f in group.features), default=0)


def _sorted_unique(keys: pa.Table) -> pa.Table:
    names = keys.column_names
    unique = keys.group_by(names, use_threads=False).aggregate([])
    unique = unique.filter(_all_valid(unique, names))
    return unique.select(names).sort_by([(n, "ascending") for n in names])


def _all_valid(table: pa.Table, names: Sequence[str]) -> Any:
    import pyarrow.compute as pc

    mask = pc.is_valid(table[names[0]])
    for name in names[1:]:
        mask = pc.and_(mask, pc.is_valid(table[name]))
    return mask


def _resume_index(keys: pa.Table, resume_after: str | None) -> int:
    """Where to start in the sorted keys: just after the last key already written."""
    if resume_after is None or keys.num_rows == 0:
        return 0
    last = json.loads(resume_after)
    names = keys.column_names
    rows = list(zip(*(keys.column(n).to_pylist() for n in names), strict=True))
    probe = tuple(_like(rows[0][i], v) for i, v in enumerate(last))
    return bisect.bisect_right(rows, probe)


def _like(example: Any, value: Any) -> Any:
    """A key value read back from JSON, of the type of ``example`` (a key of the same column):
    dates and timestamps were written as their ISO text."""
    if value is None or example is None:
        return value
    if isinstance(example, datetime):
        return datetime.fromisoformat(value)
    if isinstance(example, date):
        return date.fromisoformat(value)
    return type(example)(value)

