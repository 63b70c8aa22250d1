"""An Open Inference Protocol inference request, read and checked (no model involved).

:func:`parse_request` takes the JSON part of a request and its binary part (see
:mod:`modelyard.server.v2_binary`) and gives an :class:`InferRequest`: every input tensor with
its values flattened in row-major order and checked against its datatype (an INT64 tensor
holds whole numbers in range, a BOOL tensor booleans, a BYTES tensor text), every requested
output, and the request's parameters. Every ``parameters`` object must be an object of
strings, numbers and booleans, as the protocol defines it. Each error names the tensor and,
for a value, its element index (``age[3]``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelyard.errors import InvalidInputError
from modelyard.server.responses import parse_json
from modelyard.server.v2_binary import decode
from modelyard.serving.inputs import MAX_ROWS

__all__ = ["DATATYPES", "InferRequest", "RequestedOutput", "Tensor", "parse_request"]

_INT_RANGES = {"INT8": (-(2**7), 2**7 - 1), "INT16": (-(2**15), 2**15 - 1),
               "INT32": (-(2**31), 2**31 - 1), "INT64": (-(2**63), 2**63 - 1),
               "UINT8": (0, 2**8 - 1), "UINT16": (0, 2**16 - 1), "UINT32": (0, 2**32 - 1),
               "UINT64": (0, 2**64 - 1)}
_FLOAT_TYPES = ("FP16", "FP32", "FP64")
DATATYPES = ("BOOL", *_INT_RANGES, *_FLOAT_TYPES, "BYTES")
MAX_VALUES = MAX_ROWS * 100  # values in one request, over all its tensors


@dataclass(frozen=True)
class Tensor:
    """One input tensor: its values flat, in row-major order."""

    name: str
    shape: tuple[int, ...]
    datatype: str
    values: list[Any]


@dataclass(frozen=True)
class RequestedOutput:
    name: str
    binary: bool | None  # None: as the request's binary_data_output says


@dataclass(frozen=True)
class InferRequest:
    id: str | None
    parameters: dict[str, Any]
    inputs: list[Tensor]
    outputs: list[RequestedOutput] | None  # None: every output
    binary_output: bool  # outputs as binary data unless an output says otherwise


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parameters_of(value: Any, where: str) -> dict[str, Any]:
    """A ``parameters`` object: string keys, each a string, a number or a boolean."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInputError(f"{where} must be an object of parameters, not "
                                f"{_shown(value)}", field=where)
    for key, item in value.items():
        if not isinstance(item, str | int | float | bool) or (
                isinstance(item, float) and not math.isfinite(item)):
            raise InvalidInputError(f"{where}.{key} must be a string, a number or a boolean, "
                                    f"not {_shown(item)}", field=f"{where}.{key}")
    return dict(value)


def _flag(parameters: Mapping[str, Any], key: str, where: str) -> bool | None:
    value = parameters.get(key)
    if value is not None and not isinstance(value, bool):
        raise InvalidInputError(f"{where}.{key} must be true or false, not {_shown(value)}",
                                field=f"{where}.{key}")
    return value


def _flat(data: Any, name: str) -> list[Any]:
    if not isinstance(data, list):
        raise InvalidInputError(f"input {name!r}: data must be a list, not {_shown(data)}",
                                field=f"{name}.data")
    out: list[Any] = []
    stack = [data]
    while stack:  # nested lists in row-major order, flattened without recursion
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        else:
            out.append(item)
    return out


def check_values(datatype: str, values: list[Any], name: str) -> None:
    """InvalidInputError naming the first element of tensor ``name`` that its datatype cannot
    hold: a BOOL tensor holds booleans, an integer tensor whole numbers in its range (not
    2.0), a floating-point one numbers, a BYTES one strings."""
    if datatype == "BOOL":
        i = next((i for i, v in enumerate(values) if not isinstance(v, bool)), None)
        expected = "true or false"
    elif datatype in _INT_RANGES:
        low, high = _INT_RANGES[datatype]
        i = next((i for i, v in enumerate(values) if isinstance(v, bool) or not isinstance(
            v, int) or not low <= v <= high), None)
        expected = f"a whole number from {low} to {high}"
    elif datatype in _FLOAT_TYPES:
        i = next((i for i, v in enumerate(values)
                  if isinstance(v, bool) or not isinstance(v, int | float)), None)
        expected = "a number"
    else:
        i = next((i for i, v in enumerate(values) if not isinstance(v, str)), None)
        expected = "a string"
    if i is not None:
        article = "an" if datatype[0] in "IF" else "a"
        raise InvalidInputError(f"input {name}[{i}]: {article} {datatype} tensor holds "
                                f"{expected}, got {_shown(values[i])}", field=f"{name}[{i}]")


def _shape(value: Any, name: str) -> tuple[int, ...]:
    if (not isinstance(value, list) or not value or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value)):
        raise InvalidInputError(f"input {name!r}: shape must be a non-empty list of "
                                f"non-negative integers, not {_shown(value)}",
                                field=f"{name}.shape")
    return tuple(value)


