"""The OpenAPI 3.1 document of the server, written as data, and the routes that publish it.

The document's frame and the error body live here; each route module adds its own paths and
schemas (see :class:`modelyard.server.state.Endpoints`), and :func:`document` puts them
together. ``GET /openapi.json`` serves it, ``GET /docs`` renders it.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from modelyard._version import __version__
from modelyard.errors import ConfigurationError
from modelyard.server.docs_page import docs_page
from modelyard.server.responses import JSON, dumps, guarded
from modelyard.server.state import Endpoints, ServerState

__all__ = ["ENDPOINTS", "ERROR_SCHEMA", "document"]

OPENAPI_VERSION = "3.1.0"
DESCRIPTION = """\
The HTTP interface of a modelyard project.

Every error answers with the same JSON body: `error` (the error class, e.g. `NotFoundError`),
a `message` meant for people, the HTTP `status`, and `details` (for a malformed request,
`details.field` names the field).
"""

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error", "message", "status", "details"],
    "properties": {
        "error": {"type": "string", "description": "The error class, e.g. InvalidInputError.",
                  "examples": ["InvalidInputError"]},
        "message": {"type": "string", "examples": [
            "features[1] must be a string like \"stats:amount\", not a number"]},
        "status": {"type": "integer", "description": "The HTTP status, repeated."},
        "details": {
            "type": "object", "additionalProperties": True,
            "description": "Context: field (the field at fault), request_id (of a 500), ...",
            "properties": {"field": {"type": "string"}, "request_id": {"type": "string"}},
        },
    },
}


def _own_paths() -> dict[str, Any]:
    return {
        "/openapi.json": {"get": {
            "tags": ["meta"], "operationId": "openapi",
            "summary": "This OpenAPI document",
            "responses": {"200": {"description": "The OpenAPI 3.1 document.",
                                  "content": {JSON: {"schema": {"type": "object"}}}}},
        }},
        "/docs": {"get": {
            "tags": ["meta"], "operationId": "docs",
            "summary": "A page that renders this document (with a plain listing offline)",
            "responses": {"200": {"description": "An HTML page.",
                                  "content": {"text/html": {"schema": {"type": "string"}}}}},
        }},
    }


def document(groups: Sequence[Endpoints]) -> dict[str, Any]:
    """The OpenAPI document of the given endpoint groups."""
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
    tags: list[dict[str, str]] = []
    for group in groups:
        for path, item in group.paths.items():
            if path in paths:
                raise ConfigurationError(f"two endpoint groups declare the path {path}")
            paths[path] = item
        for name, schema in group.schemas.items():
            if name in schemas and schemas[name] != schema:
                raise ConfigurationError(f"two endpoint groups declare the schema {name}")
            schemas[name] = schema
        if group.tag:
            tags.append({"name": group.name, "description": group.tag})
    return copy.deepcopy({
        "openapi": OPENAPI_VERSION,
        "info": {"title": "modelyard", "version": __version__, "description": DESCRIPTION,
                 "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"}},
        "tags": tags,
        "paths": paths,
        "components": {"schemas": schemas},
    })


def routes(state: ServerState) -> list[BaseRoute]:
    """The document is complete before routes are made (see ``create_app``): encode and
    render it once."""
    spec = dumps(state.openapi)
    page = docs_page(state.openapi)

    @guarded
    async def openapi(request: Request) -> Response:
        return Response(spec, media_type=JSON)

    @guarded
    async def docs(request: Request) -> Response:
        return HTMLResponse(page)

    return [Route("/openapi.json", openapi, methods=["GET"], name="openapi"),
            Route("/docs", docs, methods=["GET"], name="docs")]


ENDPOINTS = Endpoints(name="meta", routes=routes, paths=_own_paths(),
                      tag="This document, as data and as a page.")
