"""Idempotency keys and write intents over HTTP (the server's write store)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from modelyard.backends.metadata.rest.connection import RestConnection
from modelyard.backends.metadata.wire import decode, encode
from modelyard.backends.metadata.writes import (
    Completion,
    KeyRecord,
    Repair,
    WriteIntent,
    WriteStore,
)

__all__ = ["RestWriteStore"]


class RestWriteStore(WriteStore):
    def __init__(self, connection: RestConnection) -> None:
        self.http = connection

    def lookup(self, key: str) -> KeyRecord | None:
        return decode(KeyRecord | None, self.http.call(  # type: ignore[no-any-return]
            "GET", f"/writes/keys/{quote(key, safe='')}"))

    def begin(self, kind: str, target: str, payload: dict[str, Any],
              key: str | None = None) -> WriteIntent:
        return decode(WriteIntent, self.http.call(  # type: ignore[no-any-return]
            "POST", "/writes/intents",
            {"kind": kind, "target": target, "payload": payload, "key": key}))

    def extend(self, intent_id: str, *, blobs: list[str]) -> None:
        self.http.call("POST", f"/writes/intents/{quote(intent_id, safe='')}/blobs",
                       {"blobs": blobs}, idempotent=True)

    def discard(self, intent_id: str) -> None:
        self.http.call("DELETE", f"/writes/intents/{quote(intent_id, safe='')}",
                       idempotent=True)

    def complete(self, completion: Completion) -> None:
        self.http.call("POST", "/writes/completions", {"completion": encode(completion)})

    def list_intents(self, kind: str | None = None) -> list[WriteIntent]:
        return decode(list[WriteIntent], self.http.call(  # type: ignore[no-any-return]
            "GET", "/writes/intents", params={} if kind is None else {"kind": kind}))

    def has_intents(self) -> bool:
        return bool(decode(bool, self.http.call("GET", "/writes/intents/any")))

    def intent_for_key(self, key: str) -> WriteIntent | None:
        return decode(WriteIntent | None, self.http.call(  # type: ignore[no-any-return]
            "GET", f"/writes/keys/{quote(key, safe='')}/intent"))

    def resolve(self, intent: WriteIntent, action: str, detail: str) -> Repair | None:
        return decode(Repair | None, self.http.call(  # type: ignore[no-any-return]
            "POST", f"/writes/intents/{quote(intent.intent_id, safe='')}/resolve",
            {"intent": encode(intent), "action": action, "detail": detail}))

    def repairs(self, limit: int = 20) -> list[Repair]:
        return decode(list[Repair], self.http.call(  # type: ignore[no-any-return]
            "GET", "/writes/repairs", params={"limit": int(limit)}))
