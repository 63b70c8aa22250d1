"""JSON bodies and error answers shared by every endpoint.

Every answer that is not a success carries the error body of
:meth:`modelyard.errors.ModelyardError.to_dict` (``error``, ``message``, ``status``,
``details``) with ``status`` equal to the HTTP status, so a client can raise the same error
class again (:func:`modelyard.errors.error_from_dict`).
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import math
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from modelyard.errors import InvalidInputError, ModelyardError, NotFoundError

__all__ = ["JSON", "dumps", "error_response", "guarded", "http_error", "json_response",
           "logger", "parse_json", "strict_dumps"]

logger = logging.getLogger("modelyard.server")

JSON = "application/json"
Handler = Callable[[Request], Awaitable[Response]]
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def _default(value: Any) -> Any:
    """What JSON cannot hold natively: times as ISO 8601, bytes as base64."""
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return float(value) if value.is_finite() else None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if hasattr(value, "tolist"):  # a NumPy scalar or array
        return value.tolist()
    return str(value)


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinity (at any depth) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def strict_dumps(payload: Any) -> bytes:
    """Compact JSON; ValueError when ``payload`` holds a NaN or an infinity."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                      default=_default).encode("utf-8")


def dumps(payload: Any) -> bytes:
    """Compact, valid JSON: NaN and infinities become null. Written by orjson (the server
    extra's encoder, several times faster) when it takes the payload, else as
    :func:`strict_dumps` writes it, with NaN and infinities looked for only when present."""
    if _fast_dumps is not None:
        try:
            return _fast_dumps(payload)
        except TypeError:  # what orjson refuses (an integer past 64 bits...): json decides
            pass
    try:
        return strict_dumps(payload)
    except ValueError:  # a NaN or an infinity somewhere: the slow path
        return strict_dumps(_finite(payload))


def _orjson_dumps() -> Callable[[Any], bytes] | None:
    try:
        import orjson
    except ImportError:  # the server extra's encoder is missing: the standard library's
        return None
    option = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
    encode = orjson.dumps

    def fast(payload: Any) -> bytes:
        # orjson writes NaN and infinities as null, as dumps() promises
        return encode(payload, default=_default, option=option)

    return fast


_fast_dumps = _orjson_dumps()


def json_response(payload: Any, status: int = 200,
                  headers: Mapping[str, str] | None = None) -> Response:
    return Response(dumps(payload), status_code=status, headers=headers, media_type=JSON)


def _orjson_loads() -> Callable[[bytes], Any] | None:
    try:
        import orjson
    except ImportError:  # the server extra's parser is missing: the standard library's
        return None
    loads: Callable[[bytes], Any] = orjson.loads
    return loads


# orjson parses a body several times faster than json; whatever it refuses goes to json,
# which accepts the same documents as before (NaN, integers past 64 bits) and says why not
_fast_loads = _orjson_loads()


def parse_json(body: bytes) -> Any:
    """The request body as JSON; InvalidInputError (422) naming the body when it is not."""
    if not body.strip():
        raise InvalidInputError("the request body is empty; send a JSON object",
                                field="body")
    if _fast_loads is not None:
        try:
            return _fast_loads(body)
        except ValueError:  # orjson is stricter (NaN, huge integers): json decides
            pass
    try:
        return json.loads(body)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError alike
        raise InvalidInputError(f"the request body is not valid JSON: {exc}",
                                field="body") from None
    except RecursionError:
        raise InvalidInputError("the request body nests too deeply", field="body") from None


def error_response(error: ModelyardError, headers: Mapping[str, str] | None = None
                   ) -> Response:
    return json_response(error.to_dict(), error.http_status, headers)


def _request_id(request: Request) -> str:
    given = request.headers.get("x-request-id", "")
    return given if _REQUEST_ID.match(given) else uuid.uuid4().hex[:16]


def guarded(handler: Handler) -> Handler:
    """Run an endpoint so that no exception escapes it: a ModelyardError answers with its
    own status and body; anything else is logged with a request id and answers 500, and
    the server goes on serving."""

    @functools.wraps(handler)
    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except ModelyardError as exc:
            if exc.http_status >= 500:
                logger.warning("%s %s: %s: %s", request.method, request.url.path,
                               type(exc).__name__, exc.message)
            return error_response(exc)
        except Exception:
            request_id = _request_id(request)
            logger.exception("%s %s failed (request id %s)", request.method,
                             request.url.path, request_id)
            error = ModelyardError(
                f"internal server error; the server log has the details under request id "
                f"{request_id}", request_id=request_id)
            return error_response(error, {"X-Request-ID": request_id})

    return run


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (unknown path, wrong method) in the error body shape."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    headers = exc.headers if isinstance(exc, HTTPException) else None
    if status == 404:
        error: dict[str, Any] = NotFoundError(
            f"no endpoint at {request.url.path}; GET /openapi.json lists them",
            path=request.url.path).to_dict()
    else:
        allowed = (headers or {}).get("Allow", "")
        message = (f"{request.method} is not allowed on {request.url.path}"
                   + (f"; use {allowed}" if allowed else "")) if status == 405 else str(
            getattr(exc, "detail", "") or "request failed")
        error = {"error": "ModelyardError", "message": message,
                 "status": status, "details": {"path": request.url.path}}
    return json_response(error, status, headers)
