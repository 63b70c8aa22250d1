"""The model registry on SQLAlchemy: the same code for SQLite and PostgreSQL.

Version numbers are taken inside the inserting transaction (SQLite serialises writers with
``BEGIN IMMEDIATE``; on PostgreSQL a concurrent insert of the same number fails on the primary
key and is retried). An alias moves with a compare-and-set ``UPDATE ... WHERE version = old``
and its history row is inserted in the same transaction, so two writers never both win and
no move goes unrecorded.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from modelyard.backends.metadata.registry import (
    AliasEvent,
    AliasWatch,
    EvaluationRecord,
    GateReportRecord,
    ModelRecord,
    RegistryStore,
    VersionRecord,
)
from modelyard.backends.metadata.sql import tables as t
from modelyard.backends.metadata.sql.engine import translate_errors
from modelyard.backends.metadata.sql.notify import alias_listener, notify
from modelyard.backends.metadata.sql.write_store import complete_write
from modelyard.backends.metadata.writes import Completion
from modelyard.errors import NotFoundError

_ATTEMPTS = 8


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _model(row: Any) -> ModelRecord:
    return ModelRecord(row.name, row.description, json.loads(row.gates), int(row.created_at),
                       int(row.updated_at))


def _version(row: Any) -> VersionRecord:
    return VersionRecord(row.name, int(row.version), row.flavor, row.artifact_sha256,
                         int(row.artifact_size), row.onnx_sha256, row.run_id,
                         row.training_set_id, json.loads(row.spec), int(row.created_at),
                         row.created_by)


def _event(row: Any) -> AliasEvent:
    return AliasEvent(row.name, row.alias, row.from_version, row.to_version, row.action,
                      row.actor, row.reason, int(row.at), row.report_id, int(row.id))


class SqlRegistryStore(RegistryStore):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def alias_watch(self) -> AliasWatch | None:
        return alias_listener(self.engine)

    def _read(self) -> Connection:
        return self.engine.connect().execution_options(modelyard_read_only=True)

    # --- models ---------------------------------------------------------------------------

    @translate_errors
    def ensure_model(self, name: str, description: str | None = None,
                     gates: list[dict[str, Any]] | None = None) -> ModelRecord:
        for attempt in range(_ATTEMPTS):
            try:
                with self.engine.begin() as conn:
                    return self._ensure(conn, name, description, gates)
            except sa.exc.IntegrityError:
                if attempt == _ATTEMPTS - 1:  # another writer created it: read again
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _ensure(self, conn: Connection, name: str, description: str | None,
                gates: list[dict[str, Any]] | None) -> ModelRecord:
        m = t.registered_models.c
        row = conn.execute(sa.select(t.registered_models).where(m.name == name)).first()
        now = _now_ms()
        if row is None:
            conn.execute(t.registered_models.insert().values(
                name=name, description=description or "", gates=_dumps(gates or []),
                created_at=now, updated_at=now))
            return ModelRecord(name, description or "", gates or [], now, now)
        changes: dict[str, Any] = {}
        if description is not None and description != row.description:
            changes["description"] = description
        if gates is not None and _dumps(gates) != row.gates:
            changes["gates"] = _dumps(gates)
        if changes:
            conn.execute(t.registered_models.update().where(m.name == name)
                         .values(updated_at=now, **changes))
            row = conn.execute(sa.select(t.registered_models).where(m.name == name)).one()
        return _model(row)

    @translate_errors
    def get_model(self, name: str) -> ModelRecord:
        m = t.registered_models.c
        with self._read() as conn:
            row = conn.execute(sa.select(t.registered_models).where(m.name == name)).first()
        if row is None:
            raise NotFoundError(f"no model {name!r}", model=name)
        return _model(row)

    @translate_errors
    def list_models(self) -> list[ModelRecord]:
        with self._read() as conn:
            rows = conn.execute(sa.select(t.registered_models)
                                .order_by(t.registered_models.c.name))
            return [_model(r) for r in rows]

    # --- versions -------------------------------------------------------------------------

    @translate_errors
    def add_version(self, record: VersionRecord, done: Completion | None = None
                    ) -> VersionRecord:
        v = t.model_versions.c
        for attempt in range(_ATTEMPTS):
            try:
                with self.engine.begin() as conn:
                    self._ensure(conn, record.name, None, None)
                    latest = conn.execute(sa.select(sa.func.max(v.version))
                                          .where(v.name == record.name)).scalar()
                    stored = replace(record, version=int(latest or 0) + 1)
                    conn.execute(t.model_versions.insert().values(
                        name=stored.name, version=stored.version, flavor=stored.flavor,
                        artifact_sha256=stored.artifact_sha256,
                        artifact_size=stored.artifact_size, onnx_sha256=stored.onnx_sha256,
                        run_id=stored.run_id, training_set_id=stored.training_set_id,
                        spec=_dumps(stored.spec), created_at=stored.created_at,
                        created_by=stored.created_by))
                    if done is not None:
                        complete_write(conn, replace(done, result={
                            **done.result, "name": stored.name, "version": stored.version}))
                return stored
            except sa.exc.IntegrityError:
                if attempt == _ATTEMPTS - 1:  # another writer took the number: try the next
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    @translate_errors
    def get_version(self, name: str, version: int) -> VersionRecord:
        v = t.model_versions.c
        with self._read() as conn:
            row = conn.execute(sa.select(t.model_versions)
                               .where(v.name == name, v.version == version)).first()
        if row is None:
            self.get_model(name)  # an unknown model is reported as such
            raise NotFoundError(f"model {name!r} has no version {version}", model=name,
                                version=version)
        return _version(row)

    @translate_errors
    def list_versions(self, name: str) -> list[VersionRecord]:
        v = t.model_versions.c
        with self._read() as conn:
            rows = conn.execute(sa.select(t.model_versions).where(v.name == name)
                                .order_by(v.version))
            return [_version(r) for r in rows]

    # --- aliases --------------------------------------------------------------------------

    @translate_errors
    def aliases(self, name: str) -> dict[str, int]:
        a = t.model_aliases.c
        with self._read() as conn:
            rows = conn.execute(sa.select(a.alias, a.version).where(a.name == name)
                                .order_by(a.alias))
            return {r.alias: int(r.version) for r in rows}

    @translate_errors
    def move_alias(self, event: AliasEvent, done: Completion | None = None) -> bool:
        a = t.model_aliases.c
        try:
            with self.engine.begin() as conn:
                where = sa.and_(a.name == event.name, a.alias == event.alias)
                if event.from_version is None:
                    if event.to_version is None:
                        return False
                    conn.execute(t.model_aliases.insert().values(
                        name=event.name, alias=event.alias, version=event.to_version,
                        updated_at=event.at))
                else:
                    current = sa.and_(where, a.version == event.from_version)
                    if event.to_version is None:
                        moved = conn.execute(t.model_aliases.delete().where(current))
                    else:
                        moved = conn.execute(t.model_aliases.update().where(current).values(
                            version=event.to_version, updated_at=event.at))
                    if moved.rowcount != 1:
                        return False
                added = conn.execute(t.alias_history.insert().values(
                    name=event.name, alias=event.alias, from_version=event.from_version,
                    to_version=event.to_version, action=event.action, actor=event.actor,
                    reason=event.reason, report_id=event.report_id, at=event.at))
                if done is not None:
                    key = added.inserted_primary_key
                    assert key is not None
                    complete_write(conn, replace(done, result={
                        **done.result, "event_id": int(key[0])}))
                notify(conn, event.name)  # delivered when this transaction commits
            return True
        except sa.exc.IntegrityError:  # another writer set the alias first
            return False

    @translate_errors
    def alias_history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        h = t.alias_history.c
        stmt = sa.select(t.alias_history).where(h.name == name)
        if alias is not None:
            stmt = stmt.where(h.alias == alias)
        with self._read() as conn:
            return [_event(r) for r in conn.execute(stmt.order_by(h.id))]

    # --- evaluations and gate reports -----------------------------------------------------

    @translate_errors
    def save_evaluation(self, record: EvaluationRecord) -> None:
        e = t.model_evaluations.c
        values = {"evaluation": _dumps(record.evaluation), "plots": _dumps(record.plots),
                  "created_at": record.created_at or _now_ms()}
        with self.engine.begin() as conn:
            where = sa.and_(e.name == record.name, e.version == record.version,
                            e.dataset == record.dataset)
            done = conn.execute(t.model_evaluations.update().where(where).values(**values))
            if done.rowcount == 0:
                conn.execute(t.model_evaluations.insert().values(
                    name=record.name, version=record.version, dataset=record.dataset,
                    **values))

    @translate_errors
    def evaluations(self, name: str, version: int) -> list[EvaluationRecord]:
        e = t.model_evaluations.c
        with self._read() as conn:
            rows = conn.execute(sa.select(t.model_evaluations)
                                .where(e.name == name, e.version == version)
                                .order_by(e.dataset))
            return [EvaluationRecord(r.name, int(r.version), r.dataset,
                                     json.loads(r.evaluation), json.loads(r.plots),
                                     int(r.created_at)) for r in rows]

    @translate_errors
    def save_gate_report(self, record: GateReportRecord) -> None:
        with self.engine.begin() as conn:
            conn.execute(t.gate_reports.insert().values(
                report_id=record.report_id, name=record.name, version=record.version,
                alias=record.alias, passed=int(record.passed), forced=int(record.forced),
                report=_dumps(record.report), created_at=record.created_at))

    @translate_errors
    def gate_reports(self, name: str, version: int) -> list[GateReportRecord]:
        g = t.gate_reports.c
        with self._read() as conn:
            rows = conn.execute(sa.select(t.gate_reports)
                                .where(g.name == name, g.version == version)
                                .order_by(g.created_at, g.report_id))
            return [GateReportRecord(r.report_id, r.name, int(r.version), r.alias,
                                     bool(r.passed), bool(r.forced), json.loads(r.report),
                                     int(r.created_at)) for r in rows]
