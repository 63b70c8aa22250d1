"""The feature registry over HTTP: definitions, training-set records, ingestion profiles and
the forget log, kept by the server.

The feature data itself (offline tables, online values) is not in this store: a client using
the feature store through a server reaches the same offline and online stores as the server
(a shared bucket or folder, Redis), named by its ``offline_uri`` and ``online_uri``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from modelyard.backends.metadata.feature_registry import (
    DefinitionRecord,
    FeatureRegistryStore,
    TrainingSetRecord,
)
from modelyard.backends.metadata.materializations import (
    MaterializationRecord,
    MaterializationStore,
    Status,
)
from modelyard.backends.metadata.rest.connection import RestConnection
from modelyard.backends.metadata.wire import decode, encode

if TYPE_CHECKING:
    from modelyard.backends.metadata.writes import Completion

__all__ = ["RestFeatureRegistryStore", "RestMaterializationStore"]


def _q(text: str) -> str:
    return quote(text, safe="")


class RestFeatureRegistryStore(FeatureRegistryStore):
    def __init__(self, connection: RestConnection) -> None:
        self.http = connection

    def put_definition(self, kind: str, name: str, content_hash: str, spec: dict[str, Any]
                       ) -> tuple[DefinitionRecord, bool]:
        found = self.http.call("POST", "/features/definitions", {
            "kind": kind, "name": name, "content_hash": content_hash, "spec": spec},
            idempotent=True)  # the same hash again is no new version
        return decode(DefinitionRecord, found["record"], "record"), bool(found["created"])

    def get_definition(self, kind: str, name: str, version: int | None = None
                       ) -> DefinitionRecord:
        return decode(DefinitionRecord, self.http.call(  # type: ignore[no-any-return]
            "GET", f"/features/definitions/{_q(kind)}/{_q(name)}",
            params={} if version is None else {"version": int(version)}))

    def list_definitions(self, kind: str | None = None) -> list[DefinitionRecord]:
        return decode(list[DefinitionRecord], self.http.call(  # type: ignore[no-any-return]
            "GET", "/features/definitions", params={} if kind is None else {"kind": kind}))

    def definition_history(self, kind: str, name: str) -> list[DefinitionRecord]:
        return decode(list[DefinitionRecord], self.http.call(  # type: ignore[no-any-return]
            "GET", f"/features/definitions/{_q(kind)}/{_q(name)}/history"))

    def save_training_set(self, record: TrainingSetRecord) -> None:
        self.http.call("POST", "/features/training-sets", {"record": encode(record)},
                       idempotent=True)

    def get_training_set(self, training_set_id: str) -> TrainingSetRecord:
        return decode(TrainingSetRecord, self.http.call(  # type: ignore[no-any-return]
            "GET", f"/features/training-sets/{_q(training_set_id)}"))

    def save_profile(self, source: str, commit_id: str, profile: dict[str, Any],
                     done: Completion | None = None) -> None:
        self.http.call("POST", "/features/profiles", {
            "source": source, "commit_id": commit_id, "profile": profile,
            "done": None if done is None else encode(done)}, idempotent=done is None)

    def get_profile(self, source: str, commit_id: str) -> dict[str, Any] | None:
        return decode(dict[str, Any] | None, self.http.call(  # type: ignore[no-any-return]
            "GET", "/features/profiles", params={"source": source, "commit_id": commit_id}))

    def log_forget(self, entity: str, keys: int, rows_removed: int, details: dict[str, Any],
                   done: Completion | None = None) -> None:
        self.http.call("POST", "/features/forget-log", {
            "entity": entity, "keys": keys, "rows_removed": rows_removed,
            "details": details, "done": None if done is None else encode(done)})

    def forget_log(self, entity: str | None = None) -> list[dict[str, Any]]:
        return decode(list[dict[str, Any]], self.http.call(  # type: ignore[no-any-return]
            "GET", "/features/forget-log", params={} if entity is None else {"entity": entity}))


class RestMaterializationStore(MaterializationStore):
    """The records of materialization runs, kept by the server."""

    def __init__(self, connection: RestConnection) -> None:
        self.http = connection

    def save_materialization(self, record: MaterializationRecord) -> None:
        self.http.call("PUT", "/features/materializations", {"record": encode(record)},
                       idempotent=True)  # insert or replace by id

    def list_materializations(self, group: str | None = None, *, version: int | None = None,
                              store: str | None = None, status: Status | None = None,
                              limit: int | None = None) -> list[MaterializationRecord]:
        params = {k: v for k, v in (("group", group), ("version", version), ("store", store),
                                    ("status", status), ("limit", limit)) if v is not None}
        return decode(list[MaterializationRecord], self.http.call(  # type: ignore[no-any-return]
            "GET", "/features/materializations", params=params))
