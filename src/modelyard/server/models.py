"""Model endpoints: ``POST /v1/models/{name}/predict`` (feature values or entity keys),
``POST /v1/models/{name}/explain``, ``GET /v1/models`` and ``GET /v1/models/{name}``.

The handler reads the body and hands everything else (parsing, checking, looking features
up, predicting, writing the answer) to one worker thread. A small body to a version that
predicts straight from a matrix (see ``INLINE_BYTES``) is parsed, checked and answered on
the event loop; an ONNX twin's model call alone goes to a worker thread, where onnxruntime
walks the trees without the GIL while the loop goes on with other requests. The prediction
log and the metrics are fed from there too. The latency the log
keeps for a request runs from the handler taking it (before its body is read) to its
response bytes being ready. A failed request is
counted and handed to the prediction log by :meth:`ServerState.failed`.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from modelyard.errors import ModelyardError
from modelyard.server.responses import JSON, dumps, error_response, guarded, parse_json
from modelyard.server.state import Endpoints, ServerState
from modelyard.serving.ids import new_request_id

if TYPE_CHECKING:
    from modelyard.serving.service import ModelServer

__all__ = ["ENDPOINTS", "request_id"]

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# A predict body this small, to a version that answers from a matrix at once (no batcher, no
# feature lookup), is checked and answered on the event loop (a twin's model call alone in a
# worker thread): a few rows cost less to check than a thread hop.
INLINE_BYTES = 4096
#: the version that answered, on every prediction and explanation (a fleet's rollout shows)
VERSION_HEADER = "Modelyard-Model-Version"


def request_id(request: Request) -> str:
    """The client's ``X-Request-ID`` when it is a sensible token, else a new one."""
    given = request.headers.get("x-request-id", "")
    return given if _REQUEST_ID.match(given) else new_request_id()


def predict_body(server: ModelServer, name: str, body: bytes, rid: str,
                 received: float) -> tuple[bytes, int]:
    """The whole blocking part of a predict request: its answer as JSON bytes, and the
    version that answered. The prediction log gets the answer once those bytes are ready,
    with the latency from ``received`` (when the handler took the request,
    ``time.perf_counter()``) to then."""
    answer = server.predict(name, parse_json(body), rid, received=received, log=False)
    out = dumps(answer.to_dict())
    server.log_answer(answer, received)
    return out, answer.version


async def predict_split(state: ServerState, server: ModelServer, name: str, body: bytes,
                        rid: str, received: float) -> tuple[bytes, int]:
    """:func:`predict_body` on the event loop (a small request to a version that answers
    from a matrix), with only the model call in a worker thread when it lets go of the GIL
    (an ONNX twin); a walked forest is answered on the loop."""
    prepared = server.prepare(name, parse_json(body), rid, received=received)
    # A call that holds the GIL (a walked forest) would only fight the loop for it
    predicted = await state.call(prepared.run) if prepared.offload else prepared.run()
    answer = server.finish(prepared, predicted, log=False)
    out = dumps(answer.to_dict())
    server.log_answer(answer, received)
    return out, answer.version


def explain_body(server: ModelServer, name: str, body: bytes, rid: str,
                 received: float) -> tuple[bytes, int]:
    explained = server.explain(name, parse_json(body), rid)
    return dumps(explained), int(explained["version"])


def describe(server: ModelServer, name: str | None = None) -> Any:
    if name is not None:
        return server.describe(name)
    return {"models": [server.describe(n) for n in sorted(server.deployments)]}


def routes(state: ServerState) -> list[BaseRoute]:
    def measured(endpoint: str, work: Any) -> Any:
        @guarded
        async def handler(request: Request) -> Response:
            server = state.model_server()
            name = request.path_params["name"]
            rid = request_id(request)
            began = time.perf_counter()
            body = await request.body()
            try:
                if (endpoint == "predict" and len(body) <= INLINE_BYTES
                        and b'"entities"' not in body and server.answers_inline(name)):
                    payload, version = await predict_split(state, server, name, body, rid,
                                                           began)
                else:
                    payload, version = await state.call(work, server, name, body, rid, began)
            except ModelyardError as exc:
                state.failed(name, endpoint, rid, exc, began)
                return error_response(exc, {"X-Request-ID": rid})
            except Exception as exc:  # guarded answers 500 and logs it
                state.failed(name, endpoint, rid, exc, began)
                raise
            state.count(name, endpoint, 200, began)
            return Response(payload, media_type=JSON,
                            headers={"X-Request-ID": rid, VERSION_HEADER: str(version)})

        return handler

    @guarded
    async def list_models(request: Request) -> Response:
        return Response(dumps(await state.call(describe, state.model_server())),
                        media_type=JSON)

    @guarded
    async def show_model(request: Request) -> Response:
        return Response(dumps(await state.call(describe, state.model_server(),
                                               request.path_params["name"])),
                        media_type=JSON)

    return [
        Route("/v1/models", list_models, methods=["GET"], name="list_models"),
        Route("/v1/models/{name}", show_model, methods=["GET"], name="show_model"),
        Route("/v1/models/{name}/predict", measured("predict", predict_body),
              methods=["POST"], name="predict"),
        Route("/v1/models/{name}/explain", measured("explain", explain_body),
              methods=["POST"], name="explain"),
    ]


