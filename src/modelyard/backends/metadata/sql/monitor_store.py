"""Monitoring's store on SQLAlchemy (SQLite and PostgreSQL): tables ``monitor_results``,
``monitor_alerts``, ``monitor_rules`` and ``monitor_references`` (migration 0007).

A check and its alerts are inserted in one transaction; rules and references are upserts on
their key, so two writers leave one of the two values whole.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from modelyard.backends.metadata.monitoring import (
    AlertRecord,
    MonitorStore,
    ReferenceRecord,
    ResultRecord,
    RulesRecord,
)
from modelyard.backends.metadata.sql import tables as t
from modelyard.backends.metadata.sql.engine import (
    dialect_insert,
    ensure_schema,
    read_connection,
    translate_errors,
)
from modelyard.errors import NotFoundError

__all__ = ["SqlMonitorStore"]


def _dumps(value: Any) -> str:
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


class SqlMonitorStore(MonitorStore):
    def __init__(self, engine: Engine, *, migrate: bool = True) -> None:
        self.engine = engine
        if migrate:
            ensure_schema(engine)

    def _read(self) -> Connection:
        return read_connection(self.engine)

    # --- checks and alerts ----------------------------------------------------------------

    @translate_errors
    def save_result(self, result: ResultRecord, alerts: Sequence[AlertRecord]) -> None:
        row = {"result_id": result.result_id, "model": result.model,
               "version": result.version, "start_us": result.start_us,
               "end_us": result.end_us, "checked_at_ms": result.checked_at_ms,
               "rows": result.rows, "summary": _dumps(result.summary),
               "result": _dumps(result.result)}
        alert_rows = [{"alert_id": a.alert_id, "result_id": a.result_id, "model": a.model,
                       "version": a.version, "rule": a.rule, "severity": a.severity,
                       "message": a.message, "value": a.value,
                       "fired_at_ms": a.fired_at_ms, "evidence": _dumps(a.evidence),
                       "deliveries": _dumps(a.deliveries)} for a in alerts]
        with self.engine.begin() as conn:
            conn.execute(sa.insert(t.monitor_results), [row])
            if alert_rows:
                conn.execute(sa.insert(t.monitor_alerts), alert_rows)

    @translate_errors
    def record_deliveries(self, alert_id: str, deliveries: Sequence[dict[str, Any]]) -> None:
        a = t.monitor_alerts.c
        with self.engine.begin() as conn:
            done = conn.execute(sa.update(t.monitor_alerts).where(a.alert_id == alert_id)
                                .values(deliveries=_dumps(list(deliveries))))
        if done.rowcount == 0:
            raise NotFoundError(f"no alert {alert_id!r}", alert_id=alert_id)

    @translate_errors
    def get_result(self, result_id: str) -> ResultRecord:
        r = t.monitor_results.c
        with self._read() as conn:
            row = conn.execute(sa.select(t.monitor_results)
                               .where(r.result_id == result_id)).first()
        if row is None:
            raise NotFoundError(f"no monitoring result {result_id!r}", result_id=result_id)
        return _result(row, full=True)

    @translate_errors
    def results(self, model: str, *, start_us: int | None = None, end_us: int | None = None,
                limit: int | None = None, full: bool = False) -> list[ResultRecord]:
        r = t.monitor_results.c
        columns = [r.result_id, r.model, r.version, r.start_us, r.end_us, r.checked_at_ms,
                   r.rows, r.summary] + ([r.result] if full else [])
        stmt = sa.select(*columns).where(r.model == model)
        if start_us is not None:
            stmt = stmt.where(r.end_us >= start_us)
        if end_us is not None:
            stmt = stmt.where(r.end_us < end_us)
        order = [r.end_us, r.checked_at_ms, r.result_id]
        if limit is None:
            stmt = stmt.order_by(*order)
        else:
            stmt = stmt.order_by(*(c.desc() for c in order)).limit(limit)
        with self._read() as conn:
            rows = list(conn.execute(stmt))
        if limit is not None:
            rows.reverse()
        return [_result(row, full=full) for row in rows]

    @translate_errors
    def alerts(self, model: str | None = None, *, since_ms: int | None = None,
               limit: int | None = None) -> list[AlertRecord]:
        a = t.monitor_alerts.c
        stmt = sa.select(t.monitor_alerts)
        if model is not None:
            stmt = stmt.where(a.model == model)
        if since_ms is not None:
            stmt = stmt.where(a.fired_at_ms >= since_ms)
        stmt = stmt.order_by(a.fired_at_ms.desc(), a.alert_id.desc())
        if limit is not None:
            stmt = stmt.limit(limit)
        with self._read() as conn:
            return [AlertRecord(row.alert_id, row.result_id, row.model, row.version, row.rule,
                                row.severity, row.message, row.value, int(row.fired_at_ms),
                                json.loads(row.evidence), json.loads(row.deliveries))
                    for row in conn.execute(stmt)]

    # --- rules and references -------------------------------------------------------------

    @translate_errors
    def set_rules(self, record: RulesRecord) -> None:
        values = {"model": record.model, "rules": _dumps(record.rules),
                  "notify": _dumps(record.notify), "updated_at_ms": record.updated_at_ms}
        stmt = dialect_insert(self.engine, t.monitor_rules).values(**values)
        stmt = stmt.on_conflict_do_update(index_elements=["model"], set_={
            k: v for k, v in values.items() if k != "model"})
        with self.engine.begin() as conn:
            conn.execute(stmt)

    @translate_errors
    def rules(self, model: str) -> RulesRecord | None:
        c = t.monitor_rules.c
        with self._read() as conn:
            row = conn.execute(sa.select(t.monitor_rules).where(c.model == model)).first()
        if row is None:
            return None
        return RulesRecord(row.model, json.loads(row.rules), json.loads(row.notify),
                           int(row.updated_at_ms))

    @translate_errors
    def ruled_models(self) -> list[str]:
        c = t.monitor_rules.c
        with self._read() as conn:
            return [row.model for row in conn.execute(sa.select(c.model).order_by(c.model))]

    @translate_errors
    def set_reference(self, record: ReferenceRecord) -> None:
        values = {"model": record.model, "version": record.version,
                  "profile_sha256": record.profile_sha256, "rows": record.rows,
                  "created_at_ms": record.created_at_ms}
        stmt = dialect_insert(self.engine, t.monitor_references).values(**values)
        stmt = stmt.on_conflict_do_update(index_elements=["model", "version"], set_={
            k: v for k, v in values.items() if k not in ("model", "version")})
        with self.engine.begin() as conn:
            conn.execute(stmt)

    @translate_errors
    def reference(self, model: str, version: int) -> ReferenceRecord | None:
        c = t.monitor_references.c
        with self._read() as conn:
            row = conn.execute(sa.select(t.monitor_references)
                               .where(c.model == model, c.version == version)).first()
        if row is None:
            return None
        return ReferenceRecord(row.model, int(row.version), row.profile_sha256, int(row.rows),
                               int(row.created_at_ms))


def _result(row: Any, *, full: bool) -> ResultRecord:
    return ResultRecord(row.result_id, row.model, row.version, int(row.start_us),
                        int(row.end_us), int(row.checked_at_ms), int(row.rows),
                        json.loads(row.summary), json.loads(row.result) if full else {})
