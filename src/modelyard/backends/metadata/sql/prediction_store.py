"""The prediction log on SQLAlchemy (SQLite and PostgreSQL): tables ``predictions`` and
``prediction_labels`` (migration 0005), ``prediction_failures`` (migration 0006).

A batch is one transaction of ``INSERT ... ON CONFLICT DO NOTHING`` on the record key, so a
retried batch, or two processes writing the same records, store each record once (failures
alike, on ``(model, request_id)``). Labels
are matched and upserted in one transaction (``BEGIN IMMEDIATE`` on SQLite, so the
predictions they are matched against cannot change under them).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from modelyard.backends.metadata.predictions import (
    FailureRecord,
    Label,
    LabelResult,
    PredictionRecord,
    PredictionStore,
    Role,
)
from modelyard.backends.metadata.sql import tables as t
from modelyard.backends.metadata.sql.engine import (
    dialect_insert,
    ensure_schema,
    read_connection,
    translate_errors,
)
from modelyard.backends.predictions.codec import (
    check_failure,
    check_label,
    check_model,
    check_query,
    check_record,
    failure_frame,
    labels_frame,
    prediction_frame,
)
from modelyard.backends.predictions.matching import match_labels

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SqlPredictionStore"]

_WRITE_CHUNK = 2_000
_IN_CHUNK = 500  # values in one IN (...) list


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


class SqlPredictionStore(PredictionStore):
    def __init__(self, engine: Engine, *, migrate: bool = True,
                 owns_engine: bool = False) -> None:
        self.engine = engine
        self.uri = engine.url.render_as_string(hide_password=True)
        self._owns_engine = owns_engine
        if migrate:
            ensure_schema(engine)

    def _insert(self, table: sa.Table) -> Any:
        return dialect_insert(self.engine, table)

    def _read(self) -> Connection:
        return read_connection(self.engine)

    @translate_errors
    def write(self, records: Sequence[PredictionRecord]) -> None:
        rows = [check_record(r)._asdict() for r in records]
        if not rows:
            return
        stmt = self._insert(t.predictions).on_conflict_do_nothing()
        with self.engine.begin() as conn:
            for chunk in _chunks(rows, _WRITE_CHUNK):
                conn.execute(stmt, list(chunk))

    def _where(self, model: str, version: int | None, start_us: int | None,
               end_us: int | None, role: Role | None) -> list[Any]:
        p = t.predictions.c
        conds: list[Any] = [p.model == model]
        if version is not None:
            conds.append(p.version == version)
        if start_us is not None:
            conds.append(p.at_us >= start_us)
        if end_us is not None:
            conds.append(p.at_us < end_us)
        if role is not None:
            conds.append(p.role == role)
        return conds

    @translate_errors
    def read(self, model: str, *, version: int | None = None, start_us: int | None = None,
             end_us: int | None = None, role: Role | None = None,
             limit: int | None = None) -> pd.DataFrame:
        check_query(model, version, start_us, end_us, role, limit)
        p, lab = t.predictions.c, t.prediction_labels.c
        joined = t.predictions.outerjoin(t.prediction_labels, sa.and_(
            lab.model == p.model, lab.request_id == p.request_id, lab.row == p.row))
        stmt = (sa.select(p.request_id, p.row, p.model, p.version, p.role, p.at_us,
                          p.latency_ms, p.status, p.reason, p.entity, p.features, p.output,
                          lab.label)
                .select_from(joined)
                .where(*self._where(model, version, start_us, end_us, role)))
        order = [p.at_us, p.request_id, p.row, p.version, p.role]
        if limit is None:
            stmt = stmt.order_by(*order)
        else:
            stmt = stmt.order_by(*(c.desc() for c in order)).limit(limit)
        with self._read() as conn:
            rows = [tuple(r) for r in conn.execute(stmt)]
        if limit is not None:
            rows.reverse()
        return prediction_frame(rows)

    @translate_errors
    def count(self, model: str, *, version: int | None = None, start_us: int | None = None,
              end_us: int | None = None, role: Role | None = None) -> int:
        check_query(model, version, start_us, end_us, role)
        stmt = (sa.select(sa.func.count()).select_from(t.predictions)
                .where(*self._where(model, version, start_us, end_us, role)))
        with self._read() as conn:
            return int(conn.execute(stmt).scalar_one())

    # --- failed requests --------------------------------------------------------------------

    @translate_errors
    def write_failures(self, records: Sequence[FailureRecord]) -> None:
        rows = [check_failure(r)._asdict() for r in records]
        if not rows:
            return
        stmt = self._insert(t.prediction_failures).on_conflict_do_nothing()
        with self.engine.begin() as conn:
            for chunk in _chunks(rows, _WRITE_CHUNK):
                conn.execute(stmt, list(chunk))

    def _failures_where(self, model: str, version: int | None, start_us: int | None,
                        end_us: int | None) -> list[Any]:
        check_query(model, version, start_us, end_us, None)
        f = t.prediction_failures.c
        conds: list[Any] = [f.model == model]
        if version is not None:
            conds.append(f.version == version)
        if start_us is not None:
            conds.append(f.at_us >= start_us)
        if end_us is not None:
            conds.append(f.at_us < end_us)
        return conds

    @translate_errors
    def read_failures(self, model: str, *, version: int | None = None,
                      start_us: int | None = None, end_us: int | None = None
                      ) -> pd.DataFrame:
        f = t.prediction_failures.c
        stmt = (sa.select(f.request_id, f.model, f.version, f.role, f.at_us, f.latency_ms,
                          f.status, f.error, f.endpoint, f.field)
                .where(*self._failures_where(model, version, start_us, end_us))
                .order_by(f.at_us, f.request_id))
        with self._read() as conn:
            rows = [tuple(r) for r in conn.execute(stmt)]
        return failure_frame(rows)

    @translate_errors
    def count_failures(self, model: str, *, version: int | None = None,
                       start_us: int | None = None, end_us: int | None = None) -> int:
        stmt = (sa.select(sa.func.count()).select_from(t.prediction_failures)
                .where(*self._failures_where(model, version, start_us, end_us)))
        with self._read() as conn:
            return int(conn.execute(stmt).scalar_one())

    # --- labels ---------------------------------------------------------------------------

    @translate_errors
    def add_labels(self, model: str, labels: Sequence[Label]) -> LabelResult:
        check_model(model)
        checked = [check_label(label, i) for i, label in enumerate(labels)]
        if not checked:
            return LabelResult(0, 0)
        p = t.predictions.c
        request_ids = sorted({c.request_id for c in checked if c.request_id is not None})
        entities = sorted({c.entity for c in checked if c.entity is not None})
        latest = max((c.at_us for c in checked if c.at_us is not None), default=0)
        with self.engine.begin() as conn:
            logged: set[tuple[str, int]] = set()
            for chunk in _chunks(request_ids, _IN_CHUNK):
                logged.update((r, int(n)) for r, n in conn.execute(
                    sa.select(p.request_id, p.row).distinct()
                    .where(p.model == model, p.request_id.in_(list(chunk)))))
            history: list[tuple[str, int, str, int]] = []
            for chunk in _chunks(entities, _IN_CHUNK):
                history.extend((e, int(at), r, int(n)) for e, at, r, n in conn.execute(
                    sa.select(p.entity, p.at_us, p.request_id, p.row)
                    .where(p.model == model, p.entity.in_(list(chunk)), p.at_us <= latest)))
            targets, result = match_labels(model, checked, logged, history)
            now = time.time_ns() // 1_000
            rows = [{"model": model, "request_id": r, "row": n, "label": values,
                     "labelled_at_us": now} for (r, n), values in targets.items()]
            stmt = self._insert(t.prediction_labels)
            stmt = stmt.on_conflict_do_update(
                index_elements=[t.prediction_labels.c.model, t.prediction_labels.c.request_id,
                                t.prediction_labels.c.row],
                set_={"label": stmt.excluded.label,
                      "labelled_at_us": stmt.excluded.labelled_at_us})
            for chunk in _chunks(rows, _WRITE_CHUNK):
                conn.execute(stmt, list(chunk))
        return result

    @translate_errors
    def labels(self, model: str) -> pd.DataFrame:
        lab = t.prediction_labels.c
        stmt = (sa.select(lab.request_id, lab.row, lab.labelled_at_us, lab.label)
                .where(lab.model == check_model(model))
                .order_by(lab.labelled_at_us, lab.request_id, lab.row))
        with self._read() as conn:
            rows = [tuple(r) for r in conn.execute(stmt)]
        return labels_frame(rows)

    def close(self) -> None:
        if self._owns_engine:
            self.engine.dispose()
