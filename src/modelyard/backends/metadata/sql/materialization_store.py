"""Materialization records on SQLAlchemy (SQLite and PostgreSQL)."""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from modelyard.backends.metadata.materializations import (
    MaterializationRecord,
    MaterializationStore,
    Status,
)
from modelyard.backends.metadata.sql import tables as t
from modelyard.backends.metadata.sql.engine import translate_errors

_COLUMNS = {"group": "group_name"}


def _row(record: MaterializationRecord) -> dict[str, Any]:
    values = dataclasses.asdict(record)
    values["layout"] = json.dumps(record.layout, sort_keys=True)
    return {_COLUMNS.get(k, k): v for k, v in values.items()}


def _record(row: Any) -> MaterializationRecord:
    values = dict(row._mapping)
    values["group"] = values.pop("group_name")
    values["layout"] = json.loads(values["layout"])
    return MaterializationRecord(**values)


class SqlMaterializationStore(MaterializationStore):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @translate_errors
    def save_materialization(self, record: MaterializationRecord) -> None:
        record.updated_at = time.time_ns() // 1_000_000
        values = _row(record)
        m = t.materializations.c
        with self.engine.begin() as conn:
            done = conn.execute(t.materializations.update()
                                .where(m.materialization_id == record.materialization_id)
                                .values(**values))
            if done.rowcount == 0:
                conn.execute(t.materializations.insert().values(**values))

    @translate_errors
    def list_materializations(self, group: str | None = None, *, version: int | None = None,
                              store: str | None = None, status: Status | None = None,
                              limit: int | None = None) -> list[MaterializationRecord]:
        m = t.materializations.c
        stmt = sa.select(t.materializations)
        if group is not None:
            stmt = stmt.where(m.group_name == group)
        if version is not None:
            stmt = stmt.where(m.version == version)
        if store is not None:
            stmt = stmt.where(m.store == store)
        if status is not None:
            stmt = stmt.where(m.status == status)
        stmt = stmt.order_by(m.started_at.desc(), m.materialization_id.desc())
        if limit is not None:
            stmt = stmt.limit(limit)
        with self.engine.connect().execution_options(modelyard_read_only=True) as conn:
            return [_record(row) for row in conn.execute(stmt)]
