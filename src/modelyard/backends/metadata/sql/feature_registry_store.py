"""The feature registry on SQLAlchemy: the same code for SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from modelyard.backends.metadata.feature_registry import (
    DefinitionRecord,
    FeatureRegistryStore,
    TrainingSetRecord,
)
from modelyard.backends.metadata.sql import tables as t
from modelyard.backends.metadata.sql.engine import ensure_schema, translate_errors
from modelyard.backends.metadata.sql.write_store import complete_write
from modelyard.backends.metadata.writes import Completion
from modelyard.errors import NotFoundError

_KIND_WORDS = {"entity": "entity", "source": "source", "feature_group": "feature group",
               "request_group": "request feature group"}


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _record(row: Any) -> DefinitionRecord:
    return DefinitionRecord(row.kind, row.name, int(row.version), row.content_hash,
                            json.loads(row.spec), int(row.created_at))


class SqlFeatureRegistryStore(FeatureRegistryStore):
    def __init__(self, engine: Engine, *, migrate: bool = True) -> None:
        self.engine = engine
        if migrate:
            ensure_schema(engine)

    def _read(self) -> Connection:
        return self.engine.connect().execution_options(modelyard_read_only=True)

    # --- definitions ----------------------------------------------------------------------

    @translate_errors
    def put_definition(self, kind: str, name: str, content_hash: str, spec: dict[str, Any]
                       ) -> tuple[DefinitionRecord, bool]:
        d = t.definitions.c
        for attempt in range(5):
            try:
                with self.engine.begin() as conn:
                    latest = conn.execute(
                        sa.select(t.definitions).where(d.kind == kind, d.name == name)
                        .order_by(d.version.desc()).limit(1)
                    ).first()
                    if latest is not None and latest.content_hash == content_hash:
                        return _record(latest), False
                    version = 1 if latest is None else int(latest.version) + 1
                    created = _now_ms()
                    body = json.dumps(spec, sort_keys=True, default=str)
                    conn.execute(t.definitions.insert().values(
                        kind=kind, name=name, version=version, content_hash=content_hash,
                        spec=body, created_at=created))
                return DefinitionRecord(kind, name, version, content_hash,
                                        json.loads(body), created), True
            except sa.exc.IntegrityError:
                # another process took this version number first (PostgreSQL); read again
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    @translate_errors
    def get_definition(self, kind: str, name: str, version: int | None = None
                       ) -> DefinitionRecord:
        d = t.definitions.c
        stmt = sa.select(t.definitions).where(d.kind == kind, d.name == name)
        stmt = (stmt.where(d.version == version) if version is not None
                else stmt.order_by(d.version.desc()).limit(1))
        with self._read() as conn:
            row = conn.execute(stmt).first()
        if row is None:
            word = _KIND_WORDS.get(kind, kind)
            at = f" version {version}" if version is not None else ""
            raise NotFoundError(f"no {word} named {name!r}{at}", kind=kind, name=name,
                                version=version)
        return _record(row)

    @translate_errors
    def list_definitions(self, kind: str | None = None) -> list[DefinitionRecord]:
        d = t.definitions.c
        latest = (sa.select(d.kind, d.name, sa.func.max(d.version).label("version"))
                  .group_by(d.kind, d.name))
        if kind is not None:
            latest = latest.where(d.kind == kind)
        sub = latest.subquery()
        stmt = (sa.select(t.definitions)
                .join(sub, sa.and_(d.kind == sub.c.kind, d.name == sub.c.name,
                                   d.version == sub.c.version))
                .order_by(d.kind, d.name))
        with self._read() as conn:
            return [_record(r) for r in conn.execute(stmt)]

    @translate_errors
    def definition_history(self, kind: str, name: str) -> list[DefinitionRecord]:
        d = t.definitions.c
        with self._read() as conn:
            rows = conn.execute(sa.select(t.definitions).where(d.kind == kind, d.name == name)
                                .order_by(d.version)).all()
        if not rows:
            raise NotFoundError(f"no {_KIND_WORDS.get(kind, kind)} named {name!r}",
                                kind=kind, name=name)
        return [_record(r) for r in rows]

    # --- training sets --------------------------------------------------------------------

    @translate_errors
    def save_training_set(self, record: TrainingSetRecord) -> None:
        c = t.training_sets.c
        with self.engine.begin() as conn:
            exists = conn.execute(sa.select(c.training_set_id).where(
                c.training_set_id == record.training_set_id)).first()
            if exists is None:
                try:
                    with conn.begin_nested():
                        conn.execute(t.training_sets.insert().values(
                            training_set_id=record.training_set_id,
                            created_at=record.created_at,
                            spec=json.dumps(record.spec, sort_keys=True, default=str)))
                except sa.exc.IntegrityError:
                    pass  # saved meanwhile by another process: same id, same content

    @translate_errors
    def get_training_set(self, training_set_id: str) -> TrainingSetRecord:
        c = t.training_sets.c
        with self._read() as conn:
            row = conn.execute(sa.select(t.training_sets).where(
                c.training_set_id == training_set_id)).first()
        if row is None:
            raise NotFoundError(f"no training set with id {training_set_id!r}",
                                training_set_id=training_set_id)
        return TrainingSetRecord(row.training_set_id, int(row.created_at), json.loads(row.spec))

    # --- profiles and forgetting ----------------------------------------------------------

    @translate_errors
    def save_profile(self, source: str, commit_id: str, profile: dict[str, Any],
                     done: Completion | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(t.ingestion_profiles.insert().values(
                source=source, commit_id=commit_id, created_at=_now_ms(),
                profile=json.dumps(profile, sort_keys=True, default=str)))
            complete_write(conn, done)

    @translate_errors
    def get_profile(self, source: str, commit_id: str) -> dict[str, Any] | None:
        c = t.ingestion_profiles.c
        with self._read() as conn:
            row = conn.execute(sa.select(c.profile).where(
                c.source == source, c.commit_id == commit_id)).first()
        return None if row is None else dict(json.loads(row.profile))

    @translate_errors
    def log_forget(self, entity: str, keys: int, rows_removed: int, details: dict[str, Any],
                   done: Completion | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(t.forget_log.insert().values(
                entity=entity, keys=keys, rows_removed=rows_removed, at=_now_ms(),
                details=json.dumps(details, sort_keys=True, default=str)))
            complete_write(conn, done)

    @translate_errors
    def forget_log(self, entity: str | None = None) -> list[dict[str, Any]]:
        c = t.forget_log.c
        stmt = sa.select(t.forget_log).order_by(c.id)
        if entity is not None:
            stmt = stmt.where(c.entity == entity)
        with self._read() as conn:
            return [{"entity": r.entity, "keys": r.keys, "rows_removed": r.rows_removed,
                     "at": r.at, "details": json.loads(r.details)} for r in conn.execute(stmt)]
