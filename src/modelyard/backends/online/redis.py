"""The Redis online store: one string per (table, entity) under a key prefix.

Keys are ``{prefix}:{table}:{entity key}``. A batch lookup over several feature groups is one
``MGET``; a write batch is one Lua script that keeps the newer-stamp-wins rule atomic on the
server, so concurrent materializations and pushes cannot interleave badly.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from modelyard.backends.online.base import STAMP_BYTES, OnlineStore
from modelyard.errors import ConfigurationError, StorageError

_WRITE = f"""
local n = 0
for i = 1, #KEYS do
  local new = ARGV[i]
  local cur = redis.call('GETRANGE', KEYS[i], 0, {STAMP_BYTES - 1})
  if cur == '' or tonumber(cur, 16) <= tonumber(string.sub(new, 1, {STAMP_BYTES}), 16) then
    redis.call('SET', KEYS[i], new)
    n = n + 1
  end
end
return n
"""
_WRITE_BATCH = 2_000
_READ_BATCH = 10_000
_GLOB = re.compile(r"([*?\[\]\\])")


class RedisOnlineStore(OnlineStore):
    def __init__(self, url: str, prefix: str) -> None:
        try:
            import redis
        except ImportError as exc:
            raise ConfigurationError(
                "the Redis online store needs the redis package: pip install 'modelyard[redis]'"
            ) from exc
        self.prefix = prefix
        shown = _without_password(url)
        self.uri = f"{shown}{'&' if '?' in shown else '?'}prefix={prefix}"
        self._redis = redis
        self._client: Any = redis.Redis.from_url(
            url, socket_timeout=10, socket_connect_timeout=3, health_check_interval=30)
        self._write_script: Any = self._client.register_script(_WRITE)

    def _key(self, table: str, key: str) -> str:
        return f"{self.prefix}:{table}:{key}"

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except self._redis.RedisError as exc:
            raise StorageError(f"online store {self.uri}: cannot {action}: {exc}",
                               store=self.uri) from exc

    def write(self, table: str, rows: Sequence[tuple[str, bytes]]) -> int:
        written = 0
        with self._errors(f"write to {table}"):
            for start in range(0, len(rows), _WRITE_BATCH * 8):
                pipe = self._client.pipeline(transaction=False)
                for first in range(start, min(len(rows), start + _WRITE_BATCH * 8),
                                   _WRITE_BATCH):
                    batch = rows[first:first + _WRITE_BATCH]
                    self._write_script(keys=[self._key(table, k) for k, _ in batch],
                                       args=[v for _, v in batch], client=pipe)
                written += sum(int(n) for n in pipe.execute())
        return written

    def read(self, requests: Sequence[tuple[str, Sequence[str]]]) -> list[list[bytes | None]]:
        keys = [self._key(table, k) for table, ks in requests for k in ks]
        with self._errors("read"):
            if len(keys) <= _READ_BATCH:
                values: list[bytes | None] = self._client.mget(keys) if keys else []
            else:
                pipe = self._client.pipeline(transaction=False)
                for start in range(0, len(keys), _READ_BATCH):
                    pipe.mget(keys[start:start + _READ_BATCH])
                values = [v for part in pipe.execute() for v in part]
        out: list[list[bytes | None]] = []
        at = 0
        for _, ks in requests:
            out.append(values[at:at + len(ks)])
            at += len(ks)
        return out

    def delete(self, table: str, keys: Sequence[str]) -> int:
        removed = 0
        with self._errors(f"delete from {table}"):
            for start in range(0, len(keys), _READ_BATCH):
                chunk = [self._key(table, k) for k in keys[start:start + _READ_BATCH]]
                if chunk:
                    removed += int(self._client.delete(*chunk))
        return removed

    def _scan(self, table: str) -> Iterator[bytes]:
        pattern = _GLOB.sub(r"\\\1", f"{self.prefix}:{table}:") + "*"
        yield from self._client.scan_iter(match=pattern, count=1000)

    def keys(self, table: str, limit: int | None = None) -> list[str]:
        skip = len(self._key(table, ""))
        found: dict[str, None] = {}  # SCAN may return a key more than once
        with self._errors(f"list {table}"):
            for raw in self._scan(table):
                found[raw.decode()[skip:]] = None
                if limit is not None and len(found) >= limit:
                    break
        return list(found)

    def count(self, table: str) -> int:
        with self._errors(f"count {table}"):
            return len(set(self._scan(table)))  # SCAN may return a key more than once

    def drop(self, table: str) -> int:
        removed = 0
        with self._errors(f"drop {table}"):
            batch: list[bytes] = []
            for raw in self._scan(table):
                batch.append(raw)
                if len(batch) >= _READ_BATCH:
                    removed += int(self._client.delete(*batch))
                    batch = []
            if batch:
                removed += int(self._client.delete(*batch))
        return removed

    def ping(self) -> None:
        with self._errors("connect"):
            self._client.ping()

    def close(self) -> None:
        self._client.close()


def _without_password(url: str) -> str:
    """The URL with no password in it: neither in the user part nor as a query parameter."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        credentials, _, host = netloc.rpartition("@")
        user = credentials.split(":", 1)[0]
        netloc = f"{user}@{host}" if user else host
    query = "&".join(p for p in parts.query.split("&")
                     if p and p.split("=", 1)[0].lower() != "password")
    return parts._replace(netloc=netloc, query=query).geturl()
