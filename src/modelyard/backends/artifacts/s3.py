"""Content-addressed artifacts in an S3-compatible bucket: ``<prefix>/objects/ab/cdef...``.

The same layout and contract as the local store (:mod:`modelyard.backends.artifacts.local`),
through obstore (the Rust ``object_store`` that deltalake uses too, so both read one set of
options, :mod:`modelyard.backends.s3`):

- **Atomic puts.** S3 shows an object only once its upload completes. A file is hashed first,
  so its key is known, then uploaded; a file larger than one part goes up as a multipart
  upload whose bytes are hashed again on the way, and if they no longer match (the file
  changed meanwhile) the upload is aborted: nothing becomes visible. A process killed
  mid-upload leaves an incomplete multipart upload, invisible to readers; a bucket lifecycle
  rule (``AbortIncompleteMultipartUpload``) reclaims its parts.
- **Verified reads.** Every read hashes the bytes and raises ArtifactIntegrityError at the end
  when they do not match the digest; :meth:`S3ArtifactStore.copy_to` writes a temporary file
  and moves it into place only once verified.
- **Garbage collection.** S3 cannot touch an object, so storing a blob that exists uploads it
  again, which renews its modification time: a blob a writer is about to reference looks
  young to garbage collection's grace period. :meth:`S3ArtifactStore.delete` checks the
  modification time just before deleting (S3 has no rename to move it aside first); there is
  no cross-machine in-flight mark: write intents in the metadata store and the grace period
  protect writers in flight.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from modelyard.backends.artifacts.base import ArtifactStore, BlobInfo
from modelyard.backends.s3 import S3Location, S3Options, not_found, s3_error
from modelyard.errors import ArtifactIntegrityError, NotFoundError, StorageError

__all__ = ["S3ArtifactStore"]

_PART = 8 << 20  # multipart part size; smaller files go up in one request
_HEX = frozenset("0123456789abcdef")


class _Changed(Exception):
    """Raised inside an upload's chunk stream to abort it: the file changed."""


