"""The artifact store interface: immutable blobs addressed by their sha256.

Callers hand in bytes or a file and get back the digest; they read by digest and the store
verifies the bytes against it. Nothing else (run ids, paths) reaches the store, so an
S3-compatible implementation needs only these methods.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import BinaryIO


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


def artifact_store_from_uri(uri: str) -> ArtifactStore:
    from modelyard.errors import ConfigurationError

    if uri.startswith("file://"):
        from modelyard.backends.artifacts.local import LocalArtifactStore

        return LocalArtifactStore(Path(uri[len("file://"):]))
    raise ConfigurationError(
        f"unsupported artifact store URI {uri!r}: use file:///path "
        "(S3-compatible stores are planned)"
    )
