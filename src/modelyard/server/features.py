"""``POST /v1/features/online``: feature values of entities, from the online store.

The hot path: read the body, parse it once with :mod:`json`, check its shape, look the
entities up (the lookup plan is cached by the online service), write the rows as JSON. All
but reading the body runs in a worker thread (:meth:`ServerState.call`), one hop per
request, so the event loop never waits on the store.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from modelyard.errors import InvalidInputError
from modelyard.server.responses import JSON, dumps, guarded, parse_json, strict_dumps
from modelyard.server.state import Endpoints, ServerState

if TYPE_CHECKING:
    from modelyard.features.lookup import OnlineResult

__all__ = ["ENDPOINTS", "OnlineQuery", "parse_query"]

PATH = "/v1/features/online"
_FIELDS = ("features", "entities", "at")
_SCALARS = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class OnlineQuery:
    features: tuple[str, ...]
    entities: dict[str, list[Any]] | list[dict[str, Any]]
    at: datetime | None


def parse_query(payload: Any) -> OnlineQuery:
    """Check the request body's shape; InvalidInputError (422) naming the field otherwise."""
    if not isinstance(payload, dict):
        raise InvalidInputError(
            f"the request body must be a JSON object with 'features' and 'entities', not "
            f"{_json_type(payload)}", field="body")
    unknown = [k for k in payload if k not in _FIELDS]
    if unknown:
        raise InvalidInputError(
            f"unknown field(s) {', '.join(map(repr, unknown))} in the request body; "
            f"expected {', '.join(_FIELDS)}", field=unknown[0])
    return OnlineQuery(_features(payload), _entities(payload), _at(payload.get("at")))


def _features(payload: dict[str, Any]) -> tuple[str, ...]:
    if "features" not in payload:
        raise InvalidInputError(
            "the request body lacks 'features': a list like [\"stats:amount\", \"stats:*\"]",
            field="features")
    features = payload["features"]
    if not isinstance(features, list):
        raise InvalidInputError(
            f"'features' must be a list of feature references like [\"stats:amount\"], not "
            f"{_json_type(features)}", field="features")
    if not features:
        raise InvalidInputError("'features' is empty; name at least one, like \"stats:*\"",
                                field="features")
    for i, ref in enumerate(features):
        if not isinstance(ref, str):
            raise InvalidInputError(
                f"features[{i}] must be a string like \"stats:amount\", not "
                f"{_json_type(ref)}", field=f"features[{i}]")
    return tuple(features)


def _entities(payload: dict[str, Any]) -> dict[str, list[Any]] | list[dict[str, Any]]:
    if "entities" not in payload:
        raise InvalidInputError(
            "the request body lacks 'entities': an object like {\"customer_id\": [1, 2]} or "
            "a list like [{\"customer_id\": 1}]", field="entities")
    entities = payload["entities"]
    if isinstance(entities, dict):
        columns: dict[str, list[Any]] = {}
        for name, values in entities.items():
            if isinstance(values, list):
                columns[name] = values
            elif isinstance(values, _SCALARS):
                columns[name] = [values]
            else:
                raise InvalidInputError(
                    f"entities.{name} must be a list of key values, not {_json_type(values)}",
                    field=f"entities.{name}")
        return columns
    if isinstance(entities, list):
        for i, row in enumerate(entities):
            if not isinstance(row, dict):
                raise InvalidInputError(
                    f"entities[{i}] must be an object like {{\"customer_id\": 1}}, not "
                    f"{_json_type(row)}", field=f"entities[{i}]")
        return entities
    raise InvalidInputError(
        "'entities' must be an object of key columns like {\"customer_id\": [1, 2]} or a "
        f"list of objects like [{{\"customer_id\": 1}}], not {_json_type(entities)}",
        field="entities")


def _at(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if moment.tzinfo is not None:
                return moment
            raise InvalidInputError(
                f"'at' must carry a time zone, like \"2025-01-31T12:00:00+00:00\" or "
                f"\"2025-01-31T12:00:00Z\"; got {value!r}", field="at")
    raise InvalidInputError(
        f"'at' must be an ISO 8601 time with a time zone, like \"2025-01-31T12:00:00Z\"; "
        f"got {value!r}", field="at")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, Mapping) else type(value).__name__


def answer(state: ServerState, body: bytes) -> bytes:
    """The whole request, blocking: parse, look up, encode."""
    query = parse_query(parse_json(body))
    result = state.online().online_features(query.features, query.entities, at=query.at)
    try:
        return strict_dumps({"features": result.refs, "rows": result.to_records()})
    except ValueError:  # NaN or infinite values, which JSON lacks: null them, column-wise
        _null_non_finite(result)
        return dumps({"features": result.refs, "rows": result.to_records()})


def _null_non_finite(result: OnlineResult) -> None:
    for name, column in result.values.items():
        if any(type(v) is float and not math.isfinite(v) for v in column):
            result.values[name] = [None if type(v) is float and not math.isfinite(v) else v
                                   for v in column]


