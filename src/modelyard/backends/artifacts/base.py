"""The artifact store interface: immutable blobs addressed by their sha256.

Callers hand in bytes or a file and get back the digest; they read by digest and the store
verifies the bytes against it. Nothing else (run ids, paths) reaches the store, so an
S3-compatible implementation needs only these methods: six to store and read, two that garbage
collection lists and deletes with (``iter_blobs``, ``delete``), and two it may refine
(``in_flight``, ``sweep_partial``).

Storing a blob that already exists refreshes its modification time, so that a blob a writer is
about to reference again always looks young to garbage collection's grace period.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from modelyard.backends.s3 import S3Options


@dataclass(frozen=True)
class BlobInfo:
    """A stored blob (or a partial write) as garbage collection sees it."""

    sha256: str  # for a partial write: its name in the store
    size: int
    modified: float  # epoch seconds of the last write (or re-store)


class ArtifactStore(ABC):
    uri: str

    @abstractmethod
    def put_file(self, path: Path) -> tuple[str, int]:
        """Store a file's bytes; return (sha256, size). Atomic: whole or nothing."""

    @abstractmethod
    def put_bytes(self, data: bytes) -> tuple[str, int]: ...

    @abstractmethod
    def exists(self, sha256: str) -> bool: ...

    @abstractmethod
    def open(self, sha256: str) -> BinaryIO:
        """A reader over the blob; raises ArtifactIntegrityError at EOF if the hash differs."""

    @abstractmethod
    def get_bytes(self, sha256: str) -> bytes:
        """The whole blob, verified against its digest."""

    @abstractmethod
    def copy_to(self, sha256: str, dest: Path) -> None:
        """Write the blob to ``dest`` (verified, atomically)."""

    # --- garbage collection ---------------------------------------------------------------

    @abstractmethod
    def iter_blobs(self) -> Iterator[BlobInfo]:
        """Every stored blob, in no particular order."""

    @abstractmethod
    def delete(self, sha256: str, *, unless_modified_after: float) -> bool:
        """Delete the blob unless it was written or stored again after
        ``unless_modified_after`` (epoch seconds), also by a writer racing this call; True if
        it was deleted."""

    def in_flight(self, horizon: float) -> set[str]:
        """Blobs that live writers stored within the last ``horizon`` seconds and may not
        have referenced yet."""
        return set()

    def sweep_partial(self, older_than: float, *, dry_run: bool) -> list[BlobInfo]:
        """Partial writes of writers that are no longer running, untouched since
        ``older_than`` (epoch seconds): removed unless ``dry_run``; the ones found."""
        return []


def artifact_store_from_uri(uri: str, s3: S3Options | None = None) -> ArtifactStore:
    """The store at ``uri``: ``file:///path`` or ``s3://bucket/prefix`` (reached with ``s3``,
    by default the standard AWS environment variables)."""
    from modelyard.errors import ConfigurationError

    if uri.startswith("file://"):
        from modelyard.backends.artifacts.local import LocalArtifactStore

        return LocalArtifactStore(Path(uri[len("file://"):]))
    if uri.startswith("s3://"):
        from modelyard.backends.artifacts.s3 import S3ArtifactStore

        return S3ArtifactStore(uri, s3)
    raise ConfigurationError(
        f"unsupported artifact store URI {uri!r}: use file:///path or s3://bucket/prefix",
        uri=uri)
