"""Materialization: the latest feature values per entity, computed by the training-set engine.

A materialization *at* instant T writes, for every entity with history at or before T, what a
training set would compute for a spine row (entity, T): the same definitions, the same
engine, the same code path (:func:`values_at`). Window features are therefore values as of T.
Rows are read from a *snapshot* of the offline tables (everything ingested when the run
started, named by the newest ingestion time among it), so a run is repeatable and resumable
even while new rows arrive, and two runs over the same data store the same bytes.

Memory stays bounded: one streaming pass over the snapshot keeps only the rows a value can
come from (:mod:`modelyard.features.candidates`). While those fit in ``chunk_rows``, every
entity is computed at once and written in chunks; beyond it, entities are processed in chunks
of a key range sized so that each reads about ``chunk_rows`` offline rows. After each chunk is
written the run's record notes the last entity key written, so a crashed run resumes after it.
Writes are idempotent (newer-stamp-wins upserts), so a chunk redone after a crash changes
nothing.

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
from collections.abc import Callable, Iterator, Sequence
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
from modelyard.features.candidates import Candidates, TooManyRows
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
_WRITE_CHUNK = 50_000  # entities per write when every row fits in memory

Progress = Callable[[int, int], None]  # (chunks done, chunks in all)


def table_name(group: str, version: int) -> str:
    return f"{group}@v{version}"


def _now_us() -> int:
    return time.time_ns() // 1_000


def values_at(engine: OfflineEngine, selected: SelectedGroup, raw: pa.Table, keys: pa.Table,
              at_us: int, *, every_key: bool = False) -> pa.Table:
    """Keys, the event time of the row the row features come from, and every selected
    feature, for each entity of ``keys`` as of ``at_us``; entities without history at or
    before then are left out (``every_key``: kept, with a null event time, so that the result
    lines up with ``keys``). The group's TTL is not applied here (lookups apply it)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    group_input = prepare_group(raw, selected, event_feature=EVENT, ttl=False)
    stamp = pa.array([from_epoch_us(at_us)] * keys.num_rows, pa.timestamp("us", tz="UTC"))
    spine = keys.append_column(AT, stamp)
    out = engine.point_in_time(spine, AT, [group_input]).drop_columns([AT])
    return out if every_key else out.filter(pc.is_valid(out[EVENT]))


