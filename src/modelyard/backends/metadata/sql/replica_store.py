"""Replica heartbeats on SQLAlchemy (SQLite and PostgreSQL): table ``serving_replicas``."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from modelyard.backends.metadata.replicas import ReplicaRecord, ReplicaStore, ServedSlot
from modelyard.backends.metadata.sql import tables as t
from modelyard.backends.metadata.sql.engine import (
    ensure_schema,
    read_connection,
    translate_errors,
)

__all__ = ["SqlReplicaStore"]


def _row(record: ReplicaRecord) -> dict[str, Any]:
    return {"replica_id": record.replica_id, "host": record.host, "pid": record.pid,
            "address": record.address, "started_at_ms": record.started_at_ms,
            "heartbeat_at_ms": record.heartbeat_at_ms,
            "serving": json.dumps([s.__dict__ for s in record.serving])}


def _record(row: Any) -> ReplicaRecord:
    data = dict(row._mapping)
    data["serving"] = tuple(ServedSlot(**s) for s in json.loads(data["serving"]))
    return ReplicaRecord(**data)


class SqlReplicaStore(ReplicaStore):
    def __init__(self, engine: Engine, *, migrate: bool = True) -> None:
        self.engine = engine
        if migrate:
            ensure_schema(engine)

    @translate_errors
    def beat(self, record: ReplicaRecord) -> None:
        c = t.serving_replicas.c
        row = _row(record)
        with self.engine.begin() as conn:
            done = conn.execute(sa.update(t.serving_replicas)
                                .where(c.replica_id == record.replica_id)
                                .values(**{k: v for k, v in row.items() if k != "replica_id"}))
            if not done.rowcount:
                conn.execute(sa.insert(t.serving_replicas).values(**row))

    @translate_errors
    def retire(self, replica_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.delete(t.serving_replicas)
                         .where(t.serving_replicas.c.replica_id == replica_id))

    @translate_errors
    def replicas(self, *, alive_since_ms: int | None = None) -> list[ReplicaRecord]:
        c = t.serving_replicas.c
        stmt = sa.select(t.serving_replicas)
        if alive_since_ms is not None:
            stmt = stmt.where(c.heartbeat_at_ms >= alive_since_ms)
        with read_connection(self.engine) as conn:
            rows = conn.execute(stmt.order_by(c.started_at_ms, c.replica_id)).all()
        return [_record(r) for r in rows]

    @translate_errors
    def prune(self, before_ms: int) -> int:
        with self.engine.begin() as conn:
            done = conn.execute(sa.delete(t.serving_replicas)
                                .where(t.serving_replicas.c.heartbeat_at_ms < before_ms))
        return int(done.rowcount or 0)
