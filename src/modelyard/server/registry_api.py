"""The registry API of the team server: models, versions, aliases, evaluations, and the
promotions and rollbacks that only the server makes.

A client writes what it produced itself (a version whose blobs it uploaded, an evaluation);
alias moves are service calls here: ``promote`` runs the model's gates (declared with the
model, in the server's ``modelyard.toml``, and any the call adds) against the evaluations the
server holds, so no client can skip them. The acting user is the authenticated identity.
"""

from __future__ import annotations

from typing import Any

from modelyard.backends.metadata.registry import (
    AliasEvent,
    EvaluationRecord,
    GateReportRecord,
    ModelRecord,
    VersionRecord,
)
from modelyard.backends.metadata.writes import Completion
from modelyard.errors import InvalidInputError
from modelyard.server.rpc import Call, api_group
from modelyard.server.state import ServerState

__all__ = ["ENDPOINTS"]


def ensure_model(state: ServerState, call: Call) -> ModelRecord:
    from modelyard.registry.references import check_name

    return state.yard.models.store.ensure_model(
        check_name(call.field("name", str)), call.field("description", str | None, default=None),
        call.field("gates", list[dict[str, Any]] | None, default=None))


def get_model(state: ServerState, call: Call) -> ModelRecord:
    return state.yard.models.get_model(call.arg("name"))


def list_models(state: ServerState, call: Call) -> list[ModelRecord]:
    return state.yard.models.list_models()


def add_version(state: ServerState, call: Call) -> VersionRecord:
    record = call.field("record", VersionRecord)
    if record.name != call.arg("name"):
        raise InvalidInputError(f"the version is of model {record.name!r}, not of "
                                f"{call.arg('name')!r} as the path says", field="record.name")
    return state.yard.models.store.add_version(
        record, done=call.field("done", Completion | None, default=None))


def get_version(state: ServerState, call: Call) -> VersionRecord:
    return state.yard.models.store.get_version(call.arg("name"), call.arg("version", int))


def list_versions(state: ServerState, call: Call) -> list[VersionRecord]:
    return state.yard.models.versions(call.arg("name"))


def aliases(state: ServerState, call: Call) -> dict[str, int]:
    return state.yard.models.aliases(call.arg("name"))


def alias_history(state: ServerState, call: Call) -> list[AliasEvent]:
    return state.yard.models.history(call.arg("name"), call.arg("alias", default=None))


def save_evaluation(state: ServerState, call: Call) -> None:
    record = call.field("record", EvaluationRecord)
    if (record.name, record.version) != (call.arg("name"), call.arg("version", int)):
        raise InvalidInputError("the evaluation is of another version than the path names",
                                field="name")
    state.yard.models.store.get_version(record.name, record.version)  # NotFound if none
    state.yard.models.store.save_evaluation(record)


def evaluations(state: ServerState, call: Call) -> list[EvaluationRecord]:
    return state.yard.models.store.evaluations(call.arg("name"), call.arg("version", int))


def gate_reports(state: ServerState, call: Call) -> list[GateReportRecord]:
    return state.yard.models.store.gate_reports(call.arg("name"), call.arg("version", int))


def promote(state: ServerState, call: Call) -> dict[str, Any]:
    from modelyard.registry.gates import gate_from_dict
    from modelyard.registry.promotion import promotion_wire

    gates = [gate_from_dict(g) for g in call.field("gates", list[dict[str, Any]], default=[])]
    found = state.yard.models.promote(
        call.arg("name"), call.field("version", int), call.arg("alias"),
        force=call.field("force", bool, default=False),
        reason=call.field("reason", str, default=""), actor=call.actor(), gates=gates,
        idempotency_key=call.field("idempotency_key", str | None, default=None))
    return promotion_wire(found)


def rollback(state: ServerState, call: Call) -> AliasEvent:
    return state.yard.models.rollback(call.arg("name"), call.arg("alias"),
                                      reason=call.field("reason", str, default=""),
                                      actor=call.actor())


_V = "/models/{name}/versions/{version}"

ENDPOINTS = api_group("registry", "Models, versions, aliases, evaluations and promotions.", [
    ("GET", "/models", list_models, "Every model"),
    ("POST", "/models", ensure_model, "Create a model, or replace its description or gates"),
    ("GET", "/models/{name}", get_model, "One model"),
    ("GET", "/models/{name}/versions", list_versions, "A model's versions, oldest first"),
    ("POST", "/models/{name}/versions", add_version,
     "Store a version (its blobs uploaded first) under the next number"),
    ("GET", _V, get_version, "One version"),
    ("GET", "/models/{name}/aliases", aliases, "The model's aliases and their versions"),
    ("GET", "/models/{name}/history", alias_history, "Every alias move (?alias=), oldest first"),
    ("PUT", f"{_V}/evaluations", save_evaluation, "Store a version's evaluation on a data set"),
    ("GET", f"{_V}/evaluations", evaluations, "A version's evaluations"),
    ("GET", f"{_V}/gate-reports", gate_reports, "A version's gate reports, oldest first"),
    ("POST", "/models/{name}/aliases/{alias}/promote", promote,
     "Run the gates and move the alias to the version, or refuse with the report (409)"),
    ("POST", "/models/{name}/aliases/{alias}/rollback", rollback,
     "Move the alias back to its previous holder"),
])
