"""The OpenAPI description of each served model: its own paths, with its real inputs.

The generic model paths (``/v1/models/{name}/predict``, ``/v2/models/{name}/infer``) say
what every model's body looks like; this module adds, per served model, concrete paths
(``/v1/models/claims-model/predict``, ``.../explain``, ``/v2/models/claims-model/infer``)
whose request schemas hold the version's signature: each input a property of its JSON type
and domain (an ``int`` an integer within int64, a ``float`` a finite number within float64,
or float32 where the model computes in it, nullable where the signature says so), no other
property (unknown fields are refused), and, for a model whose features live in the feature
store, the entity form with its keys. A client or a fuzzer reading the document can so build
bodies the server accepts.

The description follows the primary version of each model: :func:`served_key` names the
versions being served, and the document is rebuilt when they change (a hot swap).
"""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING, Any

from modelyard.server.responses import JSON
from modelyard.server.v2_infer import ENTITY_STATUS, SIGNATURE_TYPES
from modelyard.serving.inputs import FLOAT32_MAX, INT64_MAX, INT64_MIN, MAX_ROWS

if TYPE_CHECKING:
    from modelyard.features.online import OnlineService
    from modelyard.registry.signature import ColumnSpec
    from modelyard.serving.deployment import Served
    from modelyard.serving.service import ModelServer

__all__ = ["model_paths", "served_key"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")  # what a component name may not hold
_V2_TYPES = SIGNATURE_TYPES

#: The JSON value of each signature type (before its range and nullability).
_JSON_TYPES: dict[str, dict[str, Any]] = {
    "int": {"type": "integer", "minimum": INT64_MIN, "maximum": INT64_MAX},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "string": {"type": "string"},
    "category": {"type": "string"},
    "timestamp": {"type": "string", "format": "date-time"},
    "date": {"type": "string", "format": "date"},
}


def served_key(server: ModelServer) -> tuple[tuple[str, int | None], ...]:
    """Which version each model's primary serves now: the document is built for this."""
    return tuple((name, None if d.primary.current is None else d.primary.current.version)
                 for name, d in sorted(server.deployments.items()))


def _error(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _v2_error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": {
        "type": "object", "required": ["error"],
        "properties": {"error": {"type": "string"}, "type": {"type": "string"},
                       "details": {"type": "object"}}}}}}


def value_schema(column: ColumnSpec, float_max: float = sys.float_info.max) -> dict[str, Any]:
    """The JSON schema of one input value in a ``/v1`` row."""
    schema = dict(_JSON_TYPES[column.type])
    if column.type == "float":
        schema.update(minimum=-float_max, maximum=float_max)
    if column.nullable:
        schema["type"] = [schema["type"], "null"]
    return schema


def _float_max(served: Served) -> float:
    decoder = served.loaded.decoder
    return FLOAT32_MAX if decoder is not None and decoder.float_width == "float32" \
        else sys.float_info.max


def _rows(items: dict[str, Any], description: str) -> dict[str, Any]:
    return {"type": "array", "minItems": 1, "maxItems": MAX_ROWS, "items": items,
            "description": description}


def key_kinds(online: OnlineService | None, refs: tuple[str, ...]) -> dict[str, str]:
    """Each entity key column's kind as the online store keeps it (``int``, ``string``,
    ``other``); empty when the store cannot say now."""
    if online is None:
        return {}
    try:
        plan = online.plan(list(refs))
    except Exception:  # the store is down: the keys are described loosely
        return {}
    return {k: kind for g in plan.groups
            for k, kind in zip(g.layout.keys, g.layout.key_kinds, strict=True)}


def _key(kind: str | None) -> dict[str, Any]:
    if kind == "int":
        return {"type": "integer", "minimum": INT64_MIN, "maximum": INT64_MAX,
                "description": "An entity key (a whole number)."}
    if kind == "string":
        return {"type": "string", "description": "An entity key (text)."}
    return {"type": ["string", "integer"], "minimum": INT64_MIN, "maximum": INT64_MAX,
            "description": "An entity key: text or a whole number within int64."}


