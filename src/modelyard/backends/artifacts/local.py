"""Content-addressed artifacts on the local disk: ``objects/ab/cdef...`` by sha256.

Writes go to a temporary file in ``tmp/``, are fsync'ed, then renamed into place, so a
killed process leaves either the whole blob or none (plus, at worst, a ``tmp/put-*`` file that
garbage collection sweeps). Two writers of the same content race harmlessly: both renames
install identical bytes. Storing a blob that exists already refreshes its modification time.

Each process marks the blobs it stores in ``inflight/`` (see :mod:`modelyard.backends.inflight`)
before it stores them, so garbage collection leaves them alone while the process lives; and
:meth:`LocalArtifactStore.delete` moves a blob aside before checking that no writer stored it
again meanwhile, so a blob re-stored during a collection is kept.

Out of space, read-only, refused or out of file handles: a clear StorageError naming the store,
and no partial blob (:mod:`modelyard.backends.resources`).
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

from modelyard.backends.artifacts.base import ArtifactStore, BlobInfo
from modelyard.backends.inflight import ProcessMarks, held
from modelyard.backends.resources import resource_error
from modelyard.errors import ArtifactIntegrityError, NotFoundError, StorageError

_BLOCK = 1 << 20
_HEX = frozenset("0123456789abcdef")


class _VerifyingReader(io.RawIOBase):
    """Reads a blob and checks its sha256 when the end is reached."""

    def __init__(self, fh: BinaryIO, expected: str) -> None:
        self._fh = fh
        self._hash = hashlib.sha256()
        self._expected = expected

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = self._fh.readinto(buffer)  # type: ignore[attr-defined]
        if n:
            self._hash.update(buffer[:n])
        elif self._hash.hexdigest() != self._expected:
            raise ArtifactIntegrityError(
                f"artifact {self._expected} is corrupted: its bytes hash to "
                f"{self._hash.hexdigest()}",
                sha256=self._expected,
            )
        return int(n or 0)

    def close(self) -> None:
        self._fh.close()
        super().close()


def _writer_lives(name: str) -> bool:
    """Whether the process that made the temporary file ``put-<pid>-...`` still runs."""
    pid = name.split("-")[1]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LocalArtifactStore(ArtifactStore):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.uri = f"file://{root}"
        self._objects = root / "objects"
        self._tmp = root / "tmp"
        self._marks = ProcessMarks(root / "inflight")

    def _path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise NotFoundError(f"{sha256!r} is not a sha256 digest", sha256=sha256)
        return self._objects / sha256[:2] / sha256[2:]

    def _install(self, tmp_path: Path, digest: str) -> None:
        final = self._path(digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp_path, final)

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Turn a failed write into a StorageError that says what ran out and where."""
        try:
            yield
        except OSError as exc:
            raise (resource_error(exc, self.root, "cannot write to the artifact store")
                   or StorageError(f"cannot write to the artifact store {self.root}: "
                                   f"{exc.strerror or exc}", path=str(self.root))) from exc

    def _new_tmp(self) -> tuple[int, Path]:
        with self._writing():
            self._tmp.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=self._tmp, prefix=f"put-{os.getpid()}-")
        return fd, Path(name)

    def _refresh(self, digest: str) -> bool:
        """Touch an existing blob (so it looks freshly stored); False if there is none."""
        try:
            os.utime(self._path(digest))
        except FileNotFoundError:
            return False
        return True

    def put_file(self, path: Path) -> tuple[str, int]:
        fd, tmp = self._new_tmp()
        digest = hashlib.sha256()
        size = 0
        try:
            with self._writing():
                with os.fdopen(fd, "wb") as out, path.open("rb") as src:
                    while block := src.read(_BLOCK):
                        digest.update(block)
                        out.write(block)
                        size += len(block)
                    out.flush()
                    os.fsync(out.fileno())
                hexd = digest.hexdigest()
                self._marks.add(hexd)
                if self._refresh(hexd):
                    tmp.unlink()
                else:
                    self._install(tmp, hexd)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return hexd, size

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        hexd = hashlib.sha256(data).hexdigest()
        with self._writing():
            self._marks.add(hexd)
            if self._refresh(hexd):
                return hexd, len(data)
        fd, tmp = self._new_tmp()
        try:
            with self._writing():
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                self._install(tmp, hexd)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return hexd, len(data)

    def exists(self, sha256: str) -> bool:
        return self._path(sha256).is_file()

    def open(self, sha256: str) -> BinaryIO:
        path = self._path(sha256)
        try:
            fh = path.open("rb")
        except FileNotFoundError as exc:
            raise NotFoundError(f"artifact blob {sha256} is missing from {self.root}",
                                sha256=sha256) from exc
        except OSError as exc:
            raise (resource_error(exc, path, f"cannot read artifact blob {sha256}")
                   or StorageError(f"cannot read artifact blob {sha256}: "
                                   f"{exc.strerror or exc}", path=str(path))) from exc
        return io.BufferedReader(_VerifyingReader(fh, sha256), _BLOCK)  # type: ignore[return-value]

    def get_bytes(self, sha256: str) -> bytes:
        with self.open(sha256) as fh:
            return fh.read()

    def copy_to(self, sha256: str, dest: Path) -> None:
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
        except OSError as exc:
            raise (resource_error(exc, dest.parent, f"cannot copy artifact blob {sha256}")
                   or StorageError(f"cannot copy artifact blob {sha256} to {dest}: "
                                   f"{exc.strerror or exc}", path=str(dest))) from exc
        try:
            with os.fdopen(fd, "wb") as out, self.open(sha256) as src:
                while block := src.read(_BLOCK):
                    out.write(block)
            os.replace(name, dest)
        except OSError as exc:
            Path(name).unlink(missing_ok=True)
            raise (resource_error(exc, dest.parent, f"cannot copy artifact blob {sha256}")
                   or StorageError(f"cannot copy artifact blob {sha256} to {dest}: "
                                   f"{exc.strerror or exc}", path=str(dest))) from exc
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise

    # --- garbage collection ---------------------------------------------------------------

    def iter_blobs(self) -> Iterator[BlobInfo]:
        if not self._objects.is_dir():
            return
        for prefix in os.scandir(self._objects):
            if len(prefix.name) != 2 or not prefix.is_dir():
                continue
            for entry in os.scandir(prefix.path):
                name = prefix.name + entry.name
                if len(name) != 64 or not set(name) <= _HEX:
                    continue
                with suppress(FileNotFoundError):  # deleted meanwhile
                    st = entry.stat()
                    yield BlobInfo(name, st.st_size, st.st_mtime)

    def delete(self, sha256: str, *, unless_modified_after: float) -> bool:
        path = self._path(sha256)
        aside = self._tmp / f"gc-{os.getpid()}-{uuid.uuid4().hex}"
        with self._writing():
            self._tmp.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(path, aside)  # a writer touching it from now on stores it anew
            except FileNotFoundError:
                return False
            if os.stat(aside).st_mtime > unless_modified_after:  # stored again just before
                os.replace(aside, path)
                return False
            os.unlink(aside)
        return True  # prefix folders stay: a writer may be about to install into one

    def in_flight(self, horizon: float) -> set[str]:
        return held(self.root / "inflight", horizon)

    def sweep_partial(self, older_than: float, *, dry_run: bool) -> list[BlobInfo]:
        found: list[BlobInfo] = []
        if not self._tmp.is_dir():
            return found
        for entry in os.scandir(self._tmp):
            if not entry.name.startswith(("put-", "gc-")) or _writer_lives(entry.name):
                continue
            with suppress(FileNotFoundError):
                st = entry.stat()
                if st.st_mtime >= older_than:
                    continue
                if not dry_run:
                    os.unlink(entry.path)
                found.append(BlobInfo(entry.name, st.st_size, st.st_mtime))
        return found
