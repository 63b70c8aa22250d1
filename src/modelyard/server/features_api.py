"""The feature registry API of the team server: definitions and their versions, training-set
records, ingestion profiles and the forget log (the metadata of the feature store; its data
stays in the offline and online stores that server and clients share)."""

from __future__ import annotations

from typing import Any

from modelyard.backends.metadata.feature_registry import DefinitionRecord, TrainingSetRecord
from modelyard.backends.metadata.materializations import MaterializationRecord, Status
from modelyard.backends.metadata.wire import decode
from modelyard.backends.metadata.writes import Completion
from modelyard.server.rpc import Call, api_group
from modelyard.server.state import ServerState

__all__ = ["ENDPOINTS"]


def put_definition(state: ServerState, call: Call) -> dict[str, Any]:
    record, created = state.yard.features.store.put_definition(
        call.field("kind", str), call.field("name", str), call.field("content_hash", str),
        call.field("spec", dict[str, Any]))
    return {"record": record, "created": created}


def get_definition(state: ServerState, call: Call) -> DefinitionRecord:
    return state.yard.features.store.get_definition(
        call.arg("kind"), call.arg("name"), call.arg("version", int, default=None))


def list_definitions(state: ServerState, call: Call) -> list[DefinitionRecord]:
    return state.yard.features.store.list_definitions(call.arg("kind", default=None))


def definition_history(state: ServerState, call: Call) -> list[DefinitionRecord]:
    return state.yard.features.store.definition_history(call.arg("kind"), call.arg("name"))


def save_training_set(state: ServerState, call: Call) -> None:
    state.yard.features.store.save_training_set(call.field("record", TrainingSetRecord))


def get_training_set(state: ServerState, call: Call) -> TrainingSetRecord:
    return state.yard.features.store.get_training_set(call.arg("training_set_id"))


def save_profile(state: ServerState, call: Call) -> None:
    state.yard.features.store.save_profile(
        call.field("source", str), call.field("commit_id", str),
        call.field("profile", dict[str, Any]),
        done=call.field("done", Completion | None, default=None))


def get_profile(state: ServerState, call: Call) -> dict[str, Any] | None:
    return state.yard.features.store.get_profile(call.arg("source"), call.arg("commit_id"))


def log_forget(state: ServerState, call: Call) -> None:
    state.yard.features.store.log_forget(
        call.field("entity", str), call.field("keys", int), call.field("rows_removed", int),
        call.field("details", dict[str, Any]),
        done=call.field("done", Completion | None, default=None))


def forget_log(state: ServerState, call: Call) -> list[dict[str, Any]]:
    return state.yard.features.store.forget_log(call.arg("entity", default=None))


def save_materialization(state: ServerState, call: Call) -> None:
    state.yard.stores.materializations().save_materialization(
        call.field("record", MaterializationRecord))


def list_materializations(state: ServerState, call: Call) -> list[MaterializationRecord]:
    return state.yard.stores.materializations().list_materializations(
        call.arg("group", default=None), version=call.arg("version", int, default=None),
        store=call.arg("store", default=None),
        status=decode(Status | None, call.arg("status", default=None), "status"),
        limit=call.arg("limit", int, default=None))


_D = "/features/definitions/{kind}/{name}"

ENDPOINTS = api_group("feature-registry", "Feature definitions, training sets, profiles.", [
    ("GET", "/features/definitions", list_definitions, "The latest version of each (?kind=)"),
    ("POST", "/features/definitions", put_definition,
     "Store a definition as a new version unless the latest has its hash"),
    ("GET", _D, get_definition, "A definition's latest version (or ?version=)"),
    ("GET", f"{_D}/history", definition_history, "Every version of a definition"),
    ("POST", "/features/training-sets", save_training_set, "Record a training set"),
    ("GET", "/features/training-sets/{training_set_id}", get_training_set,
     "A training set's record"),
    ("POST", "/features/profiles", save_profile, "Store an ingestion's profile"),
    ("GET", "/features/profiles", get_profile, "An ingestion's profile (?source=&commit_id=)"),
    ("POST", "/features/forget-log", log_forget, "Log a forget"),
    ("GET", "/features/forget-log", forget_log, "The forget log (?entity=)"),
    ("PUT", "/features/materializations", save_materialization,
     "Insert or replace a materialization run's record"),
    ("GET", "/features/materializations", list_materializations,
     "Materialization records, newest first (?group=&version=&store=&status=&limit=)"),
])
