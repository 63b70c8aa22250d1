"""Clear errors for the resources a file store runs out of: space, write access, file handles.

:func:`resource_error` recognises a full disk (``ENOSPC``, ``EDQUOT``), a read-only file system
(``EROFS``), a refused permission (``EACCES``, ``EPERM``) and too many open files (``EMFILE``,
``ENFILE``), from an ``OSError`` or from the text of a library's error (the Delta Lake writer
reports ``... (os error 28)``), and turns it into a :class:`StorageError` that says which
resource, where, and what to do; ``details`` carry ``reason`` (the errno name) and ``path``.

:func:`check_writable` is the cheap check a writer makes before handing a batch to a library
that does not fail cleanly: it probes the folder with a temporary file and compares the free
space with what the write may need; :func:`check_handles` checks that the process can still
open files, before a library call that panics when it cannot.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

from modelyard.errors import StorageError

__all__ = ["check_handles", "check_writable", "resource_errno", "resource_error"]

_ADVICE = {
    errno.ENOSPC: ("the disk is full",
                   "free space on that disk (`modelyard gc` removes unreferenced data) or "
                   "move the store to a larger one"),
    errno.EDQUOT: ("the disk quota is exhausted",
                   "free space within the quota (`modelyard gc` removes unreferenced data) "
                   "or ask for a larger quota"),
    errno.EROFS: ("the file system is read-only",
                  "remount it read-write or point the store at a writable folder"),
    errno.EACCES: ("permission denied",
                   "give this user write access to the folder (owner or mode), or point the "
                   "store at a folder it may write"),
    errno.EPERM: ("operation not permitted",
                  "give this user write access to the folder, or point the store elsewhere"),
    errno.EMFILE: ("too many open files",
                   "raise the process's limit (`ulimit -n`) or close unused connections"),
    errno.ENFILE: ("too many open files on the system",
                   "raise the system's limit (fs.file-max) or close other programs"),
}
# what libraries that do not raise OSError say (Rust's io::Error texts, SQLite's)
_TEXTS = (
    ("no space left on device", errno.ENOSPC), ("os error 28)", errno.ENOSPC),
    ("database or disk is full", errno.ENOSPC), ("disk quota exceeded", errno.EDQUOT),
    ("read-only file system", errno.EROFS), ("os error 30)", errno.EROFS),
    ("attempt to write a readonly database", errno.EROFS),
    ("permission denied", errno.EACCES), ("os error 13)", errno.EACCES),
    ("too many open files", errno.EMFILE), ("os error 24)", errno.EMFILE),
)
_MARGIN = 1 << 20  # room kept beyond a write's estimate: metadata, log entries
# file handles a Delta call needs beyond its files: its IO runtime's (epoll, wakers), which
# it cannot create without panicking when the process is out of handles
_HANDLES = 16


def resource_errno(exc: BaseException) -> int | None:
    """The errno of a resource problem behind ``exc`` (or its causes), else None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _ADVICE:
            return current.errno
        text = str(current).lower()
        for needle, code in _TEXTS:
            if needle in text:
                return code
        current = current.__cause__ or current.__context__
    return None


def resource_error(exc: BaseException, where: Path | str, what: str) -> StorageError | None:
    """A clear StorageError when ``exc`` is a resource problem, else None.

    ``what`` names the operation (``"cannot write offline table 'claims'"``), ``where`` the
    folder or file concerned.
    """
    code = resource_errno(exc)
    if code is None:
        return None
    problem, advice = _ADVICE[code]
    return StorageError(f"{what}: {problem} at {where}; {advice}",
                        reason=errno.errorcode[code], path=str(where))


def check_handles(where: Path | str, what: str) -> None:
    """Raise a clear StorageError unless the process can open a few more files (a Delta
    table cannot even be opened without them, and says so with a panic)."""
    opened: list[int] = []
    try:
        for _ in range(_HANDLES):
            opened.append(os.open(os.devnull, os.O_RDONLY))
    except OSError as exc:
        raise (resource_error(exc, where, what)
               or StorageError(f"{what}: {exc.strerror or exc}", path=str(where))) from exc
    finally:
        for fd in opened:
            os.close(fd)


def check_writable(folder: Path, need: int, what: str) -> None:
    """Raise a clear StorageError unless ``folder`` (created if missing) takes a new file
    and has room for ``need`` bytes plus a small margin."""
    check_handles(folder, what)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=folder, prefix=".probe-")
        os.close(fd)
        os.unlink(name)
        free = shutil.disk_usage(folder).free
    except OSError as exc:
        raise (resource_error(exc, folder, what)
               or StorageError(f"{what}: {exc.strerror or exc} at {folder}",
                               path=str(folder))) from exc
    if need + _MARGIN > free:
        raise StorageError(
            f"{what}: the disk is full at {folder}: the write needs up to "
            f"{_mb(need + _MARGIN)} and {_mb(free)} are free; free space on that disk "
            "(`modelyard gc` removes unreferenced data) or move the store to a larger one",
            reason="ENOSPC", path=str(folder), needed=need, free=free)


def _mb(size: int) -> str:
    return f"{size / 1e6:,.1f} MB"
