"""In-flight marks: what a live writer is storing and has not yet recorded anywhere.

A mark is a small file ``<folder>/<pid>-<random>.mark`` listing names (blob digests, table
names), one a line, whose writer holds an exclusive ``flock`` on it for as long as the mark
lasts. The kernel drops the lock when the process dies, however it dies, so a reader tells a
live writer's mark from a dead one's by trying the lock: :func:`held` returns the names of
live marks and removes dead ones. Marks are written before the data, so that garbage
collection, which reads them after listing candidates, never takes what a writer is about to
reference.

Two scopes: :func:`hold` marks names for the duration of a ``with`` block (an ingestion);
:class:`ProcessMarks` keeps appending to one mark that lasts until the process exits (the
artifact store: it cannot know when the caller records the blob it stored). Each line carries
the time it was written, and :func:`held` counts only lines younger than ``horizon``.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
import uuid
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

__all__ = ["ProcessMarks", "held", "hold"]

_SUFFIX = ".mark"


def _open_mark(folder: Path) -> tuple[IO[str], Path]:
    """A new mark file, locked before it takes its final name (so no reader ever sees an
    unlocked mark of a live writer)."""
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{os.getpid()}-{uuid.uuid4().hex}"
    partial = folder / f".{name}"
    fh = open(partial, "a", encoding="utf-8")  # noqa: SIM115 - held open while the mark lasts
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        final = folder / f"{name}{_SUFFIX}"
        os.replace(partial, final)
    except BaseException:
        fh.close()
        partial.unlink(missing_ok=True)
        raise
    return fh, final


def _write(fh: IO[str], names: Iterable[str]) -> None:
    now = f"{time.time():.3f}"
    fh.write("".join(f"{name} {now}\n" for name in names))
    fh.flush()


@contextmanager
def hold(folder: Path, names: Iterable[str]) -> Iterator[None]:
    """Mark ``names`` as in flight while the block runs."""
    fh, path = _open_mark(folder)
    try:
        _write(fh, names)
        yield
    finally:
        path.unlink(missing_ok=True)
        fh.close()


def _release(fh: IO[str], path: Path, pid: int) -> None:
    if pid == os.getpid():
        path.unlink(missing_ok=True)
    fh.close()


class ProcessMarks:
    """One mark per process and owner, appended to and held until the owner (an artifact
    store) is closed or garbage-collected, or the process exits."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._fh: IO[str] | None = None
        self._path: Path | None = None
        self._pid = -1
        self._marked: set[str] = set()
        self._finalizer: weakref.finalize[Any, Any] | None = None

    def add(self, name: str) -> None:
        """Mark ``name`` (once per process; a later call refreshes nothing)."""
        with self._lock:
            if self._pid != os.getpid():  # first use, or a forked child: a mark of its own
                self._fh, self._pid, self._marked = None, os.getpid(), set()
            if name in self._marked:
                return
            if self._fh is None:
                self._fh, self._path = _open_mark(self.folder)
                self._finalizer = weakref.finalize(self, _release, self._fh, self._path,
                                                   self._pid)
            _write(self._fh, [name])
            self._marked.add(name)

    def close(self) -> None:
        with self._lock:
            if self._finalizer is not None:
                self._finalizer()
            self._fh, self._finalizer, self._marked = None, None, set()


def held(folder: Path, horizon: float | None = None) -> set[str]:
    """Names in the marks of live writers (lines younger than ``horizon`` seconds, when
    given); the marks of dead writers are removed."""
    names: set[str] = set()
    if not folder.is_dir():
        return names
    cutoff = None if horizon is None else time.time() - horizon
    for entry in os.scandir(folder):
        if not entry.name.endswith(_SUFFIX):
            continue
        try:
            fh = open(entry.path, encoding="utf-8")  # noqa: SIM115
        except FileNotFoundError:
            continue  # released meanwhile
        with fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:  # a live writer holds it: read what it marked
                for line in fh.read().splitlines():
                    name, _, stamp = line.partition(" ")
                    with suppress(ValueError):
                        if cutoff is None or float(stamp) >= cutoff:
                            names.add(name)
                continue
            with suppress(OSError):  # its writer died: nothing is in flight
                os.unlink(entry.path)
    return names
