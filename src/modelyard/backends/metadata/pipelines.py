"""The pipelines side of the metadata store: versioned pipeline definitions, their
schedules, and the durable queue of pipeline runs.

A run moves ``queued -> running -> succeeded | failed``. A worker *claims* a queued run by
taking a lease (its name and an expiry time) in one atomic statement, renews the lease while
the run goes on, and finishes the run only while it still holds the lease. A run whose lease
lapsed (its worker was killed) is put back in the queue while attempts remain, else marked
failed; that happens inside :meth:`PipelineStore.claim`, so no run stays stuck.

A run may carry a *dedupe key*, unique across all runs: a schedule's due time or an upstream
run enqueues once however many workers try. Alert-triggered runs collapse instead into a
live run of the same pipeline (see :meth:`PipelineStore.enqueue`).

The implementation is :mod:`modelyard.backends.metadata.sql.pipeline_store`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PIPELINE_RUN_STATUSES", "PipelineRecord", "PipelineRunRecord", "PipelineStore",
           "ScheduleRecord"]

PIPELINE_RUN_STATUSES = ("queued", "running", "succeeded", "failed")


@dataclass(frozen=True)
class PipelineRecord:
    name: str
    version: int
    content_hash: str
    spec: dict[str, Any]  # the declaration and the module's source code
    created_at_ms: int


@dataclass(frozen=True)
class ScheduleRecord:
    pipeline: str
    cron: str | None  # None: not scheduled
    timezone: str
    declared: dict[str, Any]  # the schedule the code last declared: {"cron", "timezone"}
    cursor_ms: int  # the latest due time already enqueued (or when the schedule was set)
    updated_at_ms: int


@dataclass(frozen=True)
class PipelineRunRecord:
    run_id: str
    pipeline: str
    version: int
    status: str
    trigger: str  # manual | schedule | alert | upstream
    trigger_detail: dict[str, Any]
    params: dict[str, Any]
    queued_at_ms: int
    run_at_ms: int  # the run's own time, ``ctx.now`` (a schedule's due time)
    max_attempts: int
    dedupe_key: str | None = None
    started_at_ms: int | None = None
    ended_at_ms: int | None = None
    attempts: int = 0
    worker: str | None = None
    lease_expires_ms: int | None = None
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # the traceback of a failure, after notes of lost attempts
    logs: str = ""  # the last attempt's captured output
    steps: list[dict[str, Any]] = field(default_factory=list)


class PipelineStore(ABC):
    """Pipeline definitions, schedules and the queue of runs."""

    @abstractmethod
    def put_pipeline(self, name: str, content_hash: str, spec: dict[str, Any]
                     ) -> tuple[PipelineRecord, bool]:
        """Store a new version unless the latest has this hash; (record, created)."""

    @abstractmethod
    def get_pipeline(self, name: str, version: int | None = None) -> PipelineRecord:
        """The given version, or the latest; NotFoundError when there is none."""

    @abstractmethod
    def list_pipelines(self) -> list[PipelineRecord]:
        """The latest version of every pipeline, by name."""

    @abstractmethod
    def set_schedule(self, record: ScheduleRecord) -> None:
        """Replace the pipeline's schedule."""

    @abstractmethod
    def schedules(self) -> list[ScheduleRecord]:
        """Every stored schedule, by pipeline."""

    @abstractmethod
    def advance_schedule(self, pipeline: str, seen_cursor_ms: int, cursor_ms: int) -> bool:
        """Move the cursor from ``seen_cursor_ms`` to ``cursor_ms``; False if it moved
        meanwhile (compare-and-set)."""

    @abstractmethod
    def enqueue(self, run: PipelineRunRecord, *, collapse_since_ms: int | None = None
                ) -> tuple[PipelineRunRecord, bool]:
        """Insert the run; (record, created). A run whose dedupe key exists already gives
        the existing run. With ``collapse_since_ms``, a run of the same pipeline and trigger
        that is queued or running, or succeeded after that time, is returned instead."""

    @abstractmethod
    def claim(self, worker: str, lease_ms: int, now_ms: int) -> PipelineRunRecord | None:
        """Release runs whose lease lapsed (back to the queue, or failed after their last
        attempt), then lease the oldest queued run to ``worker``, or None."""

    @abstractmethod
    def renew(self, run_id: str, worker: str, lease_expires_ms: int,
              steps: list[dict[str, Any]] | None = None) -> bool:
        """Extend a held lease (and record the steps so far); False if no longer held."""

    @abstractmethod
    def finish(self, run_id: str, worker: str, *, status: str, ended_at_ms: int,
               result: dict[str, Any], error: str | None, logs: str,
               steps: list[dict[str, Any]]) -> bool:
        """Record the outcome, only while ``worker`` holds the lease; False otherwise."""

    @abstractmethod
    def get_run(self, run_id: str) -> PipelineRunRecord:
        """One run, found by its id or a unique prefix of it (NotFoundError otherwise)."""

    @abstractmethod
    def runs(self, pipeline: str | None = None, *, status: str | None = None,
             limit: int | None = 100) -> list[PipelineRunRecord]:
        """Runs, newest first."""