def _error(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}}}


_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"},
         "description": "The model's name, as served (modelyard serve NAME@ALIAS)."}
_ROWS_SCHEMA = {"type": "array", "minItems": 1, "items": {"type": "object"}}
_REQUEST = {
    "type": "object",
    "description": "Exactly one of instances and entities. The document lists each served "
                   "model's own body under its own path, /v1/models/NAME/predict.",
    "additionalProperties": False,
    "oneOf": [{"required": ["instances"]}, {"required": ["entities"]}],
    "properties": {
        "instances": {**_ROWS_SCHEMA, "description": "One object of input values per row, "
                      "named as in the model's signature.",
                      "examples": [[{"age": 42, "region": "north"}]]},
        "entities": {**_ROWS_SCHEMA, "description": "One object per row with the entity "
                     "keys (and any input or request value not in the feature store); the "
                     "server looks the model's features up in the online store.",
                     "examples": [[{"customer_id": 42}]]},
        "parameters": {"description": "Reserved: any value, ignored."},
    },
}
_ANSWER = {
    "type": "object",
    "required": ["model", "version", "request_id", "predictions"],
    "properties": {
        "model": {"type": "string"},
        "version": {"type": "integer", "description": "The version that answered."},
        "request_id": {"type": "string", "description": "Also in the X-Request-ID header; "
                       "the prediction log keeps it, for labels to refer to."},
        "predictions": {"type": "array", "description": "One per row, in order (null for a "
                        "row that could not be predicted: see errors)."},
        "role": {"enum": ["canary"], "description": "Present when a canary answered."},
        "status": {"type": "array", "items": {"enum": ["found", "missing", "expired"]},
                   "description": "Per row, on the entity path: the feature lookup's status."},
        "errors": {"type": "object", "additionalProperties": {"type": "string"},
                   "description": "Row position -> why that row has no prediction."},
    },
}
_EXPLANATION = {
    "type": "object",
    "required": ["model", "version", "request_id", "method", "base_value", "rows"],
    "properties": {
        "model": {"type": "string"}, "version": {"type": "integer"},
        "request_id": {"type": "string"},
        "method": {"enum": ["tree", "linear", "kernel"]},
        "space": {"enum": ["prediction", "probability", "margin"],
                  "description": "What the contributions add up to: the prediction, the "
                                 "positive class's probability, or the raw margin."},
        "outputs": {"type": "array", "items": {"type": "string"}},
        "base_value": {"description": "The expected model output over the background."},
        "rows": {"type": "array", "items": {"type": "object", "properties": {
            "prediction": {}, "contributions": {"type": "object", "additionalProperties": {
                "type": "number"}}}}},
    },
}
_RESPONSES = {
    "404": _error("The model is not served here (on explain: or an entity row has no "
                  "current stored values, so there is nothing to explain)."),
    "422": _error("The body does not fit the model's signature: each problem is listed "
                  "with its field (instances[3].age)."),
    "500": _error("An unexpected server error (its request id is logged)."),
    "503": _error("The model is still loading, or a store does not answer."),
}
_PATHS: dict[str, Any] = {
    "/v1/models": {"get": {
        "tags": ["models"], "operationId": "list_models", "summary": "The models served",
        "responses": {"200": {"description": "Each model with the version of each role.",
                              "content": {JSON: {"schema": {"type": "object"}}}}},
    }},
    "/v1/models/{name}": {"get": {
        "tags": ["models"], "operationId": "show_model", "parameters": [_NAME],
        "summary": "A served model: versions, signature, the features it looks up",
        "responses": {"200": {"description": "The model.", "content": {JSON: {
            "schema": {"type": "object"}}}}, "404": _RESPONSES["404"]},
    }},
    "/v1/models/{name}/predict": {"post": {
        "tags": ["models"], "operationId": "predict", "parameters": [_NAME],
        "summary": "Predictions from input values or from entity keys",
        "requestBody": {"required": True, "content": {JSON: {
            "schema": {"$ref": "#/components/schemas/PredictRequest"}}}},
        "responses": {"200": {"description": "One prediction per row.", "content": {JSON: {
            "schema": {"$ref": "#/components/schemas/PredictResponse"}}}}, **_RESPONSES},
    }},
    "/v1/models/{name}/explain": {"post": {
        "tags": ["models"], "operationId": "explain", "parameters": [_NAME],
        "summary": "Predictions with per-feature contributions (SHAP)",
        "requestBody": {"required": True, "content": {JSON: {
            "schema": {"$ref": "#/components/schemas/PredictRequest"}}}},
        "responses": {"200": {"description": "Each row's prediction and contributions.",
                              "content": {JSON: {"schema": {
                                  "$ref": "#/components/schemas/Explanation"}}}},
                      **_RESPONSES},
    }},
}

ENDPOINTS = Endpoints(
    name="models", routes=routes, paths=_PATHS,
    schemas={"PredictRequest": _REQUEST, "PredictResponse": _ANSWER,
             "Explanation": _EXPLANATION},
    tag="Served models: predictions and explanations.")
