"""The embedded online store: one SQLite file, nothing to start.

One ``WITHOUT ROWID`` table keyed by (table, entity key) holds every value; the file runs in
WAL mode so lookups never wait for a materialization, and each thread keeps its own
connection. A batch lookup over several feature groups is a single ``SELECT``.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from modelyard.backends.online.base import STAMP_BYTES, OnlineStore
from modelyard.errors import StorageError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS online_values (
    tbl TEXT NOT NULL,
    ekey TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (tbl, ekey)
) WITHOUT ROWID
"""
_UPSERT = (
    "INSERT INTO online_values (tbl, ekey, value) VALUES (?, ?, ?) "
    "ON CONFLICT (tbl, ekey) DO UPDATE SET value = excluded.value "
    f"WHERE substr(excluded.value, 1, {STAMP_BYTES}) >= substr(online_values.value, 1, "
    f"{STAMP_BYTES})"
)
_MAX_VARIABLES = 30_000  # below SQLite's limit of 32,766 bound parameters per statement
_MAX_SELECTS = 500  # SQLite's limit of terms in one compound SELECT (UNION ALL)
_WRITE_BATCH = 20_000


def _retry_locked(action: Callable[[], object], seconds: float = 60.0) -> None:
    """Run ``action``, retrying while another process holds the lock. Switching a new file to
    WAL and creating the table can report "locked" at once, without SQLite's busy wait, when
    several processes open the same brand-new store."""
    deadline = time.monotonic() + seconds
    pause = 0.005
    while True:
        try:
            action()
            return
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if ("locked" not in text and "busy" not in text) or time.monotonic() > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.2)


class SqliteOnlineStore(OnlineStore):
    def __init__(self, path: Path) -> None:
        self.path = path
        self.uri = f"sqlite:///{path}"
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the online store's folder {path.parent}: {exc}",
                               path=str(path)) from exc
        with self._errors("open"):
            conn = self._conn()
            _retry_locked(lambda: conn.execute(_SCHEMA))

    def _conn(self) -> sqlite3.Connection:
        if self._pid != os.getpid():  # a forked child: never reuse the parent's connections
            self._pid, self._local, self._opened = os.getpid(), threading.local(), []
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=60, isolation_level=None,
                                   check_same_thread=False)
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                _retry_locked(lambda: conn.execute("PRAGMA journal_mode = WAL"))
            conn.execute("PRAGMA synchronous = NORMAL")
            self._local.conn = conn
            with self._lock:
                self._opened.append(conn)
        return conn

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise StorageError(f"online store {self.path}: cannot {action}: {exc}",
                               path=str(self.path)) from exc

    def write(self, table: str, rows: Sequence[tuple[str, bytes]]) -> int:
        conn = self._conn()
        written = 0
        with self._errors(f"write to {table}"):
            for start in range(0, len(rows), _WRITE_BATCH):
                batch = rows[start:start + _WRITE_BATCH]
                before = conn.total_changes
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany(_UPSERT, [(table, k, v) for k, v in batch])
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                written += conn.total_changes - before
        return written

    def read(self, requests: Sequence[tuple[str, Sequence[str]]]) -> list[list[bytes | None]]:
        parts: list[str] = []
        params: list[object] = []
        pieces: list[tuple[int, Sequence[str]]] = []
        for index, (_, keys) in enumerate(requests):
            for start in range(0, len(keys), _MAX_VARIABLES - 2):
                chunk = keys[start:start + _MAX_VARIABLES - 2]
                pieces.append((index, chunk))
        found: list[dict[str, bytes]] = [{} for _ in requests]
        conn = self._conn()
        with self._errors("read"):
            batch_vars = 0
            for index, chunk in pieces:
                full = (batch_vars + len(chunk) + 2 > _MAX_VARIABLES
                        or len(parts) >= _MAX_SELECTS)
                if full and parts:
                    self._run(conn, parts, params, found)
                    parts, params, batch_vars = [], [], 0
                marks = ",".join("?" * len(chunk))
                parts.append(f"SELECT {index}, ekey, value FROM online_values "
                             f"WHERE tbl = ? AND ekey IN ({marks})")
                params += [requests[index][0], *chunk]
                batch_vars += len(chunk) + 1
            if parts:
                self._run(conn, parts, params, found)
        return [[hits.get(k) for k in keys] for hits, (_, keys) in zip(found, requests,
                                                                       strict=True)]

    @staticmethod
    def _run(conn: sqlite3.Connection, parts: list[str], params: list[object],
             found: list[dict[str, bytes]]) -> None:
        for index, key, value in conn.execute(" UNION ALL ".join(parts), params):
            found[index][key] = value

    def delete(self, table: str, keys: Sequence[str]) -> int:
        conn = self._conn()
        removed = 0
        with self._errors(f"delete from {table}"):
            conn.execute("BEGIN IMMEDIATE")
            try:
                for start in range(0, len(keys), _MAX_VARIABLES - 1):
                    chunk = keys[start:start + _MAX_VARIABLES - 1]
                    marks = ",".join("?" * len(chunk))
                    cursor = conn.execute(
                        f"DELETE FROM online_values WHERE tbl = ? AND ekey IN ({marks})",
                        [table, *chunk])
                    removed += cursor.rowcount
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return removed

    def keys(self, table: str, limit: int | None = None) -> list[str]:
        sql = "SELECT ekey FROM online_values WHERE tbl = ?"
        params: list[object] = [table]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        with self._errors(f"list {table}"):
            return [row[0] for row in self._conn().execute(sql, params)]

    def count(self, table: str) -> int:
        with self._errors(f"count {table}"):
            row = self._conn().execute(
                "SELECT count(*) FROM online_values WHERE tbl = ?", [table]).fetchone()
        return int(row[0])

    def drop(self, table: str) -> int:
        with self._errors(f"drop {table}"):
            cursor = self._conn().execute("DELETE FROM online_values WHERE tbl = ?", [table])
        return int(cursor.rowcount)

    def ping(self) -> None:
        with self._errors("reach the file"):
            self._conn().execute("SELECT 1").fetchone()

    def close(self) -> None:
        """Close every thread's connection (a later call opens a new one)."""
        with self._lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            conn.close()
        self._local = threading.local()
