"""``GET /healthz`` (the process answers) and ``GET /readyz`` (its stores answer too).

A liveness probe restarts a process that stopped answering; a readiness probe only takes
it out of rotation while a store it depends on is down, so ``/healthz`` never looks at the
stores and ``/readyz`` does.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from modelyard._version import __version__
from modelyard.errors import StorageError
from modelyard.server.responses import JSON, error_response, guarded, json_response
from modelyard.server.state import Endpoints, ServerState

__all__ = ["ENDPOINTS"]

_NAMES = {"metadata_store": "metadata store", "online_store": "online store"}


def routes(state: ServerState) -> list[BaseRoute]:
    alive = json_response({"status": "ok", "version": __version__}).body

    @guarded
    async def healthz(request: Request) -> Response:
        return Response(alive, media_type=JSON)

    @guarded
    async def readyz(request: Request) -> Response:
        problems = await state.call(state.readiness)
        checks = {name: problem or "ok" for name, problem in problems.items()}
        failing = [name for name, problem in problems.items() if problem]
        if failing:
            message = "; ".join(f"{_NAMES.get(n, n)}: {problems[n]}" for n in failing)
            return error_response(StorageError(f"not ready: {message}", checks=checks,
                                               failing=failing))
        return json_response({"status": "ready", "checks": checks})

    return [Route("/healthz", healthz, methods=["GET"], name="healthz"),
            Route("/readyz", readyz, methods=["GET"], name="readyz")]


_CHECKS = {
    "type": "object",
    "description": "Per store: \"ok\", or what is wrong with it.",
    "properties": {"metadata_store": {"type": "string"}, "online_store": {"type": "string"}},
    "additionalProperties": {"type": "string"},
}
_SCHEMAS: dict[str, Any] = {
    "Health": {
        "type": "object", "required": ["status", "version"],
        "properties": {"status": {"const": "ok"}, "version": {"type": "string"}},
    },
    "Ready": {
        "type": "object", "required": ["status", "checks"],
        "properties": {"status": {"const": "ready"}, "checks": _CHECKS},
    },
}
_PATHS: dict[str, Any] = {
    "/healthz": {"get": {
        "tags": ["health"], "operationId": "healthz",
        "summary": "Liveness: the process answers (the stores are not consulted)",
        "responses": {"200": {"description": "Alive.", "content": {JSON: {
            "schema": {"$ref": "#/components/schemas/Health"}}}}},
    }},
    "/readyz": {"get": {
        "tags": ["health"], "operationId": "readyz",
        "summary": "Readiness: the metadata store and the online store answer",
        "responses": {
            "200": {"description": "Ready to serve.", "content": {JSON: {
                "schema": {"$ref": "#/components/schemas/Ready"}}}},
            "503": {"description": "A store does not answer; the message names it and "
                                   "details.checks has each store's state.",
                    "content": {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}}},
        },
    }},
}

ENDPOINTS = Endpoints(name="health", routes=routes, paths=_PATHS, schemas=_SCHEMAS,
                      tag="Liveness and readiness probes.")
