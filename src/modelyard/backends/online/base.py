"""The online store interface: one small contract that SQLite and Redis implement alike.

An online store keeps, per *table* (one feature group version, named ``group@vN``) and per
entity key (a string), one value: bytes that the feature service encodes. Every value starts
with a 16-character lower-case hexadecimal **stamp** (the microsecond instant it was computed
as of). A write replaces a stored value only when its stamp is not older than the stored
one's, so a slow materialization can never overwrite fresher pushed values, and writing the
same rows twice changes nothing.

Reads of many tables and many keys are one round trip to the store.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from urllib.parse import parse_qs, urlsplit

from modelyard.errors import ConfigurationError, InvalidInputError

__all__ = ["STAMP_BYTES", "OnlineStore", "online_store_from_uri", "stamp"]

STAMP_BYTES = 16


def stamp(at_us: int) -> bytes:
    """The value prefix for an instant in microseconds since the epoch."""
    if not 0 <= at_us < 16**STAMP_BYTES:
        raise InvalidInputError(f"stamp {at_us} is out of range", field="at")
    return b"%016x" % at_us


class OnlineStore(ABC):
    """Latest values per (table, entity key), newer-stamp-wins writes, batched reads."""

    uri: str

    @abstractmethod
    def write(self, table: str, rows: Sequence[tuple[str, bytes]]) -> int:
        """Store ``(entity_key, value)`` pairs; a value whose stamp is older than the stored
        one's is skipped. Returns how many values were stored."""

    @abstractmethod
    def read(self, requests: Sequence[tuple[str, Sequence[str]]]) -> list[list[bytes | None]]:
        """For each ``(table, keys)``, the stored value of each key or None, in one round trip."""

    @abstractmethod
    def delete(self, table: str, keys: Sequence[str]) -> int:
        """Remove the given entities' values; returns how many existed."""

    @abstractmethod
    def keys(self, table: str, limit: int | None = None) -> list[str]:
        """Entity keys stored in ``table`` (at most ``limit``, in no particular order)."""

    @abstractmethod
    def count(self, table: str) -> int:
        """How many entities ``table`` holds."""

    @abstractmethod
    def drop(self, table: str) -> int:
        """Remove every value of ``table``; returns how many there were."""

    @abstractmethod
    def ping(self) -> None:
        """Raise StorageError when the store cannot be reached."""

    @abstractmethod
    def close(self) -> None: ...


def online_store_from_uri(uri: str, default_prefix: str = "modelyard") -> OnlineStore:
    """``sqlite:///path.db`` or ``redis://host:port/db?prefix=name`` (``rediss://`` for TLS)."""
    if uri.startswith("sqlite:///"):
        from pathlib import Path

        from modelyard.backends.online.sqlite import SqliteOnlineStore

        return SqliteOnlineStore(Path(uri[len("sqlite:///"):]))
    if uri.startswith(("redis://", "rediss://", "unix://")):
        from modelyard.backends.online.redis import RedisOnlineStore

        parts = urlsplit(uri)
        prefix = parse_qs(parts.query).get("prefix", [default_prefix or "modelyard"])[0]
        query = "&".join(p for p in parts.query.split("&") if p and not p.startswith("prefix="))
        plain = parts._replace(query=query).geturl()
        return RedisOnlineStore(plain, prefix)
    raise ConfigurationError(
        f"unsupported online store URI {uri!r}: use sqlite:///path.db or "
        "redis://host:6379/0?prefix=name")
