"""Durable writes: idempotency keys, and the intents of writes in flight.

An *idempotency key* names one write (an ingestion, a registration, an artifact upload, a
promotion). The first write under a key stores the key with a fingerprint of its content and
its result, in the same transaction as the write's own record; a retry with the key gets that
result back and writes nothing; the key with other content is refused
(:class:`~modelyard.errors.IdempotencyConflictError`).

A *write intent* is a row written before a write that spans two stores (a Delta commit and
its profile, a blob and its version row) and deleted in the transaction that completes it.
A row whose owner process died is what a crash left half-done: the next open completes the
write or rolls it back and records a :class:`Repair`. Intents also tell a garbage collector
which blobs and table folders belong to writers still in flight (:meth:`WriteStore.list_intents`).
"""

from __future__ import annotations

import os
import socket
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FOREIGN_OWNER_STALE_MS = 24 * 3600 * 1000  # an intent of another host is left alone this long


@dataclass(frozen=True)
class KeyRecord:
    """A completed write under an idempotency key."""

    key: str
    operation: str
    fingerprint: str
    result: dict[str, Any]
    created_at: int  # epoch ms


@dataclass(frozen=True)
class Completion:
    """What a store writes in the transaction of a write's own record: the key (if any) with
    the write's result, and the removal of the write's intent (if any). The store adds what
    it assigns itself (a version number, an event id) to ``result``."""

    operation: str
    key: str | None = None
    fingerprint: str = ""
    result: dict[str, Any] = field(default_factory=dict)
    intent_id: str | None = None


@dataclass(frozen=True)
class WriteIntent:
    """A write in flight (or left half-done by a dead process)."""

    intent_id: str
    kind: str  # ingest, register, log_artifact, forget
    target: str  # the source, model, run or entity written to
    idempotency_key: str | None
    started_at: int  # epoch ms
    owner_pid: int
    owner_host: str
    payload: dict[str, Any]
    owner_start: str | None = None  # the owner's start time (tells a reused pid apart)

    @property
    def blobs(self) -> tuple[str, ...]:
        """sha256s of the artifact blobs this write stores, as far as it has named them
        (a registration names all before storing any; an artifact upload without a key
        names them once stored). A collector spares these, and any blob younger than the
        ``started_at`` of an intent in flight."""
        return tuple(self.payload.get("blobs", ()))

    @property
    def table_paths(self) -> tuple[Path, ...]:
        """Folders of offline tables this write adds files to: files there younger than
        ``started_at`` and not in the table's log may belong to it."""
        return tuple(Path(p) for p in self.payload.get("table_paths", ()))

    def owner_alive(self, now_ms: int | None = None) -> bool:
        """Whether the writing process may still be running: on this host, whether its pid
        is alive (this process counts as alive); on another, whether the intent is younger
        than a day."""
        if self.owner_host != socket.gethostname():
            now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
            return now - self.started_at < FOREIGN_OWNER_STALE_MS
        if not pid_alive(self.owner_pid):
            return False
        # the pid runs, but may be another process that reused it (a restarted container)
        return self.owner_start is None or process_start(self.owner_pid) in (
            None, self.owner_start)


@dataclass(frozen=True)
class Repair:
    """What the recovery of one half-done write did (``completed`` or ``rolled back``)."""

    kind: str
    target: str
    action: str
    detail: str
    started_at: int
    repaired_at: int


def process_start(pid: int) -> str | None:
    """When a local process started (clock ticks since boot, from /proc), if known."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else None


def pid_alive(pid: int) -> bool:
    """Whether a local process runs (a zombie, killed but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


class WriteStore(ABC):
    """Idempotency keys, write intents and the log of repairs."""

    @abstractmethod
    def lookup(self, key: str) -> KeyRecord | None:
        """The completed write under ``key``, if any."""

    @abstractmethod
    def begin(self, kind: str, target: str, payload: dict[str, Any],
              key: str | None = None) -> WriteIntent:
        """Record the intent of a write about to start. With a key, the intent claims it:
        raises IdempotencyConflictError (``details["intent_id"]``) if another intent holds
        it."""

    @abstractmethod
    def extend(self, intent_id: str, *, blobs: list[str]) -> None:
        """Add blobs to what an intent covers (before they are stored)."""

    @abstractmethod
    def discard(self, intent_id: str) -> None:
        """Drop the intent of a write that failed cleanly (nothing of it is visible)."""

    @abstractmethod
    def complete(self, completion: Completion) -> None:
        """Write ``completion`` in a transaction of its own (for writes whose record lives
        outside the metadata store)."""

    @abstractmethod
    def list_intents(self, kind: str | None = None) -> list[WriteIntent]:
        """Every intent, oldest first: writes in flight, or left half-done by crashes."""

    @abstractmethod
    def has_intents(self) -> bool:
        """Whether any intent is recorded (one cheap query, made on open)."""

    @abstractmethod
    def intent_for_key(self, key: str) -> WriteIntent | None: ...

    @abstractmethod
    def resolve(self, intent: WriteIntent, action: str, detail: str) -> Repair | None:
        """Delete a dead writer's intent and log the repair, atomically; None if another
        process resolved it first."""

    @abstractmethod
    def repairs(self, limit: int = 20) -> list[Repair]:
        """The most recent repairs, newest first."""
