"""Artifacts kept by a modelyard server, streamed both ways with their sha256 checked at
both ends.

An upload hashes the file first and names the digest in the request path; the server hashes
what arrives and stores the blob only when the digests agree and the body arrived whole (a
dropped connection or a wrong digest stores nothing). A download streams to a temporary
file beside the destination, hashes as it reads, and renames only when the digest matches.
Garbage collection runs on the server, over its own store.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from modelyard.backends.artifacts.base import ArtifactStore, BlobInfo
from modelyard.errors import ArtifactIntegrityError, ConfigurationError, NotFoundError

if TYPE_CHECKING:
    import httpx

    from modelyard.backends.metadata.rest.connection import RestConnection

__all__ = ["RestArtifactStore"]

_BLOCK = 1 << 20


def _check(sha256: str) -> str:
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise NotFoundError(f"{sha256!r} is not a sha256 digest", sha256=sha256)
    return sha256


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while block := fh.read(_BLOCK):
            yield block


class _VerifyingStream(io.RawIOBase):
    """Reads a streamed answer and checks the digest when the end is reached."""

    def __init__(self, chunks: Iterator[bytes], expected: str,
                 response: httpx.Response) -> None:
        self._chunks = chunks
        self._left = b""
        self._hash = hashlib.sha256()
        self._expected = expected
        self._response = response

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._left:
            chunk = next(self._chunks, None)
            if chunk is None:
                if self._hash.hexdigest() != self._expected:
                    raise _mismatch(self._expected, self._hash.hexdigest())
                return 0
            self._hash.update(chunk)
            self._left = chunk
        n = min(len(buffer), len(self._left))
        buffer[:n] = self._left[:n]
        self._left = self._left[n:]
        return n

    def close(self) -> None:
        self._response.close()
        super().close()


def _mismatch(expected: str, got: str) -> ArtifactIntegrityError:
    return ArtifactIntegrityError(
        f"artifact {expected} arrived corrupted from the server: its bytes hash to {got}",
        sha256=expected)


class RestArtifactStore(ArtifactStore):
    def __init__(self, connection: RestConnection) -> None:
        self.http = connection
        self.uri = connection.uri

    def put_file(self, path: Path) -> tuple[str, int]:
        digest = hashlib.sha256()
        size = 0
        for block in _file_chunks(path):
            digest.update(block)
            size += len(block)
        sha = digest.hexdigest()
        self.http.upload(f"/artifacts/{sha}", lambda: _file_chunks(path),
                         {"Content-Type": "application/octet-stream",
                          "Content-Length": str(size)})
        return sha, size

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        sha = hashlib.sha256(data).hexdigest()
        self.http.upload(f"/artifacts/{sha}", bytes(data),
                         {"Content-Type": "application/octet-stream"})
        return sha, len(data)

    def exists(self, sha256: str) -> bool:
        return bool(self.http.call("GET", f"/artifacts/{_check(sha256)}/exists"))

    def open(self, sha256: str) -> BinaryIO:
        response = self.http.download(f"/artifacts/{_check(sha256)}")
        raw = _VerifyingStream(response.iter_bytes(_BLOCK), sha256, response)
        return io.BufferedReader(raw, _BLOCK)  # type: ignore[return-value]

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

    def iter_blobs(self) -> Iterator[BlobInfo]:
        raise self._on_server()

    def delete(self, sha256: str, *, unless_modified_after: float) -> bool:
        raise self._on_server()

    def _on_server(self) -> ConfigurationError:
        return ConfigurationError(f"garbage collection of {self.uri}'s artifacts runs on the "
                                  "server: `modelyard gc` there", uri=self.uri)
