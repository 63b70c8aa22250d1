"""Users, API tokens and role grants on SQLAlchemy (SQLite and PostgreSQL): tables
``users``, ``api_tokens`` and ``role_grants`` (migration 0013)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from modelyard.backends.metadata.identities import (
    GrantRecord,
    IdentityStore,
    TokenRecord,
    UserRecord,
)
from modelyard.backends.metadata.sql import tables as t
from modelyard.backends.metadata.sql.engine import (
    dialect_insert,
    ensure_schema,
    read_connection,
    translate_errors,
)
from modelyard.errors import AlreadyExistsError, NotFoundError

__all__ = ["SqlIdentityStore"]

TOUCH_EVERY_MS = 60_000  # a token's last use is written at most this often


def _user(row: Any) -> UserRecord:
    return UserRecord(**row._mapping)


def _token(row: Any) -> TokenRecord:
    data = dict(row._mapping)
    data["user"] = data.pop("user_name")
    return TokenRecord(**data)


def _grant(row: Any) -> GrantRecord:
    data = dict(row._mapping)
    data["user"] = data.pop("user_name")
    return GrantRecord(**data)


class SqlIdentityStore(IdentityStore):
    def __init__(self, engine: Engine, *, migrate: bool = True) -> None:
        self.engine = engine
        if migrate:
            ensure_schema(engine)

    # --- users ------------------------------------------------------------------------------

    @translate_errors
    def add_user(self, record: UserRecord) -> None:
        stmt = dialect_insert(self.engine, t.users).values(**record.__dict__)
        with self.engine.begin() as conn:
            done = conn.execute(stmt.on_conflict_do_nothing(index_elements=["name"])
                                .returning(t.users.c.name)).first()
        if done is None:  # (rowcount is -1 on PostgreSQL whether or not it inserted)
            raise AlreadyExistsError(f"user {record.name!r} exists already", user=record.name)

    @translate_errors
    def get_user(self, name: str) -> UserRecord | None:
        with read_connection(self.engine) as conn:
            row = conn.execute(sa.select(t.users).where(t.users.c.name == name)).first()
        return None if row is None else _user(row)

    @translate_errors
    def list_users(self) -> list[UserRecord]:
        with read_connection(self.engine) as conn:
            rows = conn.execute(sa.select(t.users).order_by(t.users.c.name)).all()
        return [_user(r) for r in rows]

    @translate_errors
    def disable_user(self, name: str, at_ms: int) -> bool:
        u, k = t.users.c, t.api_tokens.c
        with self.engine.begin() as conn:
            done = conn.execute(sa.update(t.users).where(u.name == name)
                                .values(disabled_at_ms=sa.func.coalesce(u.disabled_at_ms,
                                                                        at_ms)))
            conn.execute(sa.update(t.api_tokens)
                         .where(k.user_name == name, k.revoked_at_ms.is_(None))
                         .values(revoked_at_ms=at_ms))
        return bool(done.rowcount)

    # --- tokens -----------------------------------------------------------------------------

    @translate_errors
    def add_token(self, record: TokenRecord) -> None:
        row = dict(record.__dict__)
        row["user_name"] = row.pop("user")
        with self.engine.begin() as conn:
            if conn.execute(sa.select(t.users.c.name)
                            .where(t.users.c.name == record.user)).first() is None:
                raise NotFoundError(f"no user {record.user!r}; create it first "
                                    "(modelyard users create)", user=record.user)
            conn.execute(sa.insert(t.api_tokens).values(**row))

    @translate_errors
    def get_token(self, token_id: str) -> TokenRecord | None:
        with read_connection(self.engine) as conn:
            row = conn.execute(sa.select(t.api_tokens)
                               .where(t.api_tokens.c.token_id == token_id)).first()
        return None if row is None else _token(row)

    @translate_errors
    def list_tokens(self, user: str | None = None) -> list[TokenRecord]:
        k = t.api_tokens.c
        stmt = sa.select(t.api_tokens).order_by(k.created_at_ms.desc(), k.token_id)
        if user is not None:
            stmt = stmt.where(k.user_name == user)
        with read_connection(self.engine) as conn:
            rows = conn.execute(stmt).all()
        return [_token(r) for r in rows]

    @translate_errors
    def revoke_token(self, token_id: str, at_ms: int) -> bool:
        k = t.api_tokens.c
        with self.engine.begin() as conn:
            done = conn.execute(sa.update(t.api_tokens)
                                .where(k.token_id == token_id, k.revoked_at_ms.is_(None))
                                .values(revoked_at_ms=at_ms))
        return bool(done.rowcount)

    @translate_errors
    def touch_token(self, token_id: str, at_ms: int) -> None:
        k = t.api_tokens.c
        with self.engine.begin() as conn:
            conn.execute(sa.update(t.api_tokens)
                         .where(k.token_id == token_id,
                                sa.or_(k.last_used_ms.is_(None),
                                       k.last_used_ms < at_ms - TOUCH_EVERY_MS))
                         .values(last_used_ms=at_ms))

    # --- grants -----------------------------------------------------------------------------

    @translate_errors
    def grant(self, record: GrantRecord) -> bool:
        row = dict(record.__dict__)
        row["user_name"] = row.pop("user")
        stmt = dialect_insert(self.engine, t.role_grants).values(**row)
        with self.engine.begin() as conn:
            if conn.execute(sa.select(t.users.c.name)
                            .where(t.users.c.name == record.user)).first() is None:
                raise NotFoundError(f"no user {record.user!r}; create it first "
                                    "(modelyard users create)", user=record.user)
            done = conn.execute(stmt.on_conflict_do_nothing(
                index_elements=["user_name", "project", "environment", "role"])
                .returning(t.role_grants.c.role)).first()
        return done is not None

    @translate_errors
    def revoke_grant(self, user: str, project: str, environment: str, role: str) -> bool:
        g = t.role_grants.c
        with self.engine.begin() as conn:
            done = conn.execute(sa.delete(t.role_grants).where(
                g.user_name == user, g.project == project, g.environment == environment,
                g.role == role))
        return bool(done.rowcount)

    @translate_errors
    def grants(self, user: str | None = None, project: str | None = None
               ) -> list[GrantRecord]:
        g = t.role_grants.c
        stmt = sa.select(t.role_grants).order_by(g.user_name, g.project, g.environment,
                                                  g.role)
        if user is not None:
            stmt = stmt.where(g.user_name == user)
        if project is not None:
            stmt = stmt.where(g.project.in_([project, "*"]))
        with read_connection(self.engine) as conn:
            rows = conn.execute(stmt).all()
        return [_grant(r) for r in rows]
