"""The record of what was materialized into which online store, and when.

One record per materialization run or push: which feature group version, into which store,
as of which instant (``at``: event time cut-off) over which snapshot of the offline tables
(``snapshot``: ingestion cut-off), how far it got (chunks, and the last entity key written,
so a crashed run resumes where it stopped), and the layout of the values it wrote.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Literal

Mode = Literal["full", "incremental", "push"]
Status = Literal["running", "done", "failed"]


@dataclass
class MaterializationRecord:
    materialization_id: str
    group: str
    version: int
    store: str  # the online store's URI, without secrets
    mode: Mode
    status: Status
    at_us: int
    snapshot_us: int
    since_us: int | None
    entities: int
    rows_written: int
    chunks_total: int
    chunks_done: int
    resume_after: str | None  # JSON of the last entity key of the last finished chunk
    max_event_us: int | None  # newest event time among the values written
    layout: dict[str, Any] = field(default_factory=dict)
    started_at: int = 0  # epoch milliseconds
    updated_at: int = 0
    finished_at: int | None = None
    error: str | None = None


class MaterializationStore(ABC):
    @abstractmethod
    def save_materialization(self, record: MaterializationRecord) -> None:
        """Insert or replace the record (by id); ``updated_at`` is set to now."""

    @abstractmethod
    def list_materializations(self, group: str | None = None, *, version: int | None = None,
                              store: str | None = None, status: Status | None = None,
                              limit: int | None = None) -> list[MaterializationRecord]:
        """Matching records, newest first."""
