"""The Open Inference Protocol (KServe V2) over the served models, so existing clients work.

Routes: ``GET /v2`` (server metadata), ``/v2/health/live``, ``/v2/health/ready``,
``/v2/models/{name}[/versions/{v}]`` (model metadata), ``.../ready`` and
``POST .../infer``. The inference itself is :func:`modelyard.server.v2_infer.infer` (JSON or
binary tensor data, gzip/deflate bodies). Every answer under ``/v2`` that is not a success,
routing's 404 and 405 included (:func:`http_error`), is ``{"error": message}`` as the
protocol asks, with the modelyard error class and details beside it; a client's mistake is a
400 (the protocol's "typically 400"), an unknown model, version or path a 404.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from modelyard._version import __version__
from modelyard.errors import InvalidInputError, ModelyardError, StorageError
from modelyard.server.models import request_id
from modelyard.server.responses import JSON, json_response, logger
from modelyard.server.state import Endpoints, ServerState
from modelyard.server.v2_infer import SIGNATURE_TYPES, infer, parse_version
from modelyard.server.v2_tensors import DATATYPES

if TYPE_CHECKING:
    from modelyard.serving.service import ModelServer

__all__ = ["ENDPOINTS", "EXTENSIONS", "http_error", "v2_error"]

#: What ``GET /v2`` lists as supported extensions.
EXTENSIONS = ["binary_tensor_data"]


def v2_error(exc: ModelyardError) -> Response:
    """The protocol's error body; a client's mistake (422 on ``/v1``) is a 400 here."""
    status = 400 if isinstance(exc, InvalidInputError) else exc.http_status
    return json_response({"error": exc.message, "type": type(exc).__name__,
                          "details": exc.details}, status)


async def http_error(request: Request, exc: Exception) -> Response:
    """Routing's own errors under ``/v2`` (unknown path, wrong method) as V2 errors."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    headers = dict(exc.headers or {}) if isinstance(exc, HTTPException) else {}
    path = request.url.path
    if status == 404:
        message = (f"no endpoint at {path}; the Open Inference Protocol serves /v2, "
                   "/v2/health/live, /v2/health/ready, /v2/models/NAME[/versions/V][/ready] "
                   "and POST /v2/models/NAME[/versions/V]/infer")
    elif status == 405:
        allowed = headers.get("Allow", "")
        message = f"{request.method} is not allowed on {path}" + (
            f"; use {allowed}" if allowed else "")
    else:
        message = str(getattr(exc, "detail", "") or "request failed")
    kind = "NotFoundError" if status == 404 else "ModelyardError"
    return json_response({"error": message, "type": kind, "details": {"path": path}},
                         status, headers)


def _versions(server: ModelServer, name: str) -> list[str]:
    return [str(s.version) for s, _ in server.deployment(name).answering()]


def metadata(server: ModelServer, name: str, version: str | None = None) -> dict[str, Any]:
    deployment = server.deployment(name)
    wanted = parse_version(version)
    if wanted is not None:
        served = deployment.exact(wanted)[0]
    elif deployment.primary.current is None:
        raise StorageError(f"model {name!r} is not loaded yet", model=name)
    else:
        served = deployment.primary.current
    signature = served.loaded.signature
    inputs = [] if signature is None else [
        {"name": c.name, "datatype": SIGNATURE_TYPES[c.type], "shape": [-1]}
        for c in signature.inputs]
    outputs = [] if signature is None else [
        {"name": c.name, "datatype": SIGNATURE_TYPES[c.type], "shape": [-1]}
        for c in signature.outputs]
    return {"name": name, "versions": _versions(server, name),
            "platform": f"modelyard/{served.loaded.runtime}", "inputs": inputs,
            "outputs": outputs}


def routes(state: ServerState) -> list[BaseRoute]:
    def v2(handler: Any) -> Any:
        async def run(request: Request) -> Response:
            try:
                return await handler(request)  # type: ignore[no-any-return]
            except ModelyardError as exc:
                if exc.http_status >= 500:
                    logger.warning("%s %s: %s: %s", request.method, request.url.path,
                                   type(exc).__name__, exc.message)
                return v2_error(exc)
            except Exception:
                rid = request_id(request)
                logger.exception("%s %s failed (request id %s)", request.method,
                                 request.url.path, rid)
                return json_response({"error": "internal server error; the server log has "
                                      f"the details under request id {rid}",
                                      "type": "ModelyardError", "details": {}}, 500,
                                     {"X-Request-ID": rid})

        return run

    @v2
    async def server_metadata(request: Request) -> Response:
        return json_response({"name": "modelyard", "version": __version__,
                              "extensions": EXTENSIONS})

    @v2
    async def live(request: Request) -> Response:
        return json_response({"live": True})

    @v2
    async def ready(request: Request) -> Response:
        problem = state.model_server().ready()
        return json_response({"ready": problem is None}, 200 if problem is None else 503)

    @v2
    async def model_metadata(request: Request) -> Response:
        return json_response(await state.call(
            metadata, state.model_server(), request.path_params["name"],
            request.path_params.get("version")))

    @v2
    async def model_ready(request: Request) -> Response:
        name = request.path_params["name"]
        deployment = state.model_server().deployment(name)
        wanted = parse_version(request.path_params.get("version"))
        if wanted is not None:
            deployment.exact(wanted)  # NotFoundError when this version is not served
            return json_response({"name": name, "ready": True})
        loaded = deployment.primary.current is not None
        return json_response({"name": name, "ready": loaded}, 200 if loaded else 503)

    @v2
    async def model_infer(request: Request) -> Response:
        name = request.path_params["name"]
        rid = request_id(request)
        began = time.perf_counter()
        body = await request.body()
        try:
            out, headers = await state.call(infer, state.model_server(), name, body,
                                            request.headers, rid,
                                            request.path_params.get("version"), began)
        except ModelyardError as exc:
            answer = v2_error(exc)
            state.failed(name, "infer", rid, exc, began, answer.status_code)
            answer.headers["X-Request-ID"] = rid
            return answer
        except Exception as exc:
            state.failed(name, "infer", rid, exc, began)
            raise
        state.count(name, "infer", 200, began)
        return Response(out, headers=headers)

    return [
        Route("/v2", server_metadata, methods=["GET"], name="v2_server"),
        Route("/v2/health/live", live, methods=["GET"], name="v2_live"),
        Route("/v2/health/ready", ready, methods=["GET"], name="v2_ready"),
        Route("/v2/models/{name}", model_metadata, methods=["GET"], name="v2_model"),
        Route("/v2/models/{name}/versions/{version}", model_metadata, methods=["GET"],
              name="v2_model_version"),
        Route("/v2/models/{name}/ready", model_ready, methods=["GET"], name="v2_model_ready"),
        Route("/v2/models/{name}/versions/{version}/ready", model_ready, methods=["GET"],
              name="v2_model_version_ready"),
        Route("/v2/models/{name}/infer", model_infer, methods=["POST"], name="v2_infer"),
        Route("/v2/models/{name}/versions/{version}/infer", model_infer, methods=["POST"],
              name="v2_infer_version"),
    ]