@dataclass(frozen=True)
class _Plan:
    keys: pa.Table  # the entities to compute, sorted by key
    per_chunk: int  # entities per chunk
    rows: pa.Table | None  # the source rows every chunk is computed from, when they fit


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
            # every column but the commit ids, read once per run
            schema = self.tables.scan(group.source.name).schema
            columns = [c for c in schema.names if c != COMMIT]
            plan = self._plan(group, record, keys, columns)
            total = math.ceil(plan.keys.num_rows / plan.per_chunk)
            if record.chunks_total == 0:
                record.entities, record.chunks_total = plan.keys.num_rows, total
            self.records.save_materialization(record)
            if progress is not None:
                progress(record.chunks_done, record.chunks_total)
            start = _resume_index(plan.keys, record.resume_after)
            if plan.keys.num_rows == 0 and "table" not in record.layout:
                self._remember_layout(record, selected, plan.keys, schema)
            chunks: Iterator[tuple[pa.Table, pa.Table | None]]
            if plan.rows is not None and start < plan.keys.num_rows:
                # every row fits: compute every entity at once, write chunk by chunk
                todo = plan.keys.slice(start)
                values = values_at(self.engine, selected, plan.rows, todo, record.at_us,
                                   every_key=True)
                chunks = _chunks(todo, plan.per_chunk, values)
            else:
                chunks = ((plan.keys.slice(first, plan.per_chunk), None)
                          for first in range(start, plan.keys.num_rows, plan.per_chunk))
            for chunk, computed in chunks:
                if computed is None:
                    raw = self._rows(group, record, chunk, columns)
                    computed = values_at(self.engine, selected, raw, chunk, record.at_us)
                self._write(record, selected, computed)
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

    def _write(self, record: MaterializationRecord, selected: SelectedGroup,
               values: pa.Table) -> None:
        """Write one chunk's computed values (``values_at``'s result)."""
        group = selected.group
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
                         empty: pa.Table, schema: pa.Schema) -> None:
        """With nothing to write, still record the layout (from an empty computation)."""
        group = selected.group
        values = values_at(self.engine, selected, schema.empty_table(), empty, record.at_us)
        record.layout.update(Layout.of(table_name(group.name, record.version), values,
                                       group.entity.keys, selected.features,
                                       group.ttl_us).to_dict())

    # --- planning and reading -----------------------------------------------------------------

    def _plan(self, group: FeatureGroup, record: MaterializationRecord,
              keys: pa.Table | None, columns: list[str]) -> _Plan:
        """One streaming pass over the snapshot keeps the rows the values come from; when
        they outgrow ``chunk_rows``, a second pass over the keys alone sizes chunks that each
        read their own rows."""
        import pyarrow as pa
        import pyarrow.compute as pc

        names = list(group.entity.keys)
        # a full run computes every entity with visible rows, which are those kept
        keys_from_kept = keys is None and record.since_us is None and group.transform is None
        reader = self._scan(group, record, keys, columns)
        kept: Candidates | None = self._candidates(group, record, self.chunk_rows)
        chosen: list[pa.Table] = []  # unique keys to compute, batch by batch
        newest = None
        for batch in reader:
            newest = _newer(newest, pc.max(batch.column(INGESTED_AT)).as_py())
            table = pa.Table.from_batches([batch])
            if keys is None and not keys_from_kept:
                chosen.append(_unique(table.filter(self._due(group, record, table))
                                      .select(names)))
            if kept is not None:
                try:
                    kept.add(table)
                except TooManyRows:  # chunks will read their own rows
                    kept = None
                    return self._chunked_plan(group, record, keys)
        self._snapshot(record, newest)
        assert kept is not None
        rows = kept.table(reader.schema)
        if keys is None:
            found = rows.select(names) if keys_from_kept else (
                pa.concat_tables(chosen) if chosen else rows.select(names).slice(0, 0))
            keys = _sorted_unique(found)
        return _Plan(keys, _WRITE_CHUNK, rows)

    def _chunked_plan(self, group: FeatureGroup, record: MaterializationRecord,
                      keys: pa.Table | None) -> _Plan:
        """Chunks of entities sized so that each reads about ``chunk_rows`` rows, from a pass
        over the keys and times alone."""
        import pyarrow as pa
        import pyarrow.compute as pc

        names = list(group.entity.keys)
        columns = [*names, group.source.timestamp, INGESTED_AT]
        reader = self.tables.scan(group.source.name, columns=columns,
                                  as_of=from_epoch_us(record.snapshot_us))
        everyone: list[pa.Table] = []
        due: list[pa.Table] = []
        total_rows, newest = 0, None
        for batch in reader:
            table = pa.Table.from_batches([batch])
            total_rows += table.num_rows
            newest = _newer(newest, pc.max(table.column(INGESTED_AT)).as_py())
            everyone.append(_unique(table.select(names)))
            if keys is None:
                due.append(_unique(table.filter(self._due(group, record, table)).select(names)))
        self._snapshot(record, newest)
        empty = reader.schema.empty_table().select(names)
        if keys is None:
            keys = _sorted_unique(pa.concat_tables(due or [empty]))
        entities = _sorted_unique(pa.concat_tables(everyone or [empty])).num_rows
        per_entity = max(1.0, total_rows / max(entities, 1))
        return _Plan(keys, max(1, int(self.chunk_rows / per_entity)), None)

    @staticmethod
    def _snapshot(record: MaterializationRecord, newest: datetime | None) -> None:
        """A new run's snapshot is the newest ingestion it sees, not the clock: two runs over
        the same data then store the same bytes."""
        if record.chunks_total == 0 and newest is not None:
            record.snapshot_us = epoch_us(newest)

    def _due(self, group: FeatureGroup, record: MaterializationRecord, rows: pa.Table
             ) -> Any:
        """Which rows name an entity the run computes: with history at or before T, and in
        an incremental run also either ingested since the last snapshot or inside a window
        ending between the last run's T and this one's."""
        import pyarrow.compute as pc

        ts = rows.column(group.source.timestamp)
        mask = pc.less_equal(ts, from_epoch_us(record.at_us))
        if record.since_us is not None:
            changed = pc.greater(rows.column(INGESTED_AT), from_epoch_us(record.since_us))
            previous = record.layout.get("previous_at_us") or record.since_us
            lo = from_epoch_us(previous - _longest_window(group))
            moved = pc.and_(pc.greater(ts, lo), mask)
            mask = pc.or_(pc.and_(changed, mask), moved)
        return mask

    def _candidates(self, group: FeatureGroup, record: MaterializationRecord, limit: int
                    ) -> Candidates:
        return Candidates(group.entity.keys, group.source.timestamp, record.at_us,
                          _longest_window(group), limit, keep_all=group.transform is not None)

    def _scan(self, group: FeatureGroup, record: MaterializationRecord,
              keys: pa.Table | None, columns: list[str]) -> pa.RecordBatchReader:
        """The snapshot's source rows (``columns``) as a stream: all of
        them, or those whose first key column lies in the range of ``keys`` (sorted keys, so
        a range filter is cheap where a set test is not; the spine holds only the wanted
        entities, so no other entity is computed)."""
        import pyarrow.compute as pc

        where = None
        if keys is not None and keys.num_rows:
            name = group.entity.keys[0]
            first = keys.column(name)
            where = (pc.field(name) >= first[0]) & (pc.field(name) <= first[len(first) - 1])
        return self.tables.scan(group.source.name, columns=columns,
                                as_of=from_epoch_us(record.snapshot_us), where=where)

    def _rows(self, group: FeatureGroup, record: MaterializationRecord, chunk: pa.Table,
              columns: list[str]) -> pa.Table:
        """The rows one chunk's values come from, read from the snapshot by key range."""
        reader = self._scan(group, record, chunk, columns)
        kept = self._candidates(group, record, limit=2**62)
        for batch in reader:
            kept.add(batch)
        return kept.table(reader.schema)

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


def _newer(newest: datetime | None, other: datetime | None) -> datetime | None:
    return other if newest is None or (other is not None and other > newest) else newest


def _unique(keys: pa.Table) -> pa.Table:
    names = keys.column_names
    return keys.group_by(names, use_threads=False).aggregate([]).select(names)


def _sorted_unique(keys: pa.Table) -> pa.Table:
    names = keys.column_names
    unique = _unique(keys)
    unique = unique.filter(_all_valid(unique, names))
    return unique.sort_by([(n, "ascending") for n in names])


def _chunks(keys: pa.Table, size: int, values: pa.Table) -> Iterator[tuple[pa.Table, pa.Table]]:
    """Slices of ``size`` keys with their values (``values`` has a row per key, in order;
    entities without history are dropped from each slice)."""
    import pyarrow.compute as pc

    for start in range(0, keys.num_rows, size):
        part = values.slice(start, size)
        yield keys.slice(start, size), part.filter(pc.is_valid(part[EVENT]))


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

