"""The registry store over HTTP, and the server as the authority that moves aliases.

Reads and the writes a client may make itself (a model, a version whose blobs it uploaded,
an evaluation, a gate report) are one request each. Alias moves are not offered: a client's
``promote`` and ``rollback`` are service calls the server makes (:class:`RestAuthority`), so
the gates run there and cannot be skipped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from modelyard.backends.metadata.registry import (
    AliasAuthority,
    AliasEvent,
    EvaluationRecord,
    GateReportRecord,
    ModelRecord,
    RegistryStore,
    VersionRecord,
)
from modelyard.backends.metadata.rest.connection import RestConnection
from modelyard.backends.metadata.wire import decode, encode
from modelyard.errors import ConfigurationError

if TYPE_CHECKING:
    from modelyard.backends.metadata.writes import Completion

__all__ = ["RestAuthority", "RestRegistryStore"]


def _m(name: str) -> str:
    return f"/models/{quote(name, safe='')}"


class RestAuthority(AliasAuthority):
    def __init__(self, connection: RestConnection) -> None:
        self.http = connection

    def promote(self, name: str, version: int, alias: str, *, force: bool, reason: str,
                gates: list[dict[str, Any]], idempotency_key: str | None,
                actor: str | None = None) -> dict[str, Any]:
        found: dict[str, Any] = self.http.call(
            "POST", f"{_m(name)}/aliases/{quote(alias, safe='')}/promote",
            {"version": version, "force": force, "reason": reason, "gates": gates,
             "idempotency_key": idempotency_key, "actor": actor},
            idempotent=idempotency_key is not None)
        return found

    def rollback(self, name: str, alias: str, *, reason: str,
                 actor: str | None = None) -> AliasEvent:
        return decode(AliasEvent, self.http.call(  # type: ignore[no-any-return]
            "POST", f"{_m(name)}/aliases/{quote(alias, safe='')}/rollback",
            {"reason": reason, "actor": actor}))


class RestRegistryStore(RegistryStore):
    def __init__(self, connection: RestConnection) -> None:
        self.http = connection
        self._authority = RestAuthority(connection)

    def authority(self) -> AliasAuthority:
        return self._authority

    def ensure_model(self, name: str, description: str | None = None,
                     gates: list[dict[str, Any]] | None = None) -> ModelRecord:
        return decode(ModelRecord, self.http.call(  # type: ignore[no-any-return]
            "POST", "/models", {"name": name, "description": description, "gates": gates},
            idempotent=True))

    def get_model(self, name: str) -> ModelRecord:
        return decode(ModelRecord, self.http.call(  # type: ignore[no-any-return]
            "GET", _m(name)))

    def list_models(self) -> list[ModelRecord]:
        return decode(list[ModelRecord], self.http.call(  # type: ignore[no-any-return]
            "GET", "/models"))

    def add_version(self, record: VersionRecord, done: Completion | None = None
                    ) -> VersionRecord:
        return decode(VersionRecord, self.http.call(  # type: ignore[no-any-return]
            "POST", f"{_m(record.name)}/versions",
            {"record": encode(record), "done": None if done is None else encode(done)}))

    def get_version(self, name: str, version: int) -> VersionRecord:
        return decode(VersionRecord, self.http.call(  # type: ignore[no-any-return]
            "GET", f"{_m(name)}/versions/{int(version)}"))

    def list_versions(self, name: str) -> list[VersionRecord]:
        return decode(list[VersionRecord], self.http.call(  # type: ignore[no-any-return]
            "GET", f"{_m(name)}/versions"))

    def aliases(self, name: str) -> dict[str, int]:
        return decode(dict[str, int], self.http.call(  # type: ignore[no-any-return]
            "GET", f"{_m(name)}/aliases"))

    def move_alias(self, event: AliasEvent, done: Completion | None = None) -> bool:
        raise ConfigurationError(
            "aliases move on the server: use yard.models.promote or yard.models.rollback, "
            "which run there with its gates", model=event.name, alias=event.alias)

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        return decode(list[AliasEvent], self.http.call(  # type: ignore[no-any-return]
            "GET", f"{_m(name)}/history", params={} if alias is None else {"alias": alias}))

    def save_evaluation(self, record: EvaluationRecord) -> None:
        self.http.call("PUT", f"{_m(record.name)}/versions/{record.version}/evaluations",
                       {"record": encode(record)}, idempotent=True)

    def evaluations(self, name: str, version: int) -> list[EvaluationRecord]:
        return decode(list[EvaluationRecord], self.http.call(  # type: ignore[no-any-return]
            "GET", f"{_m(name)}/versions/{int(version)}/evaluations"))

    def save_gate_report(self, record: GateReportRecord) -> None:
        raise ConfigurationError(
            "gate reports are written by the server's promotions: use yard.models.promote",
            model=record.name, version=record.version)

    def gate_reports(self, name: str, version: int) -> list[GateReportRecord]:
        return decode(list[GateReportRecord], self.http.call(  # type: ignore[no-any-return]
            "GET", f"{_m(name)}/versions/{int(version)}/gate-reports"))
