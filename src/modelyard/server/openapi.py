"""The OpenAPI 3.1 document of the server, written as data, and the routes that publish it.

The document's frame and the error body live here; each route module adds its own paths and
schemas (see :class:`modelyard.server.state.Endpoints`), and :func:`document` puts them
together. ``GET /openapi.json`` serves it, ``GET /docs`` renders it.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from modelyard._version import __version__
from modelyard.errors import ConfigurationError, ModelyardError
from modelyard.server.docs_page import docs_page
from modelyard.server.responses import JSON, dumps, guarded
from modelyard.server.state import Endpoints, ServerState

__all__ = ["ENDPOINTS", "ERROR_SCHEMA", "document", "with_models"]

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


def with_models(spec: dict[str, Any], paths: dict[str, Any], schemas: dict[str, Any],
                names: Sequence[str] = ()) -> dict[str, Any]:
    """``spec`` with the served models' own paths and schemas added (listed after the
    generic paths they specialise), and the served ``names`` as examples of the generic
    paths' ``{name}``."""
    out = dict(spec)
    v1 = {path: item for path, item in paths.items() if path.startswith("/v1/")}
    merged: dict[str, Any] = {}
    for path, item in spec["paths"].items():
        merged[path] = _name_examples(item, names) if "{name}" in path and names else item
        if path == "/v1/models/{name}/explain":
            merged.update(v1)
        elif path == "/v2/models/{name}/versions/{version}/infer":
            merged.update({p: i for p, i in paths.items() if p not in v1})
    merged.update(paths)  # (already placed when the generic paths are there)
    out["paths"] = merged
    out["components"] = {**spec["components"],
                         "schemas": {**spec["components"]["schemas"], **schemas}}
    return out


def _name_examples(item: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """A path item whose ``name`` path parameter lists ``names`` as examples."""
    out: dict[str, Any] = {}
    for method, operation in item.items():
        parameters = [
            {**p, "schema": {**p["schema"], "examples": list(names)}}
            if p.get("in") == "path" and p.get("name") == "name" else p
            for p in operation.get("parameters", [])]
        out[method] = {**operation, "parameters": parameters} if parameters else operation
    return out


def _online(state: ServerState) -> Any:
    try:
        return state.online()
    except ModelyardError:  # entity keys are then described loosely
        return None


def routes(state: ServerState) -> list[BaseRoute]:
    """The document's frame is complete before routes are made (see ``create_app``). With
    models served, each one's own paths are added for the versions being served: the
    document is built (encoded and rendered) once per set of served versions, so it follows
    hot swaps."""
    from modelyard.server.openapi_models import model_paths, served_key

    built: dict[Any, tuple[bytes, str]] = {}
    lock = threading.Lock()

    def current() -> tuple[bytes, str]:
        models = state.models
        key = None if models is None else served_key(models)
        with lock:
            found = built.get(key)
            if found is None:
                spec = state.openapi
                if models is not None:
                    spec = with_models(spec, *model_paths(models, _online(state)),
                                       names=sorted(models.deployments))
                found = dumps(spec), docs_page(spec)
                built.clear()  # only the versions served now are asked for
                built[key] = found
        return found

    @guarded
    async def openapi(request: Request) -> Response:
        return Response((await state.call(current))[0], media_type=JSON)

    @guarded
    async def docs(request: Request) -> Response:
        return HTMLResponse((await state.call(current))[1])

    return [Route("/openapi.json", openapi, methods=["GET"], name="openapi"),
            Route("/docs", docs, methods=["GET"], name="docs")]


ENDPOINTS = Endpoints(name="meta", routes=routes, paths=_own_paths(),
                      tag="This document, as data and as a page.")
