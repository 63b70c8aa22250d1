"""Idempotent writes, as the services use them.

A write that takes an ``idempotency_key`` goes through a :class:`Guard`:

1. :meth:`Guard.replay` returns the stored result when the key names a completed write of
   the same content (the caller returns it and writes nothing), refuses the key for other
   content, and returns None for a new key;
2. :meth:`Guard.begin` records the write's intent, which claims the key; a claim held by a
   dead process is first recovered (completed or rolled back) by the service's ``recover``;
3. the write's own record is stored with :attr:`Guard.completion`, which puts the key, the
   result and the removal of the intent in that record's transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from modelyard.backends.metadata.writes import Completion, Repair, WriteIntent, WriteStore
from modelyard.errors import IdempotencyConflictError, InvalidInputError

MAX_KEY_LENGTH = 255


def check_key(key: object) -> str | None:
    """A valid key (1-255 printable characters), or None for no key."""
    if key is None:
        return None
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH \
            or not key.isprintable():
        raise InvalidInputError(
            f"idempotency_key must be 1-{MAX_KEY_LENGTH} printable characters, got {key!r}",
            field="idempotency_key")
    return key


def fingerprint(operation: str, **parts: Any) -> str:
    """The sha256 of an operation's content (JSON of ``parts``, keys sorted)."""
    body = json.dumps({"operation": operation, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()


@dataclass
class Guard:
    """One write's idempotency key and intent (see the module docstring)."""

    writes: WriteStore
    operation: str
    key: str | None
    fingerprint: str
    intent: WriteIntent | None = None

    def replay(self) -> dict[str, Any] | None:
        if self.key is None:
            return None
        found = self.writes.lookup(self.key)
        if found is None:
            return None
        if found.operation != self.operation or found.fingerprint != self.fingerprint:
            raise IdempotencyConflictError(
                f"idempotency key {self.key!r} was already used for another write "
                f"({found.operation} with other content); use a new key for this one",
                key=self.key, operation=found.operation)
        return found.result

    def begin(self, kind: str, target: str, payload: dict[str, Any],
              recover: Callable[[WriteIntent], object]) -> dict[str, Any] | None:
        """Record the intent; returns a stored result instead if recovering a dead writer's
        claim on the key completed the same write."""
        for _ in range(3):
            try:
                self.intent = self.writes.begin(kind, target, payload, self.key)
                return None
            except IdempotencyConflictError:
                held = None if self.key is None else self.writes.intent_for_key(self.key)
                if held is not None and held.owner_alive():
                    raise
                if held is not None:
                    recover(held)
                done = self.replay()
                if done is not None:
                    return done
        raise IdempotencyConflictError(
            f"idempotency key {self.key!r} is claimed by writers in flight; retry later",
            key=self.key)

    def extend(self, *blobs: str) -> None:
        if self.intent is not None:
            self.writes.extend(self.intent.intent_id, blobs=list(blobs))

    def completion(self, **result: Any) -> Completion:
        return Completion(self.operation, self.key, self.fingerprint, result,
                          None if self.intent is None else self.intent.intent_id)


def rollback(writes: WriteStore, intent: WriteIntent, why: str = "never completed"
             ) -> Repair | None:
    """Drop the intent of a write whose record was never stored, logging the repair (the
    blobs it stored are left to garbage collection)."""
    what = {"register": "registration of a version of model",
            "log_artifact": "artifact upload to run"}.get(intent.kind, intent.kind)
    detail = f"{what} {intent.target!r} {why}; nothing of it is visible"
    if intent.blobs:
        detail += (f"; {len(intent.blobs)} blob(s) it stored are unreferenced unless another "
                   f"record uses them: {', '.join(b[:12] for b in intent.blobs)}")
    return writes.resolve(intent, "rolled back", detail)


def guard(writes: WriteStore, operation: str, key: str | None, **content: Any) -> Guard:
    return Guard(writes, operation, check_key(key), fingerprint(operation, **content))
