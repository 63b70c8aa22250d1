"""``GET /metrics``: the model server's Prometheus metrics (text exposition format)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from modelyard.server.responses import guarded
from modelyard.server.state import Endpoints, ServerState

__all__ = ["ENDPOINTS"]


def routes(state: ServerState) -> list[BaseRoute]:
    @guarded
    async def metrics(request: Request) -> Response:
        if state.metrics is None:
            return Response(b"", media_type="text/plain; version=0.0.4")
        body, content_type = await state.call(state.metrics.exposition)
        return Response(body, media_type=content_type)

    return [Route("/metrics", metrics, methods=["GET"], name="metrics")]


_PATHS: dict[str, Any] = {
    "/metrics": {"get": {
        "tags": ["metrics"], "operationId": "metrics",
        "summary": "Prometheus metrics: requests, latency, errors, rows, batch sizes, versions",
        "responses": {"200": {"description": "The Prometheus text format.",
                              "content": {"text/plain": {"schema": {"type": "string"}}}}},
    }},
}

ENDPOINTS = Endpoints(name="metrics", routes=routes, paths=_PATHS,
                      tag="Prometheus metrics of the model server.")
