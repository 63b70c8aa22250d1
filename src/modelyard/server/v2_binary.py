"""The bytes of the Open Inference Protocol: compressed bodies and binary tensor data.

*Compression.* A request body may come gzip- or deflate-compressed (``Content-Encoding``;
deflate in its zlib wrapping, as HTTP means it, or raw); :func:`decompress` undoes it, with a
bound on the size it may grow to. A response is compressed when ``Accept-Encoding`` asks
for gzip or deflate (:func:`compress`).

*The binary tensor data extension* (Triton's ``binary_tensor_data``): the body is the JSON
request followed by the raw bytes of the tensors that say ``parameters.binary_data_size``, in
input order; the ``Inference-Header-Content-Length`` header gives the JSON part's length.
Tensor bytes are little-endian and row-major; a BOOL is one byte (0 or 1); a BYTES element is
a 4-byte little-endian length then its bytes. :func:`decode` turns one tensor's bytes into
Python values, :func:`encode` does the reverse for an output.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from typing import Any

from modelyard.errors import InvalidInputError

__all__ = ["HEADER_LENGTH", "MAX_BODY", "compress", "decode", "decompress", "encode",
           "split"]

HEADER_LENGTH = "inference-header-content-length"
MAX_BODY = 256 * 1024 * 1024  # bytes a compressed request may expand to

#: NumPy's little-endian type of each fixed-size datatype.
NUMPY_TYPES = {"BOOL": "|b1", "INT8": "<i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8",
               "UINT8": "<u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8",
               "FP16": "<f2", "FP32": "<f4", "FP64": "<f8"}


def decompress(body: bytes, encoding: str | None) -> bytes:
    """``body`` as sent before its ``Content-Encoding`` (gzip, deflate or identity)."""
    coding = (encoding or "identity").strip().lower()
    if coding in ("", "identity"):
        return body
    if coding in ("gzip", "x-gzip"):
        windows = [16 + zlib.MAX_WBITS]
    elif coding == "deflate":  # zlib-wrapped as HTTP says; some clients send it raw
        windows = [zlib.MAX_WBITS, -zlib.MAX_WBITS]
    else:
        raise InvalidInputError(
            f"Content-Encoding {encoding!r} is not supported; send gzip, deflate or an "
            "uncompressed body", field="Content-Encoding")
    for wbits in windows:
        inflater = zlib.decompressobj(wbits)
        try:
            out = inflater.decompress(body, MAX_BODY)
        except zlib.error as exc:
            if wbits != windows[-1]:
                continue
            raise InvalidInputError(f"the request body is not valid {coding} data: {exc}",
                                    field="Content-Encoding") from None
        if inflater.unconsumed_tail:
            raise InvalidInputError(
                f"the request body expands past {MAX_BODY // (1024 * 1024)} MiB",
                field="body")
        return out
    raise AssertionError("unreachable")  # pragma: no cover


def compress(body: bytes, accept: str | None) -> tuple[bytes, str | None]:
    """``body`` compressed with the first of gzip and deflate that ``Accept-Encoding``
    allows, and that coding's name (or the body unchanged and None)."""
    if not accept or len(body) < 512:
        return body, None
    offered = {}
    for part in accept.lower().split(","):
        coding, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        offered[coding.strip()] = quality
    for coding in ("gzip", "deflate"):
        if offered.get(coding, offered.get("*", 0.0)) > 0:
            wbits = 16 + zlib.MAX_WBITS if coding == "gzip" else zlib.MAX_WBITS
            packer = zlib.compressobj(6, zlib.DEFLATED, wbits)
            return packer.compress(body) + packer.flush(), coding
    return body, None


def split(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """The JSON part and the binary part of a request body."""
    if header_length is None:
        return body, b""
    try:
        size = int(header_length)
    except ValueError:
        size = -1
    if not 0 <= size <= len(body):
        raise InvalidInputError(
            f"Inference-Header-Content-Length {header_length!r} must be a whole number of "
            f"bytes between 0 and the body's length ({len(body)})",
            field="Inference-Header-Content-Length")
    return body[:size], body[size:]


def decode(datatype: str, raw: bytes, count: int, name: str) -> list[Any]:
    """The ``count`` values of tensor ``name`` from its binary data."""
    if datatype == "BYTES":
        return _decode_bytes(raw, count, name)
    import numpy as np

    dtype = np.dtype(NUMPY_TYPES[datatype])
    if len(raw) != count * dtype.itemsize:
        raise InvalidInputError(
            f"input {name!r}: {len(raw)} bytes of binary data, but {count} {datatype} "
            f"values take {count * dtype.itemsize}", field=name)
    if datatype == "BOOL":
        bad = next((i for i, b in enumerate(raw) if b > 1), None)
        if bad is not None:
            raise InvalidInputError(f"input {name}[{bad}]: a BOOL byte must be 0 or 1, got "
                                    f"{raw[bad]}", field=f"{name}[{bad}]")
    values: list[Any] = np.frombuffer(raw, dtype=dtype).tolist()
    return values


def _decode_bytes(raw: bytes, count: int, name: str) -> list[Any]:
    values: list[Any] = []
    at = 0
    view = memoryview(raw)
    for i in range(count):
        if at + 4 > len(raw):
            raise InvalidInputError(f"input {name}[{i}]: the binary data ends before the "
                                    f"element's 4-byte length", field=f"{name}[{i}]")
        size = int.from_bytes(view[at:at + 4], "little")
        at += 4
        if at + size > len(raw):
            raise InvalidInputError(f"input {name}[{i}]: the element says {size} bytes but "
                                    f"only {len(raw) - at} remain", field=f"{name}[{i}]")
        try:
            values.append(bytes(view[at:at + size]).decode("utf-8"))
        except UnicodeDecodeError:
            raise InvalidInputError(f"input {name}[{i}]: BYTES elements must be UTF-8 "
                                    "text", field=f"{name}[{i}]") from None
        at += size
    if at != len(raw):
        raise InvalidInputError(f"input {name!r}: {len(raw) - at} bytes of binary data are "
                                f"left after its {count} elements", field=name)
    return values


def encode(datatype: str, values: Sequence[Any]) -> bytes:
    """An output tensor's values as binary data (a null becomes NaN, 0 or empty)."""
    if datatype == "BYTES":
        parts = []
        for value in values:
            data = b"" if value is None else (
                value if isinstance(value, bytes) else str(value).encode("utf-8"))
            parts.append(len(data).to_bytes(4, "little") + data)
        return b"".join(parts)
    import numpy as np

    filler: Any = math.nan if datatype.startswith("FP") else 0
    clean = [filler if v is None else v for v in values]
    return np.asarray(clean, dtype=NUMPY_TYPES[datatype]).tobytes()
