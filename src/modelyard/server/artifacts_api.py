"""Artifact blobs streamed both ways, their sha256 checked at both ends.

``PUT /api/v1/artifacts/{sha256}`` receives the body into a temporary file while hashing it;
only a body that arrived whole and hashes to the digest in the path is handed to the
project's artifact store (which installs it atomically), so a dropped upload or a wrong
digest stores nothing. ``GET`` streams the blob through the store's verifying reader (a
corrupted blob breaks the stream at its end) and the client hashes what it receives.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from modelyard.errors import InvalidInputError, NotFoundError
from modelyard.server.responses import guarded
from modelyard.server.rpc import API, wire_response
from modelyard.server.state import Endpoints, ServerState

__all__ = ["ENDPOINTS"]

_BLOCK = 1 << 20
_PATH = API + "/artifacts/{sha256}"


def _digest(request: Request) -> str:
    sha = str(request.path_params["sha256"])
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise NotFoundError(f"{sha!r} is not a sha256 digest (64 lowercase hex digits)",
                            sha256=sha)
    return sha


def routes(state: ServerState) -> list[BaseRoute]:
    async def who(request: Request) -> None:
        if state.authenticate is not None:
            await state.authenticate(request)

    @guarded
    async def upload(request: Request) -> Response:
        await who(request)
        sha = _digest(request)
        fd, name = tempfile.mkstemp(prefix="modelyard-upload-")
        digest, size = hashlib.sha256(), 0
        try:
            with os.fdopen(fd, "wb") as out:
                try:
                    async for chunk in request.stream():
                        digest.update(chunk)
                        out.write(chunk)
                        size += len(chunk)
                except ClientDisconnect:  # nothing is stored of a body that did not arrive
                    return Response(status_code=400)
            declared = request.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) != size:
                raise InvalidInputError(f"the upload of {sha} ended after {size} of "
                                        f"{declared} bytes; nothing was stored", field="body")
            if digest.hexdigest() != sha:
                raise InvalidInputError(
                    f"the uploaded bytes hash to {digest.hexdigest()}, not {sha} as the path "
                    "says; nothing was stored", field="body", sha256=sha)
            await state.call(state.yard.tracking.artifacts.put_file, Path(name))
        finally:
            with contextlib.suppress(OSError):
                os.unlink(name)
        return wire_response({"sha256": sha, "size": size})

    @guarded
    async def download(request: Request) -> Response:
        await who(request)
        sha = _digest(request)
        fh = await state.call(state.yard.tracking.artifacts.open, sha)

        async def blocks() -> AsyncIterator[bytes]:
            try:
                while block := await state.call(fh.read, _BLOCK):
                    yield block
            finally:
                fh.close()

        return StreamingResponse(blocks(), media_type="application/octet-stream",
                                 headers={"X-Modelyard-SHA256": sha})

    @guarded
    async def exists(request: Request) -> Response:
        await who(request)
        return wire_response(await state.call(state.yard.tracking.artifacts.exists,
                                              _digest(request)))

    return [Route(_PATH, upload, methods=["PUT"], name="upload_artifact"),
            Route(_PATH, download, methods=["GET"], name="download_artifact"),
            Route(_PATH + "/exists", exists, methods=["GET"], name="artifact_exists")]


def _op(summary: str, op_id: str) -> dict[str, object]:
    return {"tags": ["artifacts"], "operationId": op_id, "summary": summary,
            "parameters": [{"name": "sha256", "in": "path", "required": True,
                            "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}],
            "responses": {"200": {"description": "Done."},
                          "default": {"description": "An error.", "content": {
                              "application/json": {"schema": {
                                  "$ref": "#/components/schemas/Error"}}}}}}


ENDPOINTS = Endpoints(
    name="artifacts", routes=routes,
    paths={_PATH: {"put": _op("Upload a blob (stored only if whole and matching the digest)",
                              "upload_artifact"),
                   "get": _op("Download a blob", "download_artifact")},
           _PATH + "/exists": {"get": _op("Whether the blob is stored", "artifact_exists")}},
    tag="Artifact blobs by sha256.")