def _request(name: str, served: Served, kinds: dict[str, str]) -> dict[str, Any]:
    """The ``/v1`` predict (and explain) body of one model's primary version."""
    signature = served.loaded.signature
    reserved = {"description": "Reserved: any value, ignored."}
    if signature is None:  # no signature: rows go to the model as they are
        row: dict[str, Any] = {"type": "object"}
        return {"type": "object", "additionalProperties": False, "required": ["instances"],
                "properties": {"instances": _rows(row, "One object per row."),
                               "parameters": reserved}}
    float_max = _float_max(served)
    inputs = {c.name: value_schema(c, float_max) for c in signature.inputs}
    instance = {"type": "object", "additionalProperties": False,
                "required": list(inputs), "properties": inputs}
    forms = [{"type": "object", "additionalProperties": False, "required": ["instances"],
              "properties": {"instances": _rows(instance, f"The inputs of {name}, one "
                                                "object per row."), "parameters": reserved}}]
    source = served.features
    if source is not None:
        props: dict[str, Any] = {k: _key(kinds.get(k)) for k in source.key_columns}
        for request_column in source.request_columns:
            props[request_column] = {
                "type": ["string", "number", "boolean", "null"],
                "description": "A request value a request-time feature needs."}
        carried = [c for c in signature.inputs if c.name in set(source.from_request)]
        for column in carried:
            props[column.name] = value_schema(column, float_max)
        entity = {"type": "object", "additionalProperties": False, "properties": props,
                  "required": [*source.key_columns, *source.request_columns,
                               *(c.name for c in carried)]}
        forms.append({"type": "object", "additionalProperties": False,
                      "required": ["entities"],
                      "properties": {"entities": _rows(entity, (
                          "One object per row: the entity keys "
                          f"({', '.join(source.key_columns)}) and the inputs the feature store "
                          "does not hold; the server looks "
                          f"{', '.join(source.stored)} up.")), "parameters": reserved}})
    return forms[0] if len(forms) == 1 else {"oneOf": forms}


def _prediction(served: Served) -> dict[str, Any]:
    """One row's prediction: the output's value (null for a row without one)."""
    signature = served.loaded.signature
    outputs = [] if signature is None else list(signature.outputs)
    if len(outputs) != 1:
        return {"description": "The row's prediction (a list where the model gives several "
                               "values per row)."}
    column = outputs[0]
    schema = dict(_JSON_TYPES[column.type])
    schema.pop("format", None)
    schema.pop("minimum", None)
    schema.pop("maximum", None)
    return {"anyOf": [schema, {"type": "array"}, {"type": "null"}],
            "description": f"The row's {column.name} ({column.type}); a list where the model "
                           "gives several values per row; null for a row without one."}


def _answer(served: Served) -> dict[str, Any]:
    return {"allOf": [{"$ref": "#/components/schemas/PredictResponse"}, {
        "type": "object", "properties": {"predictions": {
            "type": "array", "items": _prediction(served)}}}]}


#: Parameters at every level: strings, numbers and booleans (null is none).
_PARAMETERS = {"type": ["object", "null"],
               "additionalProperties": {"type": ["string", "number", "boolean"]}}


def _tensor(name: str, datatype: str, element: dict[str, Any]) -> dict[str, Any]:
    """A one-row tensor of ``name``: what a generated request sends (any ``[n]`` works;
    other fields of a tensor are ignored)."""
    return {"type": "object", "required": ["name", "shape", "datatype", "data"],
            "properties": {"name": {"const": name}, "datatype": {"const": datatype},
                           "shape": {"type": "array", "prefixItems": [{"const": 1}],
                                     "minItems": 1, "maxItems": 1},
                           "data": {"type": "array", "items": element, "minItems": 1,
                                    "maxItems": 1},
                           "parameters": {**_PARAMETERS, "properties": {
                               "binary_data_size": False}}}}


_STRICT = ("Written without a fraction: the protocol's datatypes are strict, so 2.0 is "
           "refused in an INT64 tensor.")


def _element(column: ColumnSpec, float_max: float) -> dict[str, Any]:
    """One element of an input tensor (the protocol has no null)."""
    schema = dict(_JSON_TYPES[column.type])
    if column.type == "float":
        schema.update(minimum=-float_max, maximum=float_max)
    if column.type == "int":
        schema["description"] = _STRICT
    return schema


def _infer_request(served: Served, kinds: dict[str, str]) -> dict[str, Any]:
    """The ``/v2`` infer body of one model's primary version."""
    signature = served.loaded.signature
    names = {"type": "string"} if signature is None else {"enum": signature.output_names}
    outputs = {"type": ["array", "null"], "uniqueItems": True,
               "description": "The outputs to answer (all when none).",
               "items": {"type": "object", "required": ["name"],
                         "properties": {"name": names, "parameters": _PARAMETERS}}}
    frame: dict[str, Any] = {
        "type": "object", "required": ["inputs"],
        "description": "Other fields are ignored; a null id, parameters or outputs is none.",
        "properties": {"id": {"type": ["string", "null"]}, "parameters": _PARAMETERS,
                       "outputs": outputs}}
    if signature is None:
        return {**frame, "properties": {**frame["properties"], "inputs": {"type": "array"}}}
    float_max = _float_max(served)
    columns = list(signature.inputs)
    forms = [[_tensor(c.name, _V2_TYPES[c.type], _element(c, float_max)) for c in columns]]
    source = served.features
    if source is not None:
        whole = {**_JSON_TYPES["int"], "description": _STRICT}
        keys = [_tensor(k, "INT64", whole) if kinds.get(k) == "int"
                else _tensor(k, "BYTES", {"type": "string"}) if kinds.get(k) == "string"
                else {"anyOf": [_tensor(k, "INT64", whole),
                                _tensor(k, "BYTES", {"type": "string"})]}
                for k in source.key_columns]
        carried = [c for c in columns if c.name in set(source.from_request)]
        forms.append(keys + [_tensor(c.name, _V2_TYPES[c.type], _element(c, float_max))
                             for c in carried])
    arrays = [{"type": "array", "prefixItems": form, "minItems": len(form),
               "maxItems": len(form)} for form in forms]
    inputs: dict[str, Any] = arrays[0] if len(arrays) == 1 else {"anyOf": arrays}
    if source is not None and source.request_columns:  # not described tensor by tensor
        inputs = {"type": "array", "minItems": 1}
    inputs["description"] = ("One tensor per input, in the signature's order" + (
        ", or the entity keys and the inputs the feature store does not hold"
        if source is not None else "") + "; shown with one row, any [n] works alike.")
    return {**frame, "properties": {**frame["properties"], "inputs": inputs}}


