"""Engines for the metadata store, and migrations that many processes may start at once.

SQLite runs in WAL mode; every write transaction starts with ``BEGIN IMMEDIATE`` so two
writers queue on the busy timeout instead of dead-locking on a lock upgrade. Migrations take
an exclusive lock first (a lock file beside a SQLite database, an advisory lock on
PostgreSQL), then check the schema version again, so N processes opening a brand-new project
at once run the migration exactly once.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from modelyard.backends.metadata.sql.migrations import HEAD, SCHEMA_REVISIONS, VERSION_TABLE
from modelyard.backends.resources import resource_error
from modelyard.errors import (
    ConfigurationError,
    ModelyardError,
    SchemaVersionError,
    StorageError,
)

BUSY_TIMEOUT_S = 60.0
_PG_MIGRATION_LOCK = 0x6D6F64656C79  # "modely"

P = ParamSpec("P")
R = TypeVar("R")


def translate_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn driver errors into StorageError so callers see one hierarchy."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except ModelyardError:
            raise
        except sa.exc.SQLAlchemyError as exc:
            orig = getattr(exc, "orig", None) or exc
            clear = resource_error(orig, "the metadata database", "cannot write metadata")
            raise (clear or StorageError(f"metadata store error: {orig}")) from exc

    return wrapper


def sqlite_path(uri: str) -> Path | None:
    url = sa.engine.make_url(uri)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def _check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-probe-{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise StorageError(
            f"the project data folder {folder} is not writable: {exc.strerror or exc}",
            path=str(folder),
        ) from exc


def make_engine(uri: str) -> Engine:
    try:
        url = sa.engine.make_url(uri)
    except sa.exc.ArgumentError as exc:
        raise ConfigurationError(f"metadata store URI {uri!r} is not a valid URI") from exc
    backend = url.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url)
    if backend == "postgresql":
        if url.drivername == "postgresql":
            try:
                import psycopg  # noqa: F401
            except ImportError as exc:
                raise ConfigurationError(
                    "a postgresql:// store needs the PostgreSQL driver: "
                    "pip install 'modelyard[postgres]'"
                ) from exc
            url = url.set(drivername="postgresql+psycopg")
        return sa.create_engine(url, pool_pre_ping=True, pool_size=4, max_overflow=8)
    raise ConfigurationError(
        f"unsupported metadata store URI scheme {url.drivername!r}: "
        "use sqlite:///path.db or postgresql://user@host/db"
    )


def _sqlite_engine(url: sa.URL) -> Engine:
    if url.database and url.database != ":memory:":
        _check_writable(Path(url.database).parent)
    engine = sa.create_engine(
        url,
        connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False},
        poolclass=sa.pool.QueuePool if url.database != ":memory:" else sa.pool.StaticPool,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute("PRAGMA case_sensitive_like = ON")  # LIKE as on PostgreSQL; ILIKE ignores case
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        read_only = conn.get_execution_options().get("modelyard_read_only", False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def _stored_revision(conn: Connection) -> str | None:
    if not sa.inspect(conn).has_table(VERSION_TABLE):
        return None
    row = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).first()
    return None if row is None else str(row[0])


def _check_known(revision: str | None, where: str) -> None:
    if revision is not None and revision not in SCHEMA_REVISIONS:
        raise SchemaVersionError(
            f"the metadata store at {where} has schema version {revision!r}, which this "
            f"modelyard does not know (newest known: {HEAD!r}); upgrade modelyard to use it",
            revision=revision,
        )


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    if engine.dialect.name == "sqlite":
        from filelock import FileLock

        db = engine.url.database
        if not db or db == ":memory:":
            yield
            return
        with FileLock(f"{db}.migrate.lock", timeout=BUSY_TIMEOUT_S * 2):
            yield
    else:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"),
                             {"k": _PG_MIGRATION_LOCK})
                conn.commit()


def ensure_schema(engine: Engine) -> None:
    """Bring the schema to HEAD, once, even with many processes starting together."""
    where = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect().execution_options(modelyard_read_only=True) as conn:
            current = _stored_revision(conn)
        _check_known(current, where)
        if current == HEAD:
            return
        with _migration_lock(engine), engine.begin() as conn:
            current = _stored_revision(conn)
            _check_known(current, where)
            if current != HEAD:
                _upgrade(conn)
    except ModelyardError:
        raise
    except sa.exc.SQLAlchemyError as exc:
        raise StorageError(
            f"cannot open the metadata store at {where}: {getattr(exc, 'orig', exc)}"
        ) from exc


@dataclass(frozen=True)
class StoreStatus:
    """What a read-only look at a metadata store finds (``modelyard doctor``)."""

    uri: str  # password hidden
    backend: str
    server_version: str
    revision: str | None  # None: schema not created yet
    head: str


def describe_store(engine: Engine) -> StoreStatus:
    """Backend, server version and schema revision, without creating or migrating anything."""
    where = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect().execution_options(modelyard_read_only=True) as conn:
            info = conn.dialect.server_version_info or ()
            revision = _stored_revision(conn)
    except sa.exc.SQLAlchemyError as exc:
        raise StorageError(
            f"cannot open the metadata store at {where}: {getattr(exc, 'orig', None) or exc}"
        ) from exc
    backend = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}.get(engine.dialect.name,
                                                                    engine.dialect.name)
    return StoreStatus(where, backend, ".".join(str(p) for p in info), revision, HEAD)


def _upgrade(conn: Connection) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, HEAD)


def dialect_insert(engine: sa.Engine, table: sa.Table) -> Any:
    """The dialect's INSERT, which has ON CONFLICT (imported only for the dialect used)."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


def read_connection(engine: sa.Engine) -> sa.Connection:
    """A connection for reads only: on SQLite it neither takes the write lock nor waits."""
    return engine.connect().execution_options(modelyard_read_only=True)
