"""One Open Inference Protocol inference, from request bytes to response bytes.

The input tensors become the rows :meth:`ModelServer.predict` takes, so V2 requests go
through the same checks, canary, prediction log and metrics as ``/v1``:

- one tensor per model input (shape ``[n]`` or ``[n, 1]``), named as in the signature;
- or one ``[n, k]`` tensor whose columns are the signature's inputs in order;
- or, for a model whose features live in the feature store, the entity key tensors (and any
  input or request value the store does not hold): the server looks the features up.

The checks of :mod:`modelyard.serving.inputs` name their problems the ``/v1`` way
(``instances[3].age``); :func:`renamed` maps those onto the tensor and element index
(``age[3]``, or ``input0[3, 1]`` for a matrix). The outputs are one tensor per signature
output, in the datatype of the signature where the values fit it; only the requested ones
are sent, each as JSON or as binary data as asked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelyard.errors import InvalidInputError, ModelyardError, NotFoundError
from modelyard.server.responses import JSON, dumps
from modelyard.server.v2_binary import HEADER_LENGTH, compress, decompress, encode, split
from modelyard.server.v2_tensors import InferRequest, Tensor, parse_request
from modelyard.serving.inputs import MAX_ROWS

if TYPE_CHECKING:
    from modelyard.serving.deployment import Served
    from modelyard.serving.service import ModelServer

__all__ = ["ENTITY_STATUS", "SIGNATURE_TYPES", "infer", "parse_version", "renamed"]

SIGNATURE_TYPES = {"int": "INT64", "float": "FP64", "bool": "BOOL", "string": "BYTES",
                   "category": "BYTES", "timestamp": "BYTES", "date": "BYTES"}
#: The extra output on the entity path: each row's lookup status (found, missing, expired).
ENTITY_STATUS = "entity_status"
BINARY = "application/octet-stream"
_V1_FIELD = re.compile(r"\b(instances|entities)\[(\d+)\](?:\.([^\s:;,()]+))?")
_V1_EXACT = re.compile(r"^(instances|entities)\[(\d+)\](?:\.(.+))?$")


@dataclass(frozen=True)
class Layout:
    """Where each row's values came from, to name a problem after its tensor."""

    matrix: str | None  # the [n, k] tensor, when the request sent one
    columns: Sequence[str]  # the matrix's columns, in order

    def where(self, row: int, column: str | None) -> str:
        if self.matrix is not None:
            if column is not None and column in self.columns:
                return f"{self.matrix}[{row}, {list(self.columns).index(column)}]"
            return f"{self.matrix}[{row}]"
        return f"row {row}" if column is None else f"{column}[{row}]"


def renamed(exc: ModelyardError, layout: Layout) -> ModelyardError:
    """``exc`` with every ``/v1`` field (``instances[3].age``) named after its tensor."""
    if not isinstance(exc, InvalidInputError):
        return exc

    def field(text: str) -> str:
        exact = _V1_EXACT.match(text)
        if exact is not None:
            return layout.where(int(exact.group(2)), exact.group(3))
        return "inputs" if text in ("instances", "entities") else text

    message = exc.message
    details = dict(exc.details)
    problems = details.get("problems")
    if isinstance(problems, list):
        moved = []
        for problem in problems:
            if isinstance(problem, Mapping) and isinstance(problem.get("field"), str):
                old, new = problem["field"], field(problem["field"])
                message = message.replace(f"{old}:", f"{new}:")
                problem = {**problem, "field": new}
            moved.append(problem)
        details["problems"] = moved
    message = _V1_FIELD.sub(lambda m: layout.where(int(m.group(2)), m.group(3)), message)
    message = message.replace("'instances'", "the inputs").replace("'entities'", "the inputs")
    if isinstance(details.get("field"), str):
        details["field"] = field(details["field"])
    out = type(exc)(message, **details)
    out.__cause__ = exc.__cause__
    for key, value in vars(exc).items():  # what the server noted on it (the version that
        if key not in ("message", "details"):  # answered, for the failure log)
            setattr(out, key, value)
    return out


def _quoted(names: Iterable[str]) -> str:
    return ", ".join(map(repr, names))


def parse_version(version: str | None) -> int | None:
    if version is None:
        return None
    if not version.isdigit():
        raise NotFoundError(f"no model version {version!r}: versions are whole numbers",
                            version=version)
    return int(version)