_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_PARAMETERS = {"type": "object", "description": "Strings, numbers and booleans only.",
               "additionalProperties": {"type": ["string", "number", "boolean"]}}
_TENSOR = {"type": "object", "required": ["name", "shape", "datatype"],
           "properties": {"name": {"type": "string"},
                          "shape": {"type": "array", "items": {"type": "integer"}},
                          "datatype": {"enum": list(DATATYPES)},
                          "data": {"type": "array", "description": "Absent when the tensor "
                                   "is binary data (parameters.binary_data_size)."},
                          "parameters": _PARAMETERS}}
_V2_ERROR = {"description": "An error: {\"error\": message}, with its type and details.",
             "content": {JSON: {"schema": {"type": "object", "required": ["error"],
                                           "properties": {"error": {"type": "string"}}}}}}
_BINARY = {"application/octet-stream": {"schema": {
    "type": "string", "format": "binary",
    "description": "The JSON object (Inference-Header-Content-Length bytes) followed by the "
                   "binary tensor data."}}}


def _get(op: str, summary: str, params: list[Any] | None = None) -> dict[str, Any]:
    return {"get": {"tags": ["inference v2"], "operationId": op, "summary": summary,
                    **({"parameters": params} if params else {}),
                    "responses": {"200": {"description": "OK.", "content": {JSON: {
                        "schema": {"type": "object"}}}}, "404": _V2_ERROR,
                        "503": _V2_ERROR}}}


_INFER = {"post": {
    "tags": ["inference v2"], "operationId": "v2_infer", "parameters": [_NAME],
    "summary": "Open Inference Protocol inference (JSON or binary tensor data; the body may "
               "be gzip or deflate compressed)",
    "requestBody": {"required": True, "content": {JSON: {"schema": {
        "type": "object", "required": ["inputs"],
        "properties": {"id": {"type": "string"}, "parameters": _PARAMETERS,
                       "inputs": {"type": "array", "items": _TENSOR},
                       "outputs": {"type": "array", "items": {
                           "type": "object", "required": ["name"],
                           "properties": {"name": {"type": "string"},
                                          "parameters": _PARAMETERS}}}}}}, **_BINARY}},
    "responses": {"200": {"description": "The output tensors.", "content": {JSON: {"schema": {
        "type": "object", "required": ["model_name", "outputs"],
        "properties": {"model_name": {"type": "string"}, "model_version": {"type": "string"},
                       "id": {"type": "string"}, "parameters": _PARAMETERS,
                       "outputs": {"type": "array", "items": _TENSOR}}}}, **_BINARY}},
                  "400": _V2_ERROR, "404": _V2_ERROR, "503": _V2_ERROR},
}}
_VERSION = {"name": "version", "in": "path", "required": True, "schema": {"type": "string"}}
_PATHS: dict[str, Any] = {
    "/v2": _get("v2_server", "Server metadata"),
    "/v2/health/live": _get("v2_live", "Liveness"),
    "/v2/health/ready": _get("v2_ready", "Readiness: every served model is loaded"),
    "/v2/models/{name}": _get("v2_model", "Model metadata: versions and tensors", [_NAME]),
    "/v2/models/{name}/versions/{version}": _get("v2_model_version", "Model metadata",
                                                 [_NAME, _VERSION]),
    "/v2/models/{name}/ready": _get("v2_model_ready", "Model readiness", [_NAME]),
    "/v2/models/{name}/versions/{version}/ready": _get(
        "v2_model_version_ready", "Readiness of one version (404 when it is not served)",
        [_NAME, _VERSION]),
    "/v2/models/{name}/infer": _INFER,
    "/v2/models/{name}/versions/{version}/infer": {"post": {
        **_INFER["post"], "operationId": "v2_infer_version", "parameters": [_NAME, _VERSION]}},
}

ENDPOINTS = Endpoints(name="inference v2", routes=routes, paths=_PATHS,
                      tag="The Open Inference Protocol (KServe V2).")