def _tensor(tensor: Any, i: int, binary: memoryview, at: int) -> tuple[Tensor, int]:
    """Input ``i`` and where the next binary tensor starts."""
    if not isinstance(tensor, Mapping):
        raise InvalidInputError(f"inputs[{i}] must be an object with name, shape, datatype "
                                "and data", field=f"inputs[{i}]")
    name = tensor.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidInputError(f"inputs[{i}].name must be a non-empty string",
                                field=f"inputs[{i}].name")
    missing = [k for k in ("shape", "datatype") if k not in tensor]
    if missing:
        raise InvalidInputError(f"input {name!r} lacks {' and '.join(missing)}", field=name)
    shape = _shape(tensor["shape"], name)
    datatype = tensor["datatype"]
    if datatype not in DATATYPES:
        raise InvalidInputError(f"input {name!r}: datatype {_shown(datatype)} is not one of "
                                f"{', '.join(DATATYPES)}", field=f"{name}.datatype")
    parameters = parameters_of(tensor.get("parameters"), f"{name}.parameters")
    count = math.prod(shape)
    if count > MAX_VALUES:
        raise InvalidInputError(f"input {name!r} has {count:,} values; at most "
                                f"{MAX_VALUES:,} fit in one request", field=f"{name}.shape")
    size = parameters.get("binary_data_size")
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise InvalidInputError(f"input {name!r}: parameters.binary_data_size must be a "
                                    f"non-negative integer, not {_shown(size)}",
                                    field=f"{name}.parameters.binary_data_size")
        if "data" in tensor:
            raise InvalidInputError(f"input {name!r} has both data and binary_data_size; "
                                    "send one", field=f"{name}.data")
        if at + size > len(binary):
            raise InvalidInputError(
                f"input {name!r}: binary_data_size is {size} but only {len(binary) - at} "
                "bytes of binary data remain (is the Inference-Header-Content-Length header "
                "set?)", field=f"{name}.parameters.binary_data_size")
        values = decode(datatype, bytes(binary[at:at + size]), count, name)
        at += size
    elif "data" not in tensor:
        raise InvalidInputError(f"input {name!r} lacks data (or parameters.binary_data_size "
                                "with binary data after the JSON)", field=f"{name}.data")
    else:
        values = _flat(tensor["data"], name)
        if len(values) != count:
            raise InvalidInputError(f"input {name!r} has {len(values)} values but its shape "
                                    f"{list(shape)} holds {count}", field=f"{name}.data")
        check_values(datatype, values, name)  # binary data has its datatype by construction
    return Tensor(name, shape, datatype, values), at


def _outputs(value: Any) -> list[RequestedOutput] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise InvalidInputError("'outputs' must be a list of {\"name\": ...} objects",
                                field="outputs")
    out: list[RequestedOutput] = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise InvalidInputError(f"outputs[{i}] must be an object with a name",
                                    field=f"outputs[{i}]")
        name = item["name"]
        parameters = parameters_of(item.get("parameters"), f"outputs[{i}].parameters")
        if parameters.get("classification"):
            raise InvalidInputError(f"output {name!r}: the classification extension is not "
                                    "supported", field=f"{name}.parameters.classification")
        if any(o.name == name for o in out):
            raise InvalidInputError(f"output {name!r} is requested twice", field=name)
        out.append(RequestedOutput(name, _flag(parameters, "binary_data", f"{name}.parameters")))
    return out


def parse_request(header: bytes, binary: bytes = b"") -> InferRequest:
    """The inference request in ``header`` (JSON), with its inputs' binary data."""
    payload = parse_json(header)
    if not isinstance(payload, Mapping):
        raise InvalidInputError("the request must be a JSON object with 'inputs'",
                                field="body")
    given = payload.get("id")
    if given is not None and not isinstance(given, str):
        raise InvalidInputError(f"'id' must be a string, not {_shown(given)}", field="id")
    parameters = parameters_of(payload.get("parameters"), "parameters")
    binary_output = bool(_flag(parameters, "binary_data_output", "parameters"))
    tensors = payload.get("inputs")
    if not isinstance(tensors, list) or not tensors:
        raise InvalidInputError("'inputs' must be a non-empty list of tensors", field="inputs")
    view = memoryview(binary)
    at = 0
    inputs: list[Tensor] = []
    for i, item in enumerate(tensors):
        tensor, at = _tensor(item, i, view, at)
        if any(t.name == tensor.name for t in inputs):
            raise InvalidInputError(f"input {tensor.name!r} is sent twice", field=tensor.name)
        inputs.append(tensor)
    if at != len(binary):
        raise InvalidInputError(
            f"{len(binary) - at} bytes of binary data follow the JSON that no input's "
            "binary_data_size accounts for", field="Inference-Header-Content-Length")
    if sum(len(t.values) for t in inputs) > MAX_VALUES:
        raise InvalidInputError(f"the inputs hold more than {MAX_VALUES:,} values; split the "
                                "request", field="inputs")
    return InferRequest(given, parameters, inputs, _outputs(payload.get("outputs")),
                        binary_output)