def _rows(served: Served, tensors: list[Tensor]) -> tuple[str, list[dict[str, Any]], Layout]:
    """``("instances" or "entities", rows, layout)`` for the request's tensors."""
    inputs = served.loaded.input_names
    given = [t.name for t in tensors]
    if len(tensors) == 1 and len(tensors[0].shape) == 2 and given[0] not in inputs:
        tensor = tensors[0]
        rows, width = tensor.shape
        if width != len(inputs):
            raise InvalidInputError(
                f"input {tensor.name!r} has {width} columns; the model takes {len(inputs)} "
                f"({', '.join(inputs)})", field=f"{tensor.name}.shape")
        values = tensor.values
        return "instances", [dict(zip(inputs, values[r * width:(r + 1) * width], strict=True))
                             for r in range(rows)], Layout(tensor.name, inputs)
    for tensor in tensors:
        if len(tensor.shape) > 2 or (len(tensor.shape) == 2 and tensor.shape[1] != 1):
            raise InvalidInputError(
                f"input {tensor.name!r} must have shape [n] or [n, 1] (one column), got "
                f"{list(tensor.shape)}", field=f"{tensor.name}.shape")
    counts = {t.name: t.shape[0] for t in tensors}
    if len(set(counts.values())) > 1:
        raise InvalidInputError("the input tensors have different numbers of rows: " + ", ".join(
            f"{n} {c}" for n, c in counts.items()), field="inputs")
    rows = next(iter(counts.values()))
    if rows == 0:
        raise InvalidInputError("the input tensors hold no rows", field="inputs")
    if rows > MAX_ROWS:
        raise InvalidInputError(f"the inputs have {rows:,} rows; at most {MAX_ROWS:,} fit in "
                                "one request", field="inputs")
    source = served.features
    missing = [n for n in inputs if n not in counts]
    kind = "instances"
    allowed = set(inputs)
    if missing and source is not None and all(k in counts for k in source.key_columns):
        kind = "entities"
        allowed |= {*source.key_columns, *source.request_columns}
        missing = [n for n in (*source.request_columns, *source.from_request)
                   if n not in counts]
    unknown = [n for n in given if n not in allowed]
    if unknown and inputs:
        raise InvalidInputError(
            f"unknown input tensor{'s' * (len(unknown) > 1)} {_quoted(unknown)}; the model "
            f"takes {_quoted(inputs)}" + (f" (or the entity keys "
                                             f"{', '.join(source.key_columns)})"
                                             if source is not None else ""), field=unknown[0])
    if missing and inputs:
        raise InvalidInputError(
            f"missing input tensor{'s' * (len(missing) > 1)} {_quoted(missing)}"
            + (f"; send every input, or the entity keys {', '.join(source.key_columns)}"
               if source is not None and kind == "instances" else ""), field=missing[0])
    columns = [t.values for t in tensors]
    return kind, [dict(zip(given, row, strict=True)) for row in zip(*columns, strict=True)], \
        Layout(None, ())


def _fits(datatype: str, values: list[Any]) -> bool:
    kinds = {type(v) for v in values if v is not None}
    if datatype == "BOOL":
        return kinds <= {bool}
    if datatype == "INT64":
        return kinds <= {int}
    if datatype == "FP64":
        return kinds <= {int, float}
    return kinds <= {str}


def _datatype(values: list[Any]) -> str:
    for datatype in ("BOOL", "INT64", "FP64", "BYTES"):
        if _fits(datatype, values):
            return datatype
    return "BYTES"


def _output_tensors(served: Served, predictions: list[Any], status: list[str] | None
                    ) -> dict[str, tuple[str, list[int], list[Any]]]:
    """Every output the model gave: name -> (datatype, shape, flat values)."""
    loaded = served.loaded
    names = loaded.output_names
    declared = {} if loaded.signature is None else {
        c.name: SIGNATURE_TYPES[c.type] for c in loaded.signature.outputs}
    rows = len(predictions)
    first = next((p for p in predictions if p is not None), None)
    columns: dict[str, tuple[list[int], list[Any]]]
    if isinstance(first, list):  # several outputs (or class probabilities) per row
        width = len(first)
        padded = [p if p is not None else [None] * width for p in predictions]
        if width == len(names):
            columns = {n: ([rows], [p[j] for p in padded]) for j, n in enumerate(names)}
        else:
            name = names[0] if len(names) == 1 else "prediction"
            columns = {name: ([rows, width], [v for p in padded for v in p])}
    else:
        columns = {names[0]: ([rows], predictions)}
    out: dict[str, tuple[str, list[int], list[Any]]] = {}
    for name, (shape, values) in columns.items():
        datatype = declared.get(name, "")
        if not datatype or not _fits(datatype, values):
            datatype = _datatype(values)
        if datatype == "BYTES":
            values = [v if v is None or isinstance(v, str) else str(v) for v in values]
        out[name] = (datatype, shape, values)
    if status is not None:
        out[ENTITY_STATUS] = ("BYTES", [rows], list(status))
    return out


