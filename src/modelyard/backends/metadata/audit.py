"""The audit log: its records, the chain hash, and the store interface.

Each entry's ``hash`` is the sha256 of a canonical encoding of the previous entry's hash
and the entry's own fields (:func:`chain_hash`), so changing, deleting or reordering any
entry breaks the chain from there on; the store keeps the last entry's ``(seq, hash)`` as
the head, so removing entries from the end is seen too. Appending is serialized by the
store (the head row is locked), so any number of processes keep one chain. The
implementation is :mod:`modelyard.backends.metadata.sql.audit_store`.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["GENESIS", "AuditEntry", "AuditEvent", "AuditQuery", "AuditStore",
           "canonical_detail", "chain_hash"]

GENESIS = "0" * 64  # the "previous hash" of the first entry


def canonical_detail(detail: Mapping[str, Any]) -> str:
    """One JSON text per detail: sorted keys, no spaces, UTF-8, no NaN."""
    return json.dumps(dict(detail), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False, default=str)


@dataclass(frozen=True)
class AuditEvent:
    """What happened, before it has a place in the chain."""

    actor: str  # "user:alice", "local:bob", "anonymous"
    action: str  # a permission name (models.promote) or an event (auth.failed)
    project: str = ""
    environment: str = ""
    target: str = ""  # what was acted on: a model version, a path, a token id
    source: str = ""  # where from: a client address, "cli", "api"
    outcome: str = "ok"  # ok | denied | failed
    detail: Mapping[str, Any] = field(default_factory=dict)
    at_ms: int | None = None  # None: when appended


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at_ms: int
    actor: str
    action: str
    project: str
    environment: str
    target: str
    source: str
    outcome: str
    detail_json: str  # canonical JSON, exactly as hashed
    prev_hash: str
    hash: str

    @property
    def detail(self) -> dict[str, Any]:
        return dict(json.loads(self.detail_json))

    def expected_hash(self) -> str:
        """The hash these fields and ``prev_hash`` give (``hash`` when untouched)."""
        return chain_hash(self.prev_hash, self.seq, self.at_ms, self.actor, self.action,
                          self.project, self.environment, self.target, self.source,
                          self.outcome, self.detail_json)


def chain_hash(prev_hash: str, seq: int, at_ms: int, actor: str, action: str, project: str,
               environment: str, target: str, source: str, outcome: str,
               detail_json: str) -> str:
    """sha256 over the canonical JSON array of the previous hash and every field."""
    body = json.dumps([prev_hash, seq, at_ms, actor, action, project, environment, target,
                       source, outcome, detail_json], separators=(",", ":"),
                      ensure_ascii=False)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class AuditQuery:
    actor: str | None = None
    action: str | None = None  # exact, or a prefix ending in "." / "*" (models.*)
    project: str | None = None
    environment: str | None = None
    outcome: str | None = None
    target: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    limit: int | None = 100


class AuditStore(ABC):
    @abstractmethod
    def append(self, events: Sequence[AuditEvent]) -> list[AuditEntry]:
        """Chain the events after the head, in one transaction; returns the entries."""

    @abstractmethod
    def entries(self, query: AuditQuery) -> list[AuditEntry]:
        """Matching entries, newest first."""

    @abstractmethod
    def chain(self, batch: int = 1000) -> Iterator[AuditEntry]:
        """Every stored entry in ``seq`` order, read in batches (for verification)."""

    @abstractmethod
    def head(self) -> tuple[int, str] | None:
        """The last entry's (seq, hash) as the store recorded it; None if the head row is
        gone."""