class _VerifyingStream(io.RawIOBase):
    """Reads a blob's chunks and checks its sha256 when the end is reached."""

    def __init__(self, chunks: Iterator[Any], expected: str, uri: str) -> None:
        self._chunks = chunks
        self._buffer = memoryview(b"")
        self._hash = hashlib.sha256()
        self._expected = expected
        self._uri = uri

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._buffer:
            try:
                chunk = next(self._chunks)
            except StopIteration:
                if self._hash.hexdigest() != self._expected:
                    raise ArtifactIntegrityError(
                        f"artifact {self._expected} is corrupted: its bytes in {self._uri} "
                        f"hash to {self._hash.hexdigest()}", sha256=self._expected) from None
                return 0
            except Exception as exc:
                raise _storage_error(exc, self._uri,
                                     f"cannot read artifact blob {self._expected}") from exc
            self._buffer = memoryview(bytes(chunk))
            self._hash.update(self._buffer)
        n = min(len(buffer), len(self._buffer))
        buffer[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


def _storage_error(exc: BaseException, uri: str, what: str) -> StorageError:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return s3_error(exc, uri, what) or StorageError(f"{what}: {text}", store=uri)


class S3ArtifactStore(ArtifactStore):
    def __init__(self, uri: str, options: S3Options | None = None) -> None:
        self.location = S3Location(uri, options)
        self.uri = self.location.uri

    def _key(self, sha256: str) -> str:
        if len(sha256) != 64 or not set(sha256) <= _HEX:
            raise NotFoundError(f"{sha256!r} is not a sha256 digest", sha256=sha256)
        return self.location.key("objects", sha256[:2], sha256[2:])

    @contextmanager
    def _calling(self, what: str) -> Iterator[None]:
        try:
            yield
        except (StorageError, NotFoundError):
            raise
        except Exception as exc:
            raise _storage_error(exc, self.uri, what) from exc

    # --- storing --------------------------------------------------------------------------

    def put_file(self, path: Path) -> tuple[str, int]:
        import obstore

        digest = hashlib.sha256()
        size = 0
        with path.open("rb") as src:
            while block := src.read(_PART):
                digest.update(block)
                size += len(block)
        hexd = digest.hexdigest()
        key = self._key(hexd)
        with self._calling("cannot write to the artifact store"):
            if size <= _PART:
                data = path.read_bytes()
                if hashlib.sha256(data).hexdigest() != hexd:
                    raise StorageError(f"{path} changed while it was being stored: nothing "
                                       "was stored", path=str(path))
                obstore.put(self.location.store, key, data)
                return hexd, size
            try:
                obstore.put(self.location.store, key, _chunks_checked(path, hexd),
                            chunk_size=_PART, max_concurrency=4)
            except Exception as exc:
                if _caused_by(exc, _Changed):
                    raise StorageError(f"{path} changed while it was being stored: the "
                                       "upload was aborted", path=str(path)) from exc
                raise
        return hexd, size

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        import obstore

        hexd = hashlib.sha256(data).hexdigest()
        with self._calling("cannot write to the artifact store"):
            obstore.put(self.location.store, self._key(hexd), data, chunk_size=_PART)
        return hexd, len(data)

    # --- reading --------------------------------------------------------------------------

    def exists(self, sha256: str) -> bool:
        import obstore

        key = self._key(sha256)
        try:
            obstore.head(self.location.store, key)
        except Exception as exc:
            if not_found(exc):
                return False
            raise _storage_error(exc, self.uri, f"cannot look up artifact blob {sha256}"
                                 ) from exc
        return True

    def open(self, sha256: str) -> BinaryIO:
        import obstore

        key = self._key(sha256)
        try:
            result = obstore.get(self.location.store, key)
        except Exception as exc:
            if not_found(exc):
                raise NotFoundError(f"artifact blob {sha256} is missing from {self.uri}",
                                    sha256=sha256) from exc
            raise _storage_error(exc, self.uri, f"cannot read artifact blob {sha256}"
                                 ) from exc
        stream = _VerifyingStream(iter(result.stream(min_chunk_size=1 << 20)), sha256,
                                  self.uri)
        return io.BufferedReader(stream, 1 << 20)  # type: ignore[return-value]

    def get_bytes(self, sha256: str) -> bytes:
        with self.open(sha256) as fh:
            return fh.read()

    def copy_to(self, sha256: str, dest: Path) -> None:
        src = self.open(sha256)  # a missing blob fails before anything is written
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
        except OSError as exc:
            src.close()
            raise StorageError(f"cannot copy artifact blob {sha256} to {dest}: "
                               f"{exc.strerror or exc}", path=str(dest)) from exc
        try:
            with os.fdopen(fd, "wb") as out, src:
                while block := src.read(1 << 20):
                    out.write(block)
            os.replace(name, dest)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise

    # --- garbage collection ---------------------------------------------------------------

    def iter_blobs(self) -> Iterator[BlobInfo]:
        import obstore

        prefix = self.location.key("objects") + "/"
        with self._calling("cannot list the artifact store"):
            for chunk in obstore.list(self.location.store, prefix):
                for meta in chunk:
                    name = "".join(str(meta["path"])[len(prefix):].split("/"))
                    if len(name) == 64 and set(name) <= _HEX:
                        yield BlobInfo(name, int(meta["size"]),
                                       meta["last_modified"].timestamp())

    def delete(self, sha256: str, *, unless_modified_after: float) -> bool:
        import obstore

        key = self._key(sha256)
        with self._calling(f"cannot delete artifact blob {sha256}"):
            try:
                meta = obstore.head(self.location.store, key)
            except Exception as exc:
                if not_found(exc):
                    return False
                raise
            if meta["last_modified"].timestamp() > unless_modified_after:
                return False  # stored again since it was listed
            obstore.delete(self.location.store, key)
        return True


def _chunks_checked(path: Path, expected: str) -> Iterator[bytes]:
    """The file's bytes in parts, hashed again; raises (aborting the multipart upload) if
    they no longer hash to ``expected``."""
    digest = hashlib.sha256()
    with path.open("rb") as src:
        while block := src.read(_PART):
            digest.update(block)
            yield block
    if digest.hexdigest() != expected:
        raise _Changed(str(path))


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind) or kind.__name__ in str(current):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False