def _available(served: Served, kind: str) -> list[str]:
    names = list(served.loaded.output_names)
    return [*names, ENTITY_STATUS] if kind == "entities" else names


def infer(server: ModelServer, name: str, body: bytes, headers: Mapping[str, str], rid: str,
          version: str | None = None, received: float | None = None
          ) -> tuple[bytes, dict[str, str]]:
    """The blocking part of an inference request: the response body and its headers. The
    prediction log gets the answer once the body is ready, with the latency from
    ``received`` (when the handler took the request, ``time.perf_counter()``) to then."""
    deployment = server.deployment(name)
    wanted = parse_version(version)
    served = deployment.choose()[0] if wanted is None else deployment.exact(wanted)[0]
    raw = decompress(body, headers.get("content-encoding"))
    header_length = headers.get(HEADER_LENGTH)
    try:
        request = parse_request(*split(raw, header_length))
    except InvalidInputError as exc:
        if header_length is None and exc.message.startswith("the request body is not valid "
                                                            "JSON"):
            raise InvalidInputError(f"{exc.message} (binary tensor data after the JSON needs "
                                    "the Inference-Header-Content-Length header)",
                                    **exc.details) from None
        raise
    kind, rows, layout = _rows(served, request.inputs)
    available = _available(served, kind)
    unknown = [o.name for o in request.outputs or () if o.name not in available]
    if unknown:
        raise InvalidInputError(
            f"unknown output{'s' * (len(unknown) > 1)} {_quoted(unknown)}; the model gives "
            f"{_quoted(available)}", field=unknown[0])
    try:
        answer = server.predict(name, {kind: rows}, rid, wanted, received=received, log=False)
    except ModelyardError as exc:
        raise renamed(exc, layout) from exc.__cause__
    try:  # the canary may have answered
        answered = served if answer.version == served.version else deployment.exact(
            answer.version)[0]
    except NotFoundError:  # swapped out meanwhile
        answered = served
    tensors = _output_tensors(answered, answer.predictions, answer.status)
    out = _response(request, name, answer.version, answer.request_id, answer.role, tensors,
                    headers.get("accept-encoding"))
    server.log_answer(answer, received)  # the latency is to the response being ready
    return out


def _response(request: InferRequest, name: str, version: int, rid: str, role: str,
              tensors: dict[str, tuple[str, list[int], list[Any]]], accept: str | None
              ) -> tuple[bytes, dict[str, str]]:
    chosen = request.outputs or []
    binary_of = {o.name: o.binary for o in chosen}
    names = [o.name for o in chosen] or list(tensors)
    missing = [n for n in names if n not in tensors]
    if missing:
        raise InvalidInputError(f"the model gave no output {_quoted(missing)} for this "
                                f"request (it gave {_quoted(tensors)})", field=missing[0])
    outputs: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for out in names:
        datatype, shape, values = tensors[out]
        wanted = binary_of.get(out)
        if wanted if wanted is not None else request.binary_output:
            blob = encode(datatype, values)
            blobs.append(blob)
            outputs.append({"name": out, "datatype": datatype, "shape": shape,
                            "parameters": {"binary_data_size": len(blob)}})
        else:
            outputs.append({"name": out, "datatype": datatype, "shape": shape, "data": values})
    header = dumps({"model_name": name, "model_version": str(version),
                    "id": request.id if request.id is not None else rid,
                    "parameters": {"request_id": rid, "role": role}, "outputs": outputs})
    response_headers = {"X-Request-ID": rid, "Content-Type": JSON,
                        "Modelyard-Model-Version": str(version)}
    if blobs:
        response_headers["Inference-Header-Content-Length"] = str(len(header))
        response_headers["Content-Type"] = BINARY
    payload, coding = compress(b"".join([header, *blobs]), accept)
    if coding is not None:
        response_headers["Content-Encoding"] = coding
    return payload, response_headers

