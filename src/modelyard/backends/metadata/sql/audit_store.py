"""The hash-chained audit log on SQLAlchemy (SQLite and PostgreSQL): tables ``audit_log``
and ``audit_head`` (migration 0013).

Appending is serialized on the head row: PostgreSQL locks it (``SELECT ... FOR UPDATE``),
SQLite holds its write lock from ``BEGIN IMMEDIATE``. The new entries and the head move in
one transaction, and the head is updated by compare-and-set on the ``seq`` it was read at,
while a unique ``prev_hash`` refuses a second successor of any entry, so concurrent
appenders in many processes keep a single chain.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from modelyard.backends.metadata.audit import (
    AuditEntry,
    AuditEvent,
    AuditQuery,
    AuditStore,
    canonical_detail,
    chain_hash,
)
from modelyard.backends.metadata.sql import tables as t
from modelyard.backends.metadata.sql.engine import (
    ensure_schema,
    read_connection,
    translate_errors,
)
from modelyard.errors import StorageError

__all__ = ["SqlAuditStore"]

_HEAD_ID = 1


def _entry(row: Any) -> AuditEntry:
    data = dict(row._mapping)
    data["detail_json"] = data.pop("detail")
    return AuditEntry(**data)


class SqlAuditStore(AuditStore):
    def __init__(self, engine: Engine, *, migrate: bool = True) -> None:
        self.engine = engine
        if migrate:
            ensure_schema(engine)

    @translate_errors
    def append(self, events: Sequence[AuditEvent]) -> list[AuditEntry]:
        if not events:
            return []
        h = t.audit_head.c
        now = time.time_ns() // 1_000_000
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(h.seq, h.hash).where(h.id == _HEAD_ID)
                               .with_for_update()).first()
            if row is None:
                raise StorageError("the audit log's head row is missing, so the log cannot "
                                   "be extended; run `modelyard audit verify`")
            start_seq, prev = int(row.seq), str(row.hash)
            entries: list[AuditEntry] = []
            seq = start_seq
            for event in events:
                seq += 1
                detail = canonical_detail(event.detail)
                at_ms = now if event.at_ms is None else event.at_ms
                digest = chain_hash(prev, seq, at_ms, event.actor, event.action,
                                    event.project, event.environment, event.target,
                                    event.source, event.outcome, detail)
                entries.append(AuditEntry(seq, at_ms, event.actor, event.action,
                                          event.project, event.environment, event.target,
                                          event.source, event.outcome, detail, prev, digest))
                prev = digest
            conn.execute(sa.insert(t.audit_log), [
                {**{k: v for k, v in e.__dict__.items() if k != "detail_json"},
                 "detail": e.detail_json} for e in entries])
            moved = conn.execute(sa.update(t.audit_head)
                                 .where(h.id == _HEAD_ID, h.seq == start_seq)
                                 .values(seq=seq, hash=prev))
            if moved.rowcount != 1:  # cannot happen while the head row is locked
                raise StorageError("the audit log's head moved during an append; retry")
        return entries

    @translate_errors
    def entries(self, query: AuditQuery) -> list[AuditEntry]:
        c = t.audit_log.c
        stmt = sa.select(t.audit_log).order_by(c.seq.desc())
        for column, value in (("actor", query.actor), ("project", query.project),
                              ("environment", query.environment),
                              ("outcome", query.outcome), ("target", query.target)):
            if value is not None:
                stmt = stmt.where(c[column] == value)
        if query.action is not None:
            action = query.action
            if action.endswith("*") or action.endswith("."):
                prefix = action.rstrip("*")
                escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                stmt = stmt.where(c.action.like(f"{escaped}%", escape="\\"))
            else:
                stmt = stmt.where(c.action == action)
        if query.since_ms is not None:
            stmt = stmt.where(c.at_ms >= query.since_ms)
        if query.until_ms is not None:
            stmt = stmt.where(c.at_ms < query.until_ms)
        if query.limit is not None:
            stmt = stmt.limit(query.limit)
        with read_connection(self.engine) as conn:
            rows = conn.execute(stmt).all()
        return [_entry(r) for r in rows]

    def chain(self, batch: int = 1000) -> Iterator[AuditEntry]:
        c = t.audit_log.c
        after: int | None = None
        while True:
            stmt = sa.select(t.audit_log).order_by(c.seq).limit(batch)
            if after is not None:
                stmt = stmt.where(c.seq > after)
            rows = self._read(stmt)
            yield from (_entry(r) for r in rows)
            if len(rows) < batch:
                return
            after = int(rows[-1].seq)

    @translate_errors
    def _read(self, stmt: sa.Select[Any]) -> list[Any]:
        with read_connection(self.engine) as conn:
            return list(conn.execute(stmt).all())

    @translate_errors
    def head(self) -> tuple[int, str] | None:
        h = t.audit_head.c
        with read_connection(self.engine) as conn:
            row = conn.execute(sa.select(h.seq, h.hash).where(h.id == _HEAD_ID)).first()
        return None if row is None else (int(row.seq), str(row.hash))