def _infer_answer(served: Served) -> dict[str, Any]:
    signature = served.loaded.signature
    names = [] if signature is None else signature.output_names
    if served.features is not None:
        names.append(ENTITY_STATUS)
    tensor = {"type": "object", "required": ["name", "shape", "datatype"],
              "properties": {"name": {"enum": names} if names else {"type": "string"},
                             "shape": {"type": "array", "items": {"type": "integer"}},
                             "datatype": {"type": "string"}, "data": {"type": "array"}}}
    return {"type": "object", "required": ["model_name", "outputs"],
            "properties": {"model_name": {"type": "string"},
                           "model_version": {"type": "string"}, "id": {"type": "string"},
                           "parameters": {"type": "object"},
                           "outputs": {"type": "array", "items": tensor}}}


_V1_ERRORS = {
    "422": _error("The body does not fit the model's signature: each problem is listed "
                  "with its field (instances[3].age)."),
    "500": _error("An unexpected server error (its request id is logged)."),
    "503": _error("The model is still loading, or a store does not answer."),
}


def model_paths(server: ModelServer, online: OnlineService | None = None
                ) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(paths, schemas)``: the concrete paths of every model whose primary is loaded
    (``online`` tells the entity keys' types)."""
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    taken: set[str] = set()
    for name, deployment in sorted(server.deployments.items()):
        served = deployment.primary.current
        if served is None:  # still loading: the generic paths describe it
            continue
        base = _UNSAFE.sub("_", name)
        ident = base
        while ident in taken:
            ident += "_"
        taken.add(ident)
        request, answer = f"PredictRequest.{ident}", f"PredictResponse.{ident}"
        kinds = {} if served.features is None else key_kinds(online, served.features.refs)
        schemas[request] = _request(name, served, kinds)
        schemas[answer] = _answer(served)
        schemas[f"InferRequest.{ident}"] = _infer_request(served, kinds)
        schemas[f"InferResponse.{ident}"] = _infer_answer(served)
        body = {"required": True, "content": {JSON: {"schema": {
            "$ref": f"#/components/schemas/{request}"}}}}
        where = f"{name} (version {served.version} answers; a canary may take a share)"
        paths[f"/v1/models/{name}/predict"] = {"post": {
            "tags": ["models"], "operationId": f"predict.{ident}",
            "summary": f"Predictions of {where}", "requestBody": body,
            "responses": {"200": {"description": "One prediction per row.", "content": {
                JSON: {"schema": {"$ref": f"#/components/schemas/{answer}"}}}},
                **_V1_ERRORS}}}
        paths[f"/v1/models/{name}/explain"] = {"post": {
            "tags": ["models"], "operationId": f"explain.{ident}",
            "summary": f"Explanations of {name}'s primary version {served.version}",
            "requestBody": body,
            "responses": {"200": {"description": "Each row's prediction and contributions.",
                                  "content": {JSON: {"schema": {
                                      "$ref": "#/components/schemas/Explanation"}}}},
                          "404": _error("An entity row has no current stored values (it is "
                                        "missing or expired): nothing to explain."),
                          **_V1_ERRORS}}}
        paths[f"/v2/models/{name}/infer"] = {"post": {
            "tags": ["inference v2"], "operationId": f"v2_infer.{ident}",
            "summary": f"Open Inference Protocol inference of {where}",
            "requestBody": {"required": True, "content": {JSON: {"schema": {
                "$ref": f"#/components/schemas/InferRequest.{ident}"}}}},
            "responses": {"200": {"description": "The output tensors.", "content": {JSON: {
                "schema": {"$ref": f"#/components/schemas/InferResponse.{ident}"}}}},
                "400": _v2_error("The tensors do not fit the model's signature."),
                "500": _v2_error("An unexpected server error."),
                "503": _v2_error("The model is still loading, or a store does not answer.")}}}
    return paths, schemas
