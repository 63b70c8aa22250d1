"""Alias moves announced as they commit, where the database can: PostgreSQL's LISTEN/NOTIFY.

:meth:`SqlRegistryStore.move_alias` sends ``NOTIFY modelyard_aliases, '<model>'`` in the
transaction that moves an alias, so it is delivered exactly when the move commits. A model
server holds an :class:`AliasListener` and wakes as soon as one arrives, instead of at its next
poll; on SQLite there is nothing to listen to and the server polls.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

from modelyard.backends.metadata.registry import AliasWatch

if TYPE_CHECKING:
    import sqlalchemy as sa

__all__ = ["CHANNEL", "AliasListener", "alias_listener"]

CHANNEL = "modelyard_aliases"
logger = logging.getLogger("modelyard.serving")


class AliasListener(AliasWatch):
    """A connection that listens for alias moves (reopened after a connection error)."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._conn: Any = None

    def _connect(self) -> Any:
        import psycopg

        conn = psycopg.connect(self._conninfo, autocommit=True)
        conn.execute(f"LISTEN {CHANNEL}")
        return conn

    def wait(self, timeout: float) -> set[str]:
        """The models whose aliases moved within ``timeout`` seconds (empty if none, or if
        the database cannot be reached: the caller polls anyway)."""
        import time

        began = time.monotonic()
        try:
            if self._conn is None:
                self._conn = self._connect()
            moved = {n.payload for n in self._conn.notifies(timeout=timeout, stop_after=1)}
            return moved
        except Exception as exc:  # the server must keep polling whatever happens here
            logger.debug("alias notifications unavailable: %s", exc)
            self.close()
            left = timeout - (time.monotonic() - began)
            if left > 0:
                time.sleep(left)
            return set()

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # closing a broken connection
                self._conn.close()
            self._conn = None


def alias_listener(engine: sa.Engine) -> AliasListener | None:
    """A listener on ``engine``'s database, or None where it cannot notify (SQLite)."""
    if engine.dialect.name != "postgresql":
        return None
    url = engine.url.set(drivername="postgresql")
    return AliasListener(url.render_as_string(hide_password=False))


def notify(conn: sa.Connection, model: str) -> None:
    """Announce, in ``conn``'s transaction, that an alias of ``model`` moved."""
    import sqlalchemy as sa

    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_notify(:channel, :model)"),
                     {"channel": CHANNEL, "model": model})
