"""Decision records on SQLAlchemy (SQLite and PostgreSQL): table ``pipeline_decisions``
(migrations 0012 and 0013). Resolving a pending decision is a compare-and-set on its state, so two
approvers cannot both resolve it."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from modelyard.backends.metadata.decisions import DecisionRecord, DecisionStore
from modelyard.backends.metadata.sql import tables as t
from modelyard.backends.metadata.sql.engine import (
    ensure_schema,
    read_connection,
    translate_errors,
)

__all__ = ["SqlDecisionStore"]

_JSON = ("trigger_detail", "data", "candidate_metrics", "champion_metrics", "gate_report",
         "shadow")
_OUTCOME = ("decision", "gate_report", "passed", "champion", "champion_metrics",
            "decided_by", "decided_at_ms", "reason", "shadow")


def _row(record: DecisionRecord) -> dict[str, Any]:
    row = dict(record.__dict__)
    for key in _JSON:
        row[key] = None if row[key] is None else json.dumps(row[key], default=str)
    row["passed"] = int(record.passed)
    return row


def _record(row: Any) -> DecisionRecord:
    data = dict(row._mapping)
    for key in _JSON:
        data[key] = None if data[key] is None else json.loads(data[key])
    data["passed"] = bool(data["passed"])
    return DecisionRecord(**data)


class SqlDecisionStore(DecisionStore):
    def __init__(self, engine: Engine, *, migrate: bool = True) -> None:
        self.engine = engine
        if migrate:
            ensure_schema(engine)

    @translate_errors
    def save_decision(self, record: DecisionRecord) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.insert(t.pipeline_decisions).values(**_row(record)))

    @translate_errors
    def resolve_decision(self, decision_id: str, expected: str, record: DecisionRecord
                         ) -> bool:
        c = t.pipeline_decisions.c
        row = _row(record)
        with self.engine.begin() as conn:
            done = conn.execute(
                sa.update(t.pipeline_decisions)
                .where(c.decision_id == decision_id, c.decision == expected)
                .values(**{k: row[k] for k in _OUTCOME}))
        return bool(done.rowcount)

    @translate_errors
    def decisions(self, model: str | None = None, version: int | None = None, *,
                  decision: str | None = None) -> list[DecisionRecord]:
        c = t.pipeline_decisions.c
        stmt = sa.select(t.pipeline_decisions)
        if model is not None:
            stmt = stmt.where(c.model == model)
        if version is not None:
            stmt = stmt.where(c.version == version)
        if decision is not None:
            stmt = stmt.where(c.decision == decision)
        with read_connection(self.engine) as conn:
            rows = conn.execute(stmt.order_by(c.created_at_ms.desc())).all()
        return [_record(r) for r in rows]

    @translate_errors
    def decision_of_run(self, run_id: str) -> DecisionRecord | None:
        c = t.pipeline_decisions.c
        with read_connection(self.engine) as conn:
            row = conn.execute(sa.select(t.pipeline_decisions)
                               .where(c.run_id == run_id)).first()
        return None if row is None else _record(row)
