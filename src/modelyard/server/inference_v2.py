"""The Open Inference Protocol (KServe V2) over the served models, so existing clients work.

``POST /v2/models/{name}/infer`` takes either one tensor per input column (named as in the
model's signature, shape ``[n]`` or ``[n, 1]``) or a single ``[n, k]`` tensor whose columns
are the signature's inputs in order, and answers one output tensor per signature output.
Requests go through the same :meth:`ModelServer.predict` as ``/v1`` (checks, canary,
prediction log, metrics). Errors answer ``{"error": message}`` as the protocol asks, with
the modelyard error class and details beside it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from modelyard._version import __version__
from modelyard.errors import InvalidInputError, ModelyardError, NotFoundError, StorageError
from modelyard.server.models import request_id
from modelyard.server.responses import JSON, dumps, guarded, json_response, parse_json
from modelyard.server.state import Endpoints, ServerState

if TYPE_CHECKING:
    from modelyard.serving.service import ModelServer

__all__ = ["ENDPOINTS", "infer"]

_INT_TYPES = ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")
_FLOAT_TYPES = ("FP16", "FP32", "FP64")
DATATYPES = ("BOOL", *_INT_TYPES, *_FLOAT_TYPES, "BYTES")
_SIGNATURE_TYPES = {"int": "INT64", "float": "FP64", "bool": "BOOL", "string": "BYTES",
                    "category": "BYTES", "timestamp": "BYTES", "date": "BYTES"}


def _v2_error(exc: ModelyardError) -> Response:
    return json_response({"error": exc.message, "type": type(exc).__name__,
                          "details": exc.details}, exc.http_status)


def _flat(data: Any, where: str) -> list[Any]:
    if not isinstance(data, list):
        raise InvalidInputError(f"{where}.data must be a list", field=f"{where}.data")
    out: list[Any] = []
    stack = [data]
    while stack:  # nested lists in row-major order, flattened without recursion
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        else:
            out.append(item)
    return out


def _tensor(tensor: Any, i: int) -> tuple[str, list[int], list[Any]]:
    where = f"inputs[{i}]"
    if not isinstance(tensor, Mapping):
        raise InvalidInputError(f"{where} must be an object with name, shape, datatype and "
                                "data", field=where)
    missing = [k for k in ("name", "shape", "datatype", "data") if k not in tensor]
    if missing:
        raise InvalidInputError(f"{where} lacks {', '.join(missing)}", field=where)
    name, shape, datatype = tensor["name"], tensor["shape"], tensor["datatype"]
    if not isinstance(name, str):
        raise InvalidInputError(f"{where}.name must be a string", field=f"{where}.name")
    if (not isinstance(shape, list) or not shape or
            not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
        raise InvalidInputError(f"{where}.shape must be a list of non-negative integers",
                                field=f"{where}.shape")
    if datatype not in DATATYPES:
        raise InvalidInputError(f"{where}.datatype {datatype!r} is not one of "
                                f"{', '.join(DATATYPES)}", field=f"{where}.datatype")
    values = _flat(tensor["data"], where)
    if len(values) != math.prod(shape):
        raise InvalidInputError(
            f"{where} ({name!r}) has {len(values)} values but its shape {shape} holds "
            f"{math.prod(shape)}", field=f"{where}.data")
    if datatype == "BYTES":
        bad = next((v for v in values if not isinstance(v, str)), None)
        if bad is not None:
            raise InvalidInputError(f"{where} ({name!r}) is BYTES but holds {bad!r}; send "
                                    "text", field=f"{where}.data")
    return name, shape, values


def instances_of(payload: Any, inputs: Sequence[str]) -> list[dict[str, Any]]:
    """The rows of an inference request, as ``instances`` for the model's inputs."""
    if not isinstance(payload, Mapping):
        raise InvalidInputError("the request body must be a JSON object with 'inputs'",
                                field="body")
    tensors = payload.get("inputs")
    if not isinstance(tensors, list) or not tensors:
        raise InvalidInputError("'inputs' must be a non-empty list of tensors", field="inputs")
    parsed = [_tensor(t, i) for i, t in enumerate(tensors)]
    if len(parsed) == 1 and len(parsed[0][1]) == 2 and parsed[0][0] not in inputs:
        name, shape, values = parsed[0]
        rows, width = shape
        if width != len(inputs):
            raise InvalidInputError(
                f"tensor {name!r} has {width} columns; the model takes {len(inputs)} "
                f"({', '.join(inputs)})", field="inputs[0].shape")
        return [dict(zip(inputs, values[r * width:(r + 1) * width], strict=True))
                for r in range(rows)]
    columns: dict[str, list[Any]] = {}
    for i, (name, shape, values) in enumerate(parsed):
        if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
            raise InvalidInputError(
                f"tensor {name!r} must have shape [n] or [n, 1] (one column), got {shape}",
                field=f"inputs[{i}].shape")
        if name in columns:
            raise InvalidInputError(f"tensor {name!r} is sent twice", field=f"inputs[{i}]")
        columns[name] = values
    unknown = [n for n in columns if n not in inputs]
    if unknown and inputs:
        raise InvalidInputError(f"unknown input tensor(s) {', '.join(unknown)}; the model "
                                f"takes {', '.join(inputs)}", field="inputs")
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise InvalidInputError("the input tensors have different numbers of rows",
                                field="inputs")
    names = list(columns)
    return [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def _output_tensors(server: ModelServer, name: str, predictions: list[Any]
                    ) -> list[dict[str, Any]]:
    served = server.deployment(name).primary.current
    names = ["prediction"] if served is None else served.loaded.output_names
    rows = len(predictions)
    first = next((p for p in predictions if p is not None), None)
    if isinstance(first, list):  # several outputs (or class probabilities) per row
        width = len(first)
        names = names if len(names) == width else [f"prediction_{j}" for j in range(width)]
        flat = [v for p in predictions for v in (p if p is not None else [None] * width)]
        return [{"name": "prediction", "shape": [rows, width], "datatype": _datatype(flat),
                 "data": flat, "parameters": {"columns": names}}]
    return [{"name": names[0], "shape": [rows], "datatype": _datatype(predictions),
             "data": predictions}]


def _datatype(values: list[Any]) -> str:
    kinds = {type(v) for v in values if v is not None}
    if kinds <= {bool} and kinds:
        return "BOOL"
    if kinds <= {int}:
        return "INT64"
    if kinds <= {int, float}:
        return "FP64"
    return "BYTES"


def infer(server: ModelServer, name: str, body: bytes, rid: str,
          version: str | None = None, received: float | None = None) -> bytes:
    """The blocking part of an inference request: its answer as JSON bytes."""
    deployment = server.deployment(name)
    served = deployment.primary.current
    if version is not None and (served is None or str(served.version) != version):
        raise NotFoundError(f"model {name!r} serves version "
                            f"{'none yet' if served is None else served.version}, not "
                            f"{version}", model=name, version=version)
    payload = parse_json(body)
    inputs = [] if served is None else served.loaded.input_names
    rows = instances_of(payload, inputs)
    given = payload.get("id") if isinstance(payload, Mapping) else None
    answer = server.predict(name, {"instances": rows}, rid, received=received, log=False)
    body_out: dict[str, Any] = {
        "model_name": name, "model_version": str(answer.version),
        "id": given if isinstance(given, str) else answer.request_id,
        "parameters": {"request_id": answer.request_id, "role": answer.role},
        "outputs": _output_tensors(server, name, answer.predictions)}
    out = dumps(body_out)
    server.log_answer(answer, received)  # the latency is to the response being ready
    return out


def metadata(server: ModelServer, name: str) -> dict[str, Any]:
    served = server.deployment(name).primary.current
    if served is None:
        raise StorageError(f"model {name!r} is not loaded yet", model=name)
    signature = served.loaded.signature
    inputs = [] if signature is None else [
        {"name": c.name, "datatype": _SIGNATURE_TYPES[c.type], "shape": [-1]}
        for c in signature.inputs]
    outputs = [] if signature is None else [
        {"name": c.name, "datatype": _SIGNATURE_TYPES[c.type], "shape": [-1]}
        for c in signature.outputs]
    return {"name": name, "versions": [str(served.version)],
            "platform": f"modelyard/{served.loaded.runtime}", "inputs": inputs,
            "outputs": outputs}


def routes(state: ServerState) -> list[BaseRoute]:
    def v2(handler: Any) -> Any:
        @guarded
        async def run(request: Request) -> Response:
            try:
                return await handler(request)  # type: ignore[no-any-return]
            except ModelyardError as exc:
                return _v2_error(exc)

        return run

    @v2
    async def server_metadata(request: Request) -> Response:
        return json_response({"name": "modelyard", "version": __version__, "extensions": []})

    @v2
    async def live(request: Request) -> Response:
        return json_response({"live": True})

    @v2
    async def ready(request: Request) -> Response:
        problem = state.model_server().ready()
        return json_response({"ready": problem is None}, 200 if problem is None else 503)

    @v2
    async def model_metadata(request: Request) -> Response:
        name = request.path_params["name"]
        found = await state.call(metadata, state.model_server(), name)
        version = request.path_params.get("version")
        if version is not None and version not in found["versions"]:
            raise NotFoundError(f"model {name!r} serves version {found['versions'][0]}, not "
                                f"{version}", model=name, version=version)
        return json_response(found)

    @v2
    async def model_ready(request: Request) -> Response:
        name = request.path_params["name"]
        deployment = state.model_server().deployment(name)
        loaded = deployment.primary.current is not None
        return json_response({"name": name, "ready": loaded}, 200 if loaded else 503)

    @v2
    async def model_infer(request: Request) -> Response:
        name = request.path_params["name"]
        rid = request_id(request)
        began = time.perf_counter()
        body = await request.body()
        try:
            out = await state.call(infer, state.model_server(), name, body, rid,
                                   request.path_params.get("version"), began)
        except Exception as exc:
            state.failed(name, "infer", rid, exc, began)
            raise
        state.count(name, "infer", 200, began)
        return Response(out, media_type=JSON, headers={"X-Request-ID": rid})

    return [
        Route("/v2", server_metadata, methods=["GET"], name="v2_server"),
        Route("/v2/health/live", live, methods=["GET"], name="v2_live"),
        Route("/v2/health/ready", ready, methods=["GET"], name="v2_ready"),
        Route("/v2/models/{name}", model_metadata, methods=["GET"], name="v2_model"),
        Route("/v2/models/{name}/versions/{version}", model_metadata, methods=["GET"],
              name="v2_model_version"),
        Route("/v2/models/{name}/ready", model_ready, methods=["GET"], name="v2_model_ready"),
        Route("/v2/models/{name}/infer", model_infer, methods=["POST"], name="v2_infer"),
        Route("/v2/models/{name}/versions/{version}/infer", model_infer, methods=["POST"],
              name="v2_infer_version"),
    ]


_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_TENSOR = {"type": "object", "required": ["name", "shape", "datatype", "data"],
           "properties": {"name": {"type": "string"},
                          "shape": {"type": "array", "items": {"type": "integer"}},
                          "datatype": {"enum": list(DATATYPES)}, "data": {"type": "array"},
                          "parameters": {"type": "object"}}}
_V2_ERROR = {"description": "An error: {\"error\": message}, with its type and details.",
             "content": {JSON: {"schema": {"type": "object", "required": ["error"],
                                           "properties": {"error": {"type": "string"}}}}}}


def _get(op: str, summary: str, params: list[Any] | None = None) -> dict[str, Any]:
    return {"get": {"tags": ["inference v2"], "operationId": op, "summary": summary,
                    **({"parameters": params} if params else {}),
                    "responses": {"200": {"description": "OK.", "content": {JSON: {
                        "schema": {"type": "object"}}}}, "404": _V2_ERROR,
                        "503": _V2_ERROR}}}


_INFER = {"post": {
    "tags": ["inference v2"], "operationId": "v2_infer", "parameters": [_NAME],
    "summary": "Open Inference Protocol inference",
    "requestBody": {"required": True, "content": {JSON: {"schema": {
        "type": "object", "required": ["inputs"],
        "properties": {"id": {"type": "string"}, "parameters": {"type": "object"},
                       "inputs": {"type": "array", "items": _TENSOR},
                       "outputs": {"type": "array"}}}}}},
    "responses": {"200": {"description": "The output tensors.", "content": {JSON: {"schema": {
        "type": "object", "required": ["model_name", "outputs"],
        "properties": {"model_name": {"type": "string"}, "model_version": {"type": "string"},
                       "id": {"type": "string"},
                       "outputs": {"type": "array", "items": _TENSOR}}}}}},
                  "404": _V2_ERROR, "422": _V2_ERROR, "503": _V2_ERROR},
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
    "/v2/models/{name}/infer": _INFER,
    "/v2/models/{name}/versions/{version}/infer": {"post": {
        **_INFER["post"], "operationId": "v2_infer_version", "parameters": [_NAME, _VERSION]}},
}

ENDPOINTS = Endpoints(name="inference v2", routes=routes, paths=_PATHS,
                      tag="The Open Inference Protocol (KServe V2).")
