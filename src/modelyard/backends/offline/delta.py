"""Offline tables as Delta Lake tables, one folder per table, on the local disk or in S3.

Where the tables lie is a :class:`~modelyard.backends.offline.location.TableLocation`: every
Delta operation below goes through deltalake on a table reference (location and storage
options), and the few file operations Delta does not do go through that seam, so this code is
the same on ``file://`` and ``s3://``.

An ingestion is one Delta commit. Its data files are written first and the commit is a single
atomic put of the next log entry, so a reader sees the whole ingestion or none of it, and a
process killed mid-write leaves only unreferenced files behind. Concurrent appends to one
table are reconciled by Delta's optimistic concurrency; a commit that loses a race is retried.

Each commit records in its own commit info the ``modelyard.*`` metadata (commit id,
ingestion time, rows, source), so the Delta log is the source of truth for
:meth:`DeltaTableStore.history`; the log is never trimmed. File statistics are collected for
``_ingested_at`` only (what ingestion-time reads skip files by), which keeps entity keys and
feature values out of the log: once ``forget`` has rewritten the data files and vacuumed the
old ones, no file left on disk holds the forgotten rows.

A reader that loaded the table just before a ``forget`` vacuumed its files reads again from
the new version.

On the local disk, every write holds an in-flight mark naming its table
(``<root>/.inflight/``, see :mod:`modelyard.backends.inflight`) while it runs, and garbage
collection leaves a marked table alone. Before handing a batch to the Delta writer, a write
checks that the table's folder takes a file and has room for the batch (its Arrow size, an
upper bound of the Parquet file in practice): the Rust writer reports a full or read-only
disk with a panic message on stderr, so the cases it can foresee never reach it. A disk
filled by someone else during the write still gives the same clear StorageError (and the
table stays whole), with that message.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
from deltalake import CommitProperties, DeltaTable, WriterProperties, write_deltalake
from deltalake.exceptions import (
    CommitFailedError,
    DeltaError,
    SchemaMismatchError,
    TableNotFoundError,
)

from modelyard.backends.offline.location import LocalTables, TableLocation
from modelyard.backends.offline.tables import (
    COMMIT,
    INGESTED_AT,
    SYSTEM_COLUMNS,
    AsOf,
    Commit,
    OfflineTableStore,
    TableFile,
    TableRef,
    TableSnapshot,
    check_table_name,
)
from modelyard.errors import (
    DataValidationError,
    InvalidInputError,
    NotFoundError,
    StorageError,
)

__all__ = ["DeltaTableStore"]

_TIMESTAMP = pa.timestamp("us", tz="UTC")
_TABLE_CONFIG = {
    "delta.dataSkippingStatsColumns": INGESTED_AT,
    "delta.enableExpiredLogCleanup": "false",  # the log is the table's history: keep it all
}
# Row groups of this many rows let a streaming read hold one small group at a time (the
# writer's default puts a million rows in one); reading whole tables is as fast either way.
_ROW_GROUP_ROWS = 131_072
_ATTEMPTS = 4  # Delta retries a lost commit itself; these cover racing to create a table
_ORPHAN_AGE_HOURS = 1  # unreferenced files older than this are leftovers of dead writers
_BAD_NAME_CHARS = set(" ,;{}()\n\t=")
_META = "modelyard."
_LOG_FILE = re.compile(r"^(\d{20})\.json$")

T = TypeVar("T")


def _writer() -> WriterProperties:
    return WriterProperties(max_row_group_size=_ROW_GROUP_ROWS)


class DeltaTableStore(OfflineTableStore):
    def __init__(self, location: TableLocation | Path) -> None:
        self.location = LocalTables(location) if isinstance(location, Path) else location
        self.uri = self.location.uri
        # the folder of a local store (tests and tools look into it), None on S3
        self.root = self.location.root if isinstance(self.location, LocalTables) else None

    # --- writing ------------------------------------------------------------------------

    def append(self, table: str, data: pa.Table, *, commit_id: str | None = None
               ) -> Commit:
        ref = self._ref(table)
        if not isinstance(data, pa.Table):
            raise InvalidInputError(
                f"append takes a pyarrow.Table, got {type(data).__name__}", table=table)
        batch = _storable(data)
        self.location.check_open(table, f"cannot write offline table {table!r}")
        with self._errors(table):
            existing = _arrow_schema(ref)
        if existing is not None:
            batch = _conform(batch, existing)
        for field in batch.schema:
            if pa.types.is_null(field.type):
                raise DataValidationError(
                    f"column {field.name!r} holds only nulls, so its type is unknown: declare "
                    "it in the schema", column=field.name)
        commit_id = commit_id or uuid.uuid4().hex
        ingested_at = datetime.now(UTC)
        batch = batch.append_column(
            pa.field(INGESTED_AT, _TIMESTAMP, nullable=False),
            pa.repeat(pa.scalar(ingested_at, _TIMESTAMP), batch.num_rows),
        ).append_column(
            pa.field(COMMIT, pa.string(), nullable=False),
            pa.repeat(pa.scalar(commit_id, pa.string()), batch.num_rows),
        )
        props = CommitProperties(custom_metadata={
            f"{_META}commit_id": commit_id,
            f"{_META}operation": "ingest",
            f"{_META}ingested_at": ingested_at.isoformat(),
            f"{_META}rows": str(batch.num_rows),
            f"{_META}source": table,
        })

        def write() -> int:
            if not _is_table(ref):
                write_deltalake(ref.uri, batch, mode="append", schema_mode="merge",
                                configuration=_TABLE_CONFIG, commit_properties=props,
                                writer_properties=_writer(), storage_options=ref.options())
                # usually version 0, unless another writer created the table meanwhile
                return self._version_of(table, commit_id)
            target = _table(ref)
            write_deltalake(target, batch, mode="append", schema_mode="merge",
                            commit_properties=props, writer_properties=_writer())
            # read back from the log: after a lost race the table object's own state (its
            # version, its history) places the commit where it first tried, not where it landed
            return self._version_of(table, commit_id)

        with self._writing(table, batch.nbytes), self._errors(table):
            try:
                version = _retrying(write)
            except SchemaMismatchError as exc:
                raise DataValidationError(
                    f"the batch does not fit offline table {table!r}: {_first_line(exc)}",
                    table=table) from exc
            except CommitFailedError as exc:
                raise StorageError(
                    f"the ingestion into offline table {table!r} could not be committed, so "
                    f"nothing was written: {_first_line(exc)}", table=table) from exc
        return Commit(commit_id, version, ingested_at, batch.num_rows, "ingest")

    def forget(self, table: str, key_columns: Sequence[str], keys: pa.Table) -> int:
        schema = pa.schema(self._open(table).schema().to_arrow())
        key_columns = list(key_columns)
        if not key_columns:
            raise InvalidInputError("forget needs at least one key column", table=table)
        for name in key_columns:
            if name not in schema.names:
                raise InvalidInputError(f"offline table {table!r} has no column {name!r}",
                                        table=table, column=name)
            if name not in keys.column_names:
                raise InvalidInputError(f"the keys to forget have no column {name!r}",
                                        table=table, column=name)
        source = _conform(keys.select(key_columns), schema)
        if source.num_rows == 0:
            return 0
        commit_id = uuid.uuid4().hex
        props = CommitProperties(custom_metadata={
            f"{_META}commit_id": commit_id,
            f"{_META}operation": "forget",
            f"{_META}ingested_at": datetime.now(UTC).isoformat(),
            f"{_META}source": table,
            f"{_META}keys": str(source.num_rows),
        })
        predicate = " AND ".join(f't."{c}" = s."{c}"' for c in key_columns)

        def merge() -> dict[str, Any]:
            target = _table(self._ref(table))
            return target.merge(source, predicate, source_alias="s", target_alias="t",
                                writer_properties=_writer(), commit_properties=props,
                                ).when_matched_delete().execute()

        with self._writing(table, self._size(table)), self._errors(table):
            metrics = _retrying(merge)
            dt = _table(self._ref(table))
            dt.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
            dt.vacuum(retention_hours=_ORPHAN_AGE_HOURS, enforce_retention_duration=False,
                      dry_run=False, full=True)
        return int(metrics.get("num_target_rows_deleted", 0))

    def drop(self, table: str) -> None:
        if not self.exists(table):
            raise NotFoundError(f"no offline table {table!r}", table=table)
        with self._errors(table):
            self.location.remove(check_table_name(table))

    # --- reading ------------------------------------------------------------------------

    def scan(self, table: str, *, columns: Sequence[str] | None = None,
             as_of: AsOf = None, where: pc.Expression | None = None) -> pa.RecordBatchReader:
        return self._scanner(table, columns, as_of, where, streaming=True).to_reader()

    def _scanner(self, table: str, columns: Sequence[str] | None, as_of: AsOf,
                 where: pc.Expression | None, *, streaming: bool) -> pads.Scanner:
        """A scanner of the table; ``streaming`` reads ahead one batch only, so that a
        consumer of the batches holds little more than a row group in memory. Column chunks
        are read as they are decoded on a local disk (faster and lighter there), and pre-buffered in
        coalesced range requests from an object store (fewer round trips)."""
        dt = self._open(table)
        with self._errors(table):
            dataset = dt.to_pyarrow_dataset(filesystem=self.location.arrow_filesystem(table))
        names = dataset.schema.names
        wanted = [n for n in names if n not in SYSTEM_COLUMNS] + [
            n for n in SYSTEM_COLUMNS if n in names] if columns is None else list(columns)
        for name in wanted:
            if name not in dataset.schema.names:
                raise InvalidInputError(f"offline table {table!r} has no column {name!r}",
                                        table=table, column=name)
        row_filter = self._as_of_filter(table, as_of)
        if where is not None:
            row_filter = where if row_filter is None else row_filter & where
        # Arrow's default allocator keeps freed memory for reuse, so a stream of batches would
        # grow the process as if it held several; the system allocator hands it back
        streamed: dict[str, Any] = {"batch_readahead": 1, "fragment_readahead": 1,
                                    "memory_pool": pa.system_memory_pool()}
        with self._errors(table):
            return dataset.scanner(
                columns=wanted, filter=row_filter,
                fragment_scan_options=pads.ParquetFragmentScanOptions(
                    pre_buffer=self.location.remote),
                **(streamed if streaming else {}))

    def read(self, table: str, *, columns: Sequence[str] | None = None,
             as_of: AsOf = None, where: pc.Expression | None = None) -> pa.Table:
        for attempt in range(2):
            scanner = self._scanner(table, columns, as_of, where, streaming=False)
            try:
                return scanner.to_table()
            except (OSError, pa.ArrowException) as exc:
                clear = self.location.error(exc, table, f"cannot read offline table {table!r}")
                if clear is not None:
                    raise clear from exc
                if attempt == 1:  # not a file vacuumed by a concurrent forget: give up
                    raise StorageError(f"cannot read offline table {table!r}: "
                                       f"{_first_line(exc)}", table=table) from exc
        raise AssertionError("unreachable")

    def history(self, table: str) -> list[Commit]:
        if not self.exists(table):
            raise NotFoundError(f"no offline table {table!r}", table=table)
        with self._errors(table):
            commits = [_commit_from_info(v, self._commit_info(table, v))
                       for v in self._log_versions(table)]
        return sorted((c for c in commits if c is not None), key=lambda c: c.version)

    def exists(self, table: str) -> bool:
        ref = self._ref(table)
        self.location.check_open(table, f"cannot open offline table {table!r}")
        with self._errors(table):
            return _is_table(ref)

    # --- garbage collection ---------------------------------------------------------------

    def tables(self) -> list[str]:
        return [name for name in self.location.children()
                if _valid_name(name) and _is_table(self.location.ref(name))]

    def in_flight(self) -> set[str]:
        return self.location.in_flight()

    def unlisted_files(self, table: str, older_than: float) -> list[TableFile]:
        """Files in the table's folder that its current version does not list and that were
        last written before ``older_than`` (epoch seconds): leftovers of killed writers, and
        files removed by a commit beyond the retention (Delta's own vacuum listing), plus the
        staging files of unfinished uploads (``part-...parquet#1``: the local object store
        writes a large file under that name and renames it when complete), which Delta's
        listing skips."""
        hours = max(0, int((time.time() - older_than) // 3600))
        with self._errors(table):
            dt = self._open(table)
            names = dt.vacuum(retention_hours=hours, dry_run=True,
                              enforce_retention_duration=False, full=True)
            names += self.location.staging(table)
            found = [f for f in (self._file(table, n) for n in names)
                     if f is not None and f.modified < older_than]
        return found

    def delete_unlisted(self, table: str, files: Sequence[TableFile]) -> list[TableFile]:
        """Delete ``files`` (from :meth:`unlisted_files`) that the table's latest version
        still does not list; the ones deleted."""
        with self._errors(table):
            listed = set(pa.table(self._open(table).get_add_actions(flatten=True))
                         .column("path").to_pylist())
            deleted = []
            for f in files:
                if f.path in listed or not self.location.delete_file(table, f.path):
                    continue
                deleted.append(f)
        return deleted

    def _file(self, table: str, name: str) -> TableFile | None:
        found = self.location.stat(table, name)
        return None if found is None else TableFile(table, name, *found)

    # --- helpers ------------------------------------------------------------------------

    @contextmanager
    def _writing(self, table: str, need: int) -> Iterator[None]:
        """Mark the table in flight and check that its folder takes ``need`` bytes (what
        the location can do of that)."""
        with self.location.writing(table, need, f"cannot write offline table {table!r}"):
            yield

    def _size(self, table: str) -> int:
        """Bytes of the table's current files (what a rewrite may need)."""
        with self._errors(table):
            sizes = pa.table(self._open(table).get_add_actions(flatten=True)
                             ).column("size_bytes")
        return int(pc.sum(sizes).as_py() or 0)

    def _log_versions(self, table: str) -> list[int]:
        """The versions of the table's commit files, oldest first."""
        return sorted(int(m[1]) for name in self.location.names(table, "_delta_log")
                      if (m := _LOG_FILE.match(name)))

    def _commit_info(self, table: str, version: int) -> dict[str, Any]:
        """The commitInfo of one commit file (each is written whole by one atomic put)."""
        for line in self.location.read(table, f"_delta_log/{version:020d}.json").splitlines():
            action = json.loads(line)
            if "commitInfo" in action:
                return dict(action["commitInfo"])
        return {}

    def _version_of(self, table: str, commit_id: str) -> int:
        """The version of the commit ``commit_id``, searched from the newest."""
        for version in reversed(self._log_versions(table)):
            if self._commit_info(table, version).get(f"{_META}commit_id") == commit_id:
                return version
        raise StorageError(f"commit {commit_id} is missing from offline table {table!r}",
                           table=table, commit=commit_id)

    def ref(self, table: str) -> TableRef:
        """Where ``table`` lies and how to reach it: what an engine opens it with."""
        return self._ref(table)

    def snapshot(self, table: str) -> TableSnapshot:
        dt = self._open(table)
        with self._errors(table):
            dataset = dt.to_pyarrow_dataset(filesystem=self.location.arrow_filesystem(table))
            return TableSnapshot(self._ref(table), dt.version(), dataset.schema)

    def _ref(self, table: str) -> TableRef:
        return self.location.ref(check_table_name(table))

    def _open(self, table: str) -> DeltaTable:
        ref = self._ref(table)
        what = f"cannot open offline table {table!r}"
        self.location.check_open(table, what)
        try:
            return _table(ref)
        except TableNotFoundError:
            raise NotFoundError(f"no offline table {table!r}", table=table) from None
        except (DeltaError, OSError) as exc:
            raise (self.location.error(exc, table, what)
                   or StorageError(f"{what}: {_first_line(exc)}", table=table)) from exc

    def _as_of_filter(self, table: str, as_of: AsOf) -> pc.Expression | None:
        if as_of is None:
            return None
        if isinstance(as_of, datetime):
            if as_of.tzinfo is None or as_of.utcoffset() is None:
                raise InvalidInputError(
                    "as_of must be a timezone-aware datetime (for example "
                    "datetime.now(timezone.utc)), or a commit id", field="as_of")
            return pc.field(INGESTED_AT) <= pa.scalar(as_of.astimezone(UTC), _TIMESTAMP)
        if isinstance(as_of, str):
            commits = self.history(table)
            match = next((c for c in commits if c.commit_id == as_of), None)
            if match is None:
                raise NotFoundError(f"offline table {table!r} has no commit {as_of!r}",
                                    table=table, commit=as_of)
            known = [c.commit_id for c in commits
                     if c.operation == "ingest" and c.version <= match.version]
            # files rewritten by forget store text as string_view: compare as plain strings
            return pc.field(COMMIT).cast(pa.string()).isin(pa.array(known, pa.string()))
        raise InvalidInputError(
            f"as_of must be a commit id or a datetime, got {type(as_of).__name__}",
            field="as_of")

    @contextmanager
    def _errors(self, table: str) -> Iterator[None]:
        try:
            yield
        except (DeltaError, OSError, pa.ArrowException) as exc:
            raise (self.location.error(exc, table, f"offline table {table!r}")
                   or StorageError(f"offline table {table!r}: {_first_line(exc)}",
                                   table=table)) from exc


def _retrying(op: Callable[[], T]) -> T:
    """Run a Delta write again when its commit lost a race with another writer."""
    for attempt in range(_ATTEMPTS):
        try:
            return op()
        except CommitFailedError:
            if attempt == _ATTEMPTS - 1:
                raise
            time.sleep(0.01 * 2 ** attempt)
    raise AssertionError("unreachable")


def _table(ref: TableRef) -> DeltaTable:
    return DeltaTable(ref.uri, storage_options=ref.options())


def _is_table(ref: TableRef) -> bool:
    return DeltaTable.is_deltatable(ref.uri, storage_options=ref.options())


def _valid_name(name: str) -> bool:
    try:
        check_table_name(name)
    except InvalidInputError:
        return False
    return True





def _commit_from_info(version: int, info: dict[str, Any]) -> Commit | None:
    commit_id = info.get(f"{_META}commit_id")
    operation = info.get(f"{_META}operation")
    if not commit_id or operation not in ("ingest", "forget"):
        return None
    metrics = info.get("operationMetrics") or {}
    if operation == "ingest":
        rows = int(info.get(f"{_META}rows", metrics.get("num_added_rows", 0)))
    else:
        rows = int(metrics.get("num_target_rows_deleted", 0))
    return Commit(str(commit_id), version,
                  datetime.fromisoformat(str(info[f"{_META}ingested_at"])), rows,
                  "ingest" if operation == "ingest" else "forget")


def _arrow_schema(ref: TableRef) -> pa.Schema | None:
    if not _is_table(ref):
        return None
    return pa.schema(_table(ref).schema().to_arrow())


def _storable(data: pa.Table) -> pa.Table:
    """Columns in types a Delta table stores, with names it accepts."""
    names = data.column_names
    reserved = [n for n in names if n in SYSTEM_COLUMNS]
    if reserved:
        raise InvalidInputError(
            f"column(s) {', '.join(reserved)} are reserved for the offline store; rename them",
            columns=reserved)
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InvalidInputError(f"column(s) {', '.join(dupes)} appear more than once",
                                columns=dupes)
    for name in names:
        if not name or _BAD_NAME_CHARS & set(name):
            raise InvalidInputError(
                f"column name {name!r} is not storable: it may not be empty nor contain "
                "spaces or any of ,;{}()=", column=name)
    columns = []
    for column in data.columns:
        kind = column.type
        if pa.types.is_dictionary(kind):
            column = column.cast(kind.value_type)
            kind = column.type
        if pa.types.is_timestamp(kind) and kind.unit != "us":
            column = column.cast(pa.timestamp("us", tz=kind.tz), safe=False)
        columns.append(column)
    return pa.Table.from_arrays(columns, names=names)


def _conform(batch: pa.Table, schema: pa.Schema) -> pa.Table:
    """Cast the columns the table already has to the table's types."""
    columns = []
    for name, column in zip(batch.column_names, batch.columns, strict=True):
        index = schema.get_field_index(name)
        target = schema.field(index).type if index >= 0 else column.type
        if column.type != target:
            try:
                column = column.cast(target)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise DataValidationError(
                    f"column {name!r} is {column.type} in this batch but {target} in the "
                    f"offline table, and does not convert: {_first_line(exc)}",
                    column=name, expected=str(target), got=str(column.type)) from exc
        columns.append(column)
    return pa.Table.from_arrays(columns, names=batch.column_names)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