def routes(state: ServerState) -> list[BaseRoute]:
    @guarded
    async def online_features(request: Request) -> Response:
        body = await request.body()
        return Response(await state.call(answer, state, body), media_type=JSON)

    return [Route(PATH, online_features, methods=["POST"], name="online_features")]


# A key value: text or a whole number, as the entity's key column holds it (a timestamp key
# as ISO 8601 text); the lookup refuses one of the wrong type with a 422 naming the column.
_KEY_VALUE = {"type": ["string", "integer"],
              "description": "An entity key value, of the key column's type."}
_REF = r"^\s*[A-Za-z_][A-Za-z0-9_]*(@v[0-9]+)?:(\*|[A-Za-z_][A-Za-z0-9_]*)\s*$"
_REQUEST = {
    "type": "object",
    "required": ["features", "entities"],
    "additionalProperties": False,
    "properties": {
        "features": {
            "type": "array", "minItems": 1,
            "items": {"type": "string", "pattern": _REF},
            "description": "Feature references: group:feature, group:* (every feature of "
                           "the group) or group@v2:feature (a given version).",
            "examples": [["stats:amount", "stats:*"]],
        },
        "entities": {
            "description": "The entities to look up, in the order the rows are wanted: an "
                           "object of key column to values (one value, or a list with one "
                           "value per entity; every list of the same length), or a list "
                           "with one object of key values per entity. Every key column of "
                           "the features' entity must be given.",
            "oneOf": [
                {"type": "object", "minProperties": 1, "title": "columns",
                 "additionalProperties": {"oneOf": [
                     {"type": "array", "minItems": 1, "items": _KEY_VALUE}, _KEY_VALUE]}},
                {"type": "array", "minItems": 1, "title": "rows", "items": {
                    "type": "object", "minProperties": 1,
                    "additionalProperties": _KEY_VALUE}},
            ],
            "examples": [{"customer_id": [1, 2]}, [{"customer_id": 1}, {"customer_id": 2}]],
        },
        "at": {
            "type": ["string", "null"], "format": "date-time",
            "description": "The time a group's TTL is judged at, with a time zone "
                           "(default: now); a row older than the TTL then is expired.",
            "examples": ["2025-01-31T12:00:00Z"],
        },
    },
}
_RESPONSE = {
    "type": "object",
    "required": ["features", "rows"],
    "additionalProperties": False,
    "properties": {
        "features": {
            "type": "array", "items": {"type": "string"},
            "description": "The features answered, resolved to group@vN:feature, in the "
                           "order of the members of each row.",
            "examples": [["stats@v1:amount", "stats@v1:amount_mean_7d"]],
        },
        "rows": {
            "type": "array",
            "description": "One object per entity, in the order asked: the key columns "
                           "(as sent), one member per feature, named by the feature (null "
                           "when the entity has no current value), and the row's status.",
            "items": {
                "type": "object",
                "required": ["status"],
                "properties": {"status": {
                    "enum": ["found", "missing", "expired"],
                    "description": "found; missing (never materialized for this entity); "
                                   "expired (older than the group's TTL: its row-level "
                                   "features are null)."}},
                "additionalProperties": {
                    "description": "A key value, or a feature's value: a number, text, "
                                   "true or false, a time or date as ISO 8601 text, or "
                                   "null (NaN and infinities are null)."},
            },
            "examples": [[{"customer_id": 1, "amount": 1.5, "status": "found"},
                          {"customer_id": 999, "amount": None, "status": "missing"}]],
        },
    },
}


def _error(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}}}


_PATHS = {
    PATH: {
        "post": {
            "tags": ["features"],
            "operationId": "online_features",
            "summary": "Feature values of entities, from the online store",
            "requestBody": {"required": True, "content": {JSON: {
                "schema": {"$ref": "#/components/schemas/OnlineFeaturesRequest"}}}},
            "responses": {
                "200": {"description": "One row per entity.", "content": {JSON: {
                    "schema": {"$ref": "#/components/schemas/OnlineFeaturesResponse"}}}},
                "404": _error("An unknown feature group or feature, or a group never "
                              "materialized into the online store."),
                "422": _error("A malformed request: not JSON, a field of the wrong shape, a "
                              "malformed feature reference, one feature name asked from two "
                              "groups, a missing or unknown key column, a key of the wrong "
                              "type, key lists of different lengths, or 'at' without a "
                              "time zone. The error's details name the field."),
                "500": _error("An unexpected server error (its request id is logged)."),
                "503": _error("The online store or the metadata store does not answer."),
            },
        },
    },
}

ENDPOINTS = Endpoints(
    name="features", routes=routes, paths=_PATHS,
    schemas={"OnlineFeaturesRequest": _REQUEST, "OnlineFeaturesResponse": _RESPONSE},
    tag="The online feature store.")
