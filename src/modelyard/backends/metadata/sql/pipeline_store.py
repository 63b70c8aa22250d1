"""Pipelines' store on SQLAlchemy (SQLite and PostgreSQL): tables ``pipeline_definitions``,
``pipeline_schedules`` and ``pipeline_runs`` (migration 0009).

Claiming a run is one transaction: on PostgreSQL the oldest queued row is picked with
``SELECT ... FOR UPDATE SKIP LOCKED`` inside the ``UPDATE``, so concurrent workers take
different rows without waiting on each other; on SQLite the transaction starts with ``BEGIN
IMMEDIATE`` (see :mod:`.engine`), so claims are serialised by the database lock. Every
change of a running run is guarded by ``worker = :me AND status = 'running'``: a worker that
lost its lease can no longer write.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from modelyard.backends.metadata.pipelines import (
    PipelineRecord,
    PipelineRunRecord,
    PipelineStore,
    ScheduleRecord,
)
from modelyard.backends.metadata.sql import tables as t
from modelyard.backends.metadata.sql.engine import (
    dialect_insert,
    ensure_schema,
    read_connection,
    translate_errors,
)
from modelyard.errors import NotFoundError, RunStateError

__all__ = ["SqlPipelineStore"]

_JSON_FIELDS = ("trigger_detail", "params", "result", "steps")


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


def _run(row: Any) -> PipelineRunRecord:
    data = dict(row._mapping)
    for key in _JSON_FIELDS:
        data[key] = json.loads(data[key])
    return PipelineRunRecord(**data)


def _run_row(run: PipelineRunRecord) -> dict[str, Any]:
    row = dict(run.__dict__)
    for key in _JSON_FIELDS:
        row[key] = _dumps(row[key])
    return row


class SqlPipelineStore(PipelineStore):
    def __init__(self, engine: Engine, *, migrate: bool = True) -> None:
        self.engine = engine
        if migrate:
            ensure_schema(engine)

    @property
    def _pg(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def _read(self) -> Connection:
        return read_connection(self.engine)

    # --- definitions ----------------------------------------------------------------------

    @translate_errors
    def put_pipeline(self, name: str, content_hash: str, spec: dict[str, Any]
                     ) -> tuple[PipelineRecord, bool]:
        d = t.pipeline_definitions.c
        with self.engine.begin() as conn:
            if self._pg:
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
                             {"k": f"pipeline-definition:{name}"})
            latest = conn.execute(sa.select(t.pipeline_definitions).where(d.name == name)
                                  .order_by(d.version.desc()).limit(1)).first()
            if latest is not None and latest.content_hash == content_hash:
                return _definition(latest), False
            record = PipelineRecord(name, 1 if latest is None else latest.version + 1,
                                    content_hash, spec, _now_ms())
            conn.execute(sa.insert(t.pipeline_definitions).values(
                name=name, version=record.version, content_hash=content_hash,
                spec=_dumps(spec), created_at_ms=record.created_at_ms))
        return record, True

    @translate_errors
    def get_pipeline(self, name: str, version: int | None = None) -> PipelineRecord:
        d = t.pipeline_definitions.c
        stmt = sa.select(t.pipeline_definitions).where(d.name == name)
        stmt = (stmt.where(d.version == version) if version is not None
                else stmt.order_by(d.version.desc()).limit(1))
        with self._read() as conn:
            row = conn.execute(stmt).first()
        if row is None:
            what = f"no pipeline {name!r}" + ("" if version is None else f" version {version}")
            raise NotFoundError(what + " (apply it first: modelyard pipelines apply)",
                                pipeline=name)
        return _definition(row)

    @translate_errors
    def list_pipelines(self) -> list[PipelineRecord]:
        d = t.pipeline_definitions.c
        newest = (sa.select(d.name, sa.func.max(d.version).label("version"))
                  .group_by(d.name).subquery())
        stmt = (sa.select(t.pipeline_definitions)
                .join(newest, sa.and_(d.name == newest.c.name,
                                      d.version == newest.c.version))
                .order_by(d.name))
        with self._read() as conn:
            return [_definition(row) for row in conn.execute(stmt)]

    # --- schedules ------------------------------------------------------------------------

    @translate_errors
    def set_schedule(self, record: ScheduleRecord) -> None:
        values = {"pipeline": record.pipeline, "cron": record.cron,
                  "timezone": record.timezone, "declared": _dumps(record.declared),
                  "cursor_ms": record.cursor_ms, "updated_at_ms": record.updated_at_ms}
        stmt = dialect_insert(self.engine, t.pipeline_schedules).values(**values)
        stmt = stmt.on_conflict_do_update(index_elements=["pipeline"], set_={
            k: v for k, v in values.items() if k != "pipeline"})
        with self.engine.begin() as conn:
            conn.execute(stmt)

    @translate_errors
    def schedules(self) -> list[ScheduleRecord]:
        s = t.pipeline_schedules.c
        with self._read() as conn:
            rows = list(conn.execute(sa.select(t.pipeline_schedules).order_by(s.pipeline)))
        return [ScheduleRecord(r.pipeline, r.cron, r.timezone, json.loads(r.declared),
                               int(r.cursor_ms), int(r.updated_at_ms)) for r in rows]

    @translate_errors
    def advance_schedule(self, pipeline: str, seen_cursor_ms: int, cursor_ms: int) -> bool:
        s = t.pipeline_schedules.c
        with self.engine.begin() as conn:
            done = conn.execute(sa.update(t.pipeline_schedules)
                                .where(s.pipeline == pipeline, s.cursor_ms == seen_cursor_ms)
                                .values(cursor_ms=cursor_ms))
        return bool(done.rowcount)

    # --- the queue ------------------------------------------------------------------------

    @translate_errors
    def enqueue(self, run: PipelineRunRecord, *, collapse_since_ms: int | None = None
                ) -> tuple[PipelineRunRecord, bool]:
        r = t.pipeline_runs.c
        with self.engine.begin() as conn:
            if collapse_since_ms is not None:
                if self._pg:  # one enqueuer per pipeline at a time (SQLite: BEGIN IMMEDIATE)
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
                                 {"k": f"pipeline-queue:{run.pipeline}"})
                live = conn.execute(
                    sa.select(t.pipeline_runs)
                    .where(r.pipeline == run.pipeline, r.trigger == run.trigger,
                           sa.or_(r.status.in_(("queued", "running")),
                                  sa.and_(r.status == "succeeded",
                                          r.queued_at_ms >= collapse_since_ms)))
                    .order_by(r.queued_at_ms.desc()).limit(1)).first()
                if live is not None:
                    return _run(live), False
            stmt = dialect_insert(self.engine, t.pipeline_runs).values(**_run_row(run))
            if run.dedupe_key is not None:
                stmt = stmt.on_conflict_do_nothing(index_elements=["dedupe_key"])
            inserted = conn.execute(stmt.returning(t.pipeline_runs.c.run_id)).first()
            if inserted is not None:  # (rowcount is not reliable for ON CONFLICT DO NOTHING)
                return run, True
            existing = conn.execute(sa.select(t.pipeline_runs)
                                    .where(r.dedupe_key == run.dedupe_key)).one()
            return _run(existing), False

    @translate_errors
    def claim(self, worker: str, lease_ms: int, now_ms: int) -> PipelineRunRecord | None:
        r = t.pipeline_runs.c
        lapsed = sa.and_(r.status == "running", r.lease_expires_ms < now_ms)
        with self.engine.begin() as conn:
            conn.execute(sa.update(t.pipeline_runs)
                         .where(lapsed, r.attempts < r.max_attempts)
                         .values(status="queued", worker=None, lease_expires_ms=None,
                                 error=sa.func.coalesce(r.error, "") +
                                 "the worker's lease lapsed; queued again\n"))
            conn.execute(sa.update(t.pipeline_runs)
                         .where(lapsed, r.attempts >= r.max_attempts)
                         .values(status="failed", ended_at_ms=now_ms, lease_expires_ms=None,
                                 error=sa.func.coalesce(r.error, "") +
                                 "the worker's lease lapsed on the last attempt\n"))
            pick = (sa.select(r.run_id).where(r.status == "queued")
                    .order_by(r.queued_at_ms, r.run_id).limit(1))
            chosen: Any
            if self._pg:
                chosen = pick.with_for_update(skip_locked=True).scalar_subquery()
            else:  # the transaction holds SQLite's write lock already
                chosen = conn.execute(pick).scalar()
                if chosen is None:
                    return None
            row = conn.execute(
                sa.update(t.pipeline_runs)
                .where(r.run_id == chosen, r.status == "queued")
                .values(status="running", worker=worker, lease_expires_ms=now_ms + lease_ms,
                        attempts=r.attempts + 1,
                        started_at_ms=sa.func.coalesce(r.started_at_ms, now_ms))
                .returning(*t.pipeline_runs.c)).first()
        return None if row is None else _run(row)

    @translate_errors
    def renew(self, run_id: str, worker: str, lease_expires_ms: int,
              steps: list[dict[str, Any]] | None = None) -> bool:
        r = t.pipeline_runs.c
        values: dict[str, Any] = {"lease_expires_ms": lease_expires_ms}
        if steps is not None:
            values["steps"] = _dumps(steps)
        with self.engine.begin() as conn:
            done = conn.execute(sa.update(t.pipeline_runs)
                                .where(r.run_id == run_id, r.worker == worker,
                                       r.status == "running").values(**values))
        return bool(done.rowcount)

    @translate_errors
    def finish(self, run_id: str, worker: str, *, status: str, ended_at_ms: int,
               result: dict[str, Any], error: str | None, logs: str,
               steps: list[dict[str, Any]]) -> bool:
        if status not in ("succeeded", "failed"):
            raise RunStateError(f"a pipeline run finishes as succeeded or failed, not "
                                f"{status!r}", field="status")
        r = t.pipeline_runs.c
        with self.engine.begin() as conn:
            done = conn.execute(
                sa.update(t.pipeline_runs)
                .where(r.run_id == run_id, r.worker == worker, r.status == "running")
                .values(status=status, ended_at_ms=ended_at_ms, result=_dumps(result),
                        error=r.error if error is None else
                        sa.func.coalesce(r.error, "") + error,  # earlier attempts' notes kept
                        logs=logs, steps=_dumps(steps), lease_expires_ms=None))
        return bool(done.rowcount)

    @translate_errors
    def get_run(self, run_id: str) -> PipelineRunRecord:
        r = t.pipeline_runs.c
        with self._read() as conn:
            rows = list(conn.execute(sa.select(t.pipeline_runs)
                                     .where(r.run_id.like(f"{run_id}%")).limit(2)))
        if len(rows) != 1:
            problem = "no pipeline run" if not rows else "more than one pipeline run"
            raise NotFoundError(f"{problem} with id {run_id!r}", run_id=run_id)
        return _run(rows[0])

    @translate_errors
    def runs(self, pipeline: str | None = None, *, status: str | None = None,
             limit: int | None = 100) -> list[PipelineRunRecord]:
        r = t.pipeline_runs.c
        stmt = sa.select(t.pipeline_runs)
        if pipeline is not None:
            stmt = stmt.where(r.pipeline == pipeline)
        if status is not None:
            stmt = stmt.where(r.status == status)
        stmt = stmt.order_by(r.queued_at_ms.desc(), r.run_id.desc())
        if limit is not None:
            stmt = stmt.limit(limit)
        with self._read() as conn:
            return [_run(row) for row in conn.execute(stmt)]


def _definition(row: Any) -> PipelineRecord:
    return PipelineRecord(row.name, int(row.version), row.content_hash, json.loads(row.spec),
                          int(row.created_at_ms))
