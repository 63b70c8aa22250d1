"""The write store over HTTP: idempotency keys and the intents of writes in flight.

A client's registration or artifact upload runs the same write protocol as in process (see
``backends/metadata/writes.py``): the intent is recorded here before the blobs are uploaded,
and completed in the transaction of the record the client then sends. The intent's owner is
the server process that recorded it; crash recovery runs when the server opens its project.
"""

from __future__ import annotations

from typing import Any

from modelyard.backends.metadata.writes import Completion, KeyRecord, Repair, WriteIntent
from modelyard.server.rpc import Call, api_group
from modelyard.server.state import ServerState

__all__ = ["ENDPOINTS"]


def lookup(state: ServerState, call: Call) -> KeyRecord | None:
    return state.yard.writes.lookup(call.arg("key"))


def begin(state: ServerState, call: Call) -> WriteIntent:
    return state.yard.writes.begin(call.field("kind", str), call.field("target", str),
                                   call.field("payload", dict[str, Any]),
                                   call.field("key", str | None, default=None))


def extend(state: ServerState, call: Call) -> None:
    state.yard.writes.extend(call.arg("intent_id"), blobs=call.field("blobs", list[str]))


def discard(state: ServerState, call: Call) -> None:
    state.yard.writes.discard(call.arg("intent_id"))


def complete(state: ServerState, call: Call) -> None:
    state.yard.writes.complete(call.field("completion", Completion))


def list_intents(state: ServerState, call: Call) -> list[WriteIntent]:
    return state.yard.writes.list_intents(call.arg("kind", default=None))


def has_intents(state: ServerState, call: Call) -> bool:
    return state.yard.writes.has_intents()


def intent_for_key(state: ServerState, call: Call) -> WriteIntent | None:
    return state.yard.writes.intent_for_key(call.arg("key"))


def resolve(state: ServerState, call: Call) -> Repair | None:
    return state.yard.writes.resolve(call.field("intent", WriteIntent),
                                     call.field("action", str), call.field("detail", str))


def repairs(state: ServerState, call: Call) -> list[Repair]:
    return state.yard.writes.repairs(call.arg("limit", int, default=20))


ENDPOINTS = api_group("writes", "Idempotency keys and write intents.", [
    ("GET", "/writes/keys/{key}", lookup, "The completed write under a key, or null"),
    ("GET", "/writes/keys/{key}/intent", intent_for_key, "The intent holding a key, or null"),
    ("GET", "/writes/intents", list_intents, "Every intent (?kind=), oldest first"),
    ("GET", "/writes/intents/any", has_intents, "Whether any intent is recorded"),
    ("POST", "/writes/intents", begin, "Record the intent of a write about to start"),
    ("POST", "/writes/intents/{intent_id}/blobs", extend, "Name more blobs of an intent"),
    ("DELETE", "/writes/intents/{intent_id}", discard, "Drop the intent of a failed write"),
    ("POST", "/writes/intents/{intent_id}/resolve", resolve,
     "Delete a dead writer's intent and log the repair"),
    ("POST", "/writes/completions", complete, "Store a key and end an intent"),
    ("GET", "/writes/repairs", repairs, "The most recent repairs (?limit=)"),
])
