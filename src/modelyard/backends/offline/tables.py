"""The offline table store: one append-only table per source, with ingestion-time travel.

Every stored row carries two system columns: ``_ingested_at`` (UTC, the same instant for all
rows of one ingestion, taken when it starts) and ``_commit`` (the ingestion's id). An
ingestion is one atomic commit: a reader sees all of its rows or none of them, also when the
writing process dies mid-way, and concurrent writers to the same table all land.

Time travel is by ingestion time, not by storage version. ``read(as_of=t)`` returns the rows
whose ``_ingested_at`` is at or before ``t``: what the store knew at that moment.
``read(as_of=commit_id)`` returns the rows of that ingestion and of every ingestion committed
before it. Both filter the current table, so rows removed with :meth:`OfflineTableStore.forget`
are gone from every point in time, not just from the latest one.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from modelyard.errors import InvalidInputError

if TYPE_CHECKING:
    import pyarrow
    import pyarrow.compute

    from modelyard.backends.s3 import S3Options

__all__ = [
    "COMMIT",
    "INGESTED_AT",
    "SYSTEM_COLUMNS",
    "Commit",
    "OfflineTableStore",
    "TableFile",
    "TableRef",
    "TableSnapshot",
    "check_table_name",
    "offline_store_from_uri",
]

INGESTED_AT = "_ingested_at"
COMMIT = "_commit"
SYSTEM_COLUMNS = (INGESTED_AT, COMMIT)

Operation = Literal["ingest", "forget"]
AsOf = datetime | str | None

_TABLE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class Commit:
    """One change to an offline table: an ingestion, or the removal of some entities."""

    commit_id: str
    version: int
    ingested_at: datetime
    rows: int  # rows added by an ingestion, rows removed by a forget
    operation: Operation

    def to_dict(self) -> dict[str, Any]:
        return {"commit_id": self.commit_id, "version": self.version,
                "ingested_at": self.ingested_at.isoformat(), "rows": self.rows,
                "operation": self.operation}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Commit:
        op = str(data["operation"])
        if op not in ("ingest", "forget"):
            raise InvalidInputError(f"unknown commit operation {op!r}", field="operation")
        return cls(str(data["commit_id"]), int(data["version"]),
                   datetime.fromisoformat(str(data["ingested_at"])), int(data["rows"]),
                   "ingest" if op == "ingest" else "forget")


@dataclass(frozen=True)
class TableRef:
    """One Delta table: where it lies (a path or an ``s3://`` URL) and the storage options
    that reach it; what deltalake, DuckDB or Spark open the table with, where it lies."""

    uri: str
    storage_options: Mapping[str, str] | None = field(default=None, repr=False)

    def options(self) -> dict[str, str] | None:
        """The storage options as deltalake takes them."""
        return None if self.storage_options is None else dict(self.storage_options)


@dataclass(frozen=True)
class TableSnapshot:
    """A table at one version: where it lies, that version and its columns' Arrow types,
    which is all an engine needs to compute over it where it lies."""

    ref: TableRef
    version: int
    schema: pyarrow.Schema


@dataclass(frozen=True)
class TableFile:
    """A data file in a table's storage, as garbage collection sees it."""

    table: str
    path: str  # relative to the table's folder
    size: int
    modified: float  # epoch seconds of its last write


def check_table_name(name: object) -> str:
    if not isinstance(name, str) or not _TABLE_NAME.match(name) or name in (".", ".."):
        raise InvalidInputError(
            f"offline table name {name!r} is not valid: use letters, digits, _, . and -, "
            "not starting with . or - (at most 128 characters)", field="table",
        )
    return name


class OfflineTableStore(ABC):
    """Append-only Arrow tables with atomic ingestions and ingestion-time travel."""

    uri: str

    @abstractmethod
    def append(self, table: str, data: pyarrow.Table, *, commit_id: str | None = None
               ) -> Commit:
        """Store a validated batch as one atomic ingestion; adds the system columns.

        ``commit_id`` (default: a new one) lets a writer record which commit it is about to
        make before making it, so that a crash in between can be told apart.

        The first ingestion creates the table; a later one may bring new columns, which
        read as null for older rows.
        """

    @abstractmethod
    def scan(self, table: str, *, columns: Sequence[str] | None = None,
             as_of: AsOf = None, where: pyarrow.compute.Expression | None = None
             ) -> pyarrow.RecordBatchReader:
        """Stream the table's rows in batches (bounded memory); ``as_of`` as in :meth:`read`;
        ``where`` keeps only the rows it holds true for."""

    def read(self, table: str, *, columns: Sequence[str] | None = None,
             as_of: AsOf = None, where: pyarrow.compute.Expression | None = None
             ) -> pyarrow.Table:
        """The table's rows, or those known at ``as_of`` (a commit id or an aware datetime)."""
        return self.scan(table, columns=columns, as_of=as_of, where=where).read_all()

    @abstractmethod
    def history(self, table: str) -> list[Commit]:
        """Every ingestion and forget, oldest first."""

    @abstractmethod
    def forget(self, table: str, key_columns: Sequence[str], keys: pyarrow.Table) -> int:
        """Physically delete every row of the given entities, from every point in time.

        ``keys`` holds the ``key_columns`` of the entities to remove. Returns the number of
        rows removed; the removal is recorded as a ``forget`` commit.
        """

    @abstractmethod
    def exists(self, table: str) -> bool: ...

    @abstractmethod
    def ref(self, table: str) -> TableRef:
        """Where ``table`` lies and how to reach it (its storage options hold credentials:
        hand them to an engine, never log or store them)."""

    @abstractmethod
    def snapshot(self, table: str) -> TableSnapshot:
        """The table's latest version, its reference and its schema, read from its log alone
        (no data file is opened)."""

    @abstractmethod
    def drop(self, table: str) -> None:
        """Delete the table and all its data; raises NotFoundError if there is none."""

    # --- garbage collection: files no version of a table lists ---------------------------

    @abstractmethod
    def tables(self) -> list[str]:
        """The names of every stored table."""

    @abstractmethod
    def in_flight(self) -> set[str]:
        """Tables a live writer is writing to right now."""

    @abstractmethod
    def unlisted_files(self, table: str, older_than: float) -> list[TableFile]:
        """Files of ``table`` no version within the retention lists, last written before
        ``older_than`` (epoch seconds)."""

    @abstractmethod
    def delete_unlisted(self, table: str, files: Sequence[TableFile]) -> list[TableFile]:
        """Delete those of ``files`` that the table's latest version does not list (it may
        have moved since they were found); the ones deleted."""


def offline_store_from_uri(uri: str, s3: S3Options | None = None) -> OfflineTableStore:
    """Delta tables at ``file:///path`` or ``s3://bucket/prefix`` (reached with ``s3``, by
    default the standard AWS environment variables)."""
    from modelyard.backends.offline.location import location_from_uri

    location = location_from_uri(uri, s3)  # refuses another scheme before deltalake loads
    from modelyard.backends.offline.delta import DeltaTableStore

    return DeltaTableStore(location)
