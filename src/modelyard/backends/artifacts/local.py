"""Content-addressed artifacts on the local disk: ``objects/ab/cdef...`` by sha256.

Writes go to a temporary file in the same folder, are fsync'ed, then renamed into place, so a
killed process leaves either the whole blob or none. Two writers of the same content race
harmlessly: both renames install identical bytes.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from modelyard.backends.artifacts.base import ArtifactStore
from modelyard.errors import ArtifactIntegrityError, NotFoundError, StorageError

_BLOCK = 1 << 20


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


class LocalArtifactStore(ArtifactStore):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.uri = f"file://{root}"
        self._objects = root / "objects"
        self._tmp = root / "tmp"

    def _path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise NotFoundError(f"{sha256!r} is not a sha256 digest", sha256=sha256)
        return self._objects / sha256[:2] / sha256[2:]

    def _install(self, tmp_path: Path, digest: str) -> None:
        final = self._path(digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp_path, final)

    def _new_tmp(self) -> tuple[int, Path]:
        try:
            self._tmp.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=self._tmp, prefix="put-")
        except OSError as exc:
            raise StorageError(
                f"cannot write to the artifact store {self.root}: {exc.strerror or exc}",
                path=str(self.root),
            ) from exc
        return fd, Path(name)

    def put_file(self, path: Path) -> tuple[str, int]:
        fd, tmp = self._new_tmp()
        digest = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as out, path.open("rb") as src:
                while block := src.read(_BLOCK):
                    digest.update(block)
                    out.write(block)
                    size += len(block)
                out.flush()
                os.fsync(out.fileno())
            hexd = digest.hexdigest()
            if self.exists(hexd):
                tmp.unlink()
            else:
                self._install(tmp, hexd)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return hexd, size

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        hexd = hashlib.sha256(data).hexdigest()
        if self.exists(hexd):
            return hexd, len(data)
        fd, tmp = self._new_tmp()
        try:
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
        return io.BufferedReader(_VerifyingReader(fh, sha256), _BLOCK)  # type: ignore[return-value]

    def get_bytes(self, sha256: str) -> bytes:
        with self.open(sha256) as fh:
            return fh.read()

    def copy_to(self, sha256: str, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
        try:
            with os.fdopen(fd, "wb") as out, self.open(sha256) as src:
                while block := src.read(_BLOCK):
                    out.write(block)
            os.replace(name, dest)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
