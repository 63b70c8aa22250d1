"""Idempotency keys, write intents and repairs on SQLAlchemy (SQLite and PostgreSQL).

:func:`complete_write` is called by the other SQL stores inside the transaction that writes
a write's own record (a version row, an alias move, artifact rows, a profile), so the key,
the result and the removal of the intent land together or not at all.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from modelyard.backends.metadata.sql import tables as t
from modelyard.backends.metadata.sql.engine import read_connection, translate_errors
from modelyard.backends.metadata.writes import (
    Completion,
    KeyRecord,
    Repair,
    WriteIntent,
    WriteStore,
    process_start,
)
from modelyard.errors import IdempotencyConflictError


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _intent(row: Any) -> WriteIntent:
    return WriteIntent(row.intent_id, row.kind, row.target, row.idempotency_key,
                       int(row.started_at), int(row.owner_pid), row.owner_host,
                       json.loads(row.payload), row.owner_start)


def complete_write(conn: Connection, done: Completion | None) -> None:
    """Inside the caller's transaction: store the key with its result, drop the intent.

    A key stored meanwhile by another writer fails the transaction on the primary key, so
    the write's own record is rolled back with it."""
    if done is None:
        return
    if done.key is not None:
        try:
            conn.execute(t.idempotency_keys.insert().values(
                key=done.key, operation=done.operation, fingerprint=done.fingerprint,
                result=_dumps(done.result), created_at=_now_ms()))
        except sa.exc.IntegrityError:
            raise IdempotencyConflictError(
                f"idempotency key {done.key!r} was used by another write that completed "
                "first; nothing was written by this one", key=done.key) from None
    if done.intent_id is not None:
        conn.execute(t.write_intents.delete().where(
            t.write_intents.c.intent_id == done.intent_id))


class SqlWriteStore(WriteStore):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @translate_errors
    def lookup(self, key: str) -> KeyRecord | None:
        k = t.idempotency_keys.c
        with read_connection(self.engine) as conn:
            row = conn.execute(sa.select(t.idempotency_keys).where(k.key == key)).first()
        if row is None:
            return None
        return KeyRecord(row.key, row.operation, row.fingerprint, json.loads(row.result),
                         int(row.created_at))

    @translate_errors
    def begin(self, kind: str, target: str, payload: dict[str, Any],
              key: str | None = None) -> WriteIntent:
        intent = WriteIntent(uuid.uuid4().hex, kind, target, key, _now_ms(), os.getpid(),
                             socket.gethostname(), payload, process_start(os.getpid()))
        try:
            with self.engine.begin() as conn:
                conn.execute(t.write_intents.insert().values(
                    intent_id=intent.intent_id, kind=kind, target=target,
                    idempotency_key=key, started_at=intent.started_at,
                    owner_pid=intent.owner_pid, owner_host=intent.owner_host,
                    owner_start=intent.owner_start, payload=_dumps(payload)))
        except sa.exc.IntegrityError:
            held = self.intent_for_key(key) if key is not None else None
            raise IdempotencyConflictError(
                f"a write under idempotency key {key!r} is in flight (process "
                f"{held.owner_pid if held else '?'} on {held.owner_host if held else '?'}); "
                "retry once it has finished", key=key,
                intent_id=None if held is None else held.intent_id) from None
        return intent

    @translate_errors
    def extend(self, intent_id: str, *, blobs: list[str]) -> None:
        i = t.write_intents.c
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(i.payload).where(i.intent_id == intent_id)).first()
            if row is None:
                return
            payload = json.loads(row.payload)
            known = list(payload.get("blobs", []))
            payload["blobs"] = known + [b for b in blobs if b not in known]
            conn.execute(t.write_intents.update().where(i.intent_id == intent_id)
                         .values(payload=_dumps(payload)))

    @translate_errors
    def discard(self, intent_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(t.write_intents.delete().where(
                t.write_intents.c.intent_id == intent_id))

    @translate_errors
    def complete(self, completion: Completion) -> None:
        with self.engine.begin() as conn:
            complete_write(conn, completion)

    @translate_errors
    def list_intents(self, kind: str | None = None) -> list[WriteIntent]:
        i = t.write_intents.c
        stmt = sa.select(t.write_intents).order_by(i.started_at, i.intent_id)
        if kind is not None:
            stmt = stmt.where(i.kind == kind)
        with read_connection(self.engine) as conn:
            return [_intent(r) for r in conn.execute(stmt)]

    @translate_errors
    def has_intents(self) -> bool:
        with read_connection(self.engine) as conn:
            return conn.execute(sa.select(t.write_intents.c.intent_id).limit(1)).first() \
                is not None

    @translate_errors
    def intent_for_key(self, key: str) -> WriteIntent | None:
        i = t.write_intents.c
        with read_connection(self.engine) as conn:
            row = conn.execute(sa.select(t.write_intents)
                               .where(i.idempotency_key == key)).first()
        return None if row is None else _intent(row)

    @translate_errors
    def resolve(self, intent: WriteIntent, action: str, detail: str) -> Repair | None:
        repair = Repair(intent.kind, intent.target, action, detail, intent.started_at,
                        _now_ms())
        with self.engine.begin() as conn:
            gone = conn.execute(t.write_intents.delete().where(
                t.write_intents.c.intent_id == intent.intent_id))
            if gone.rowcount != 1:
                return None
            conn.execute(t.write_repairs.insert().values(
                kind=repair.kind, target=repair.target, action=action, detail=detail,
                started_at=repair.started_at, repaired_at=repair.repaired_at))
        return repair

    @translate_errors
    def repairs(self, limit: int = 20) -> list[Repair]:
        r = t.write_repairs.c
        with read_connection(self.engine) as conn:
            rows = conn.execute(sa.select(t.write_repairs).order_by(r.id.desc()).limit(limit))
            return [Repair(x.kind, x.target, x.action, x.detail, int(x.started_at),
                           int(x.repaired_at)) for x in rows]
