"""The modelyard HTTP server: one Starlette app over one project.

``create_app(yard)`` serves the endpoint groups of :data:`ENDPOINT_GROUPS` (each a route
module contributing its routes and their OpenAPI description), plus any ``extra`` ones.
``modelyard serve`` runs it with uvicorn; with several worker processes uvicorn imports
:func:`app_from_environment`, which opens the project from the environment and the working
directory as ``modelyard.connect()`` does.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from modelyard.client import Yard
from modelyard.errors import ModelyardError
from modelyard.server import features, health, inference_v2, metrics, openapi
from modelyard.server import models as model_endpoints
from modelyard.server.responses import http_error
from modelyard.server.state import Endpoints, ServerState
from modelyard.serving.service import ModelServer

if TYPE_CHECKING:
    from starlette.middleware import Middleware

    from modelyard.server.rpc import Authenticate

__all__ = ["ENDPOINT_GROUPS", "app_from_environment", "create_app"]

logger = logging.getLogger("modelyard.server")

EXIT_FLUSH_S = 10.0  # how long shutdown waits for the prediction log's store

#: The endpoint groups every server has, in the order the OpenAPI document lists them.
ENDPOINT_GROUPS: tuple[Endpoints, ...] = (features.ENDPOINTS, health.ENDPOINTS,
                                          openapi.ENDPOINTS)
#: Added when the server serves models.
MODEL_GROUPS: tuple[Endpoints, ...] = (model_endpoints.ENDPOINTS, inference_v2.ENDPOINTS,
                                       metrics.ENDPOINTS)


def create_app(yard: Yard, *, models: ModelServer | None = None,
               extra: Sequence[Endpoints] = (), owns_yard: bool = False,
               middleware: Sequence[Middleware] = (),
               authenticate: Authenticate | None = None) -> Starlette:
    """The server app for ``yard``'s project, serving ``models`` too when given (loaded by
    the caller; their alias watcher starts and stops with the app). With ``owns_yard`` the
    app closes the Yard when it shuts down; otherwise the caller does. ``middleware`` wraps
    every route (an authentication middleware, say); ``authenticate`` is awaited by each
    metadata API route with the request, raises to refuse it, and returns the identity
    that acts (see :mod:`modelyard.server.rpc`)."""
    state = ServerState(yard, models=models,
                        metrics=None if models is None else models.metrics,
                        authenticate=authenticate)
    groups = [*ENDPOINT_GROUPS, *(MODEL_GROUPS if models is not None else ()), *extra]
    state.openapi = openapi.document(groups)
    try:  # open the online store now, so the first request does not pay for it
        state.online()
    except ModelyardError as exc:  # /readyz reports it; lookups answer with the error
        logger.warning("the online store is not available yet: %s", exc.message)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if models is not None:
            models.start()
        try:
            yield
        finally:
            if models is not None:
                models.close()
            if state.metrics is not None:
                state.metrics.close()
            state.close()
            # Write what the prediction log holds now: uvicorn re-raises the stopping signal
            # once the app is shut down, so nothing after this point is sure to run.
            yard.flush_prediction_log(timeout=EXIT_FLUSH_S)
            if owns_yard:
                yard.close()

    # The model groups' routes are tried first: a predict request, the one that comes by
    # the thousand, then matches at once (the document keeps the groups' order).
    routed = [*(MODEL_GROUPS if models is not None else ()), *ENDPOINT_GROUPS, *extra]
    app = Starlette(routes=[route for group in routed for route in group.routes(state)],
                    exception_handlers={HTTPException: _routing_error}, lifespan=lifespan,
                    middleware=list(middleware))
    app.state.modelyard = state
    return app


async def _routing_error(request: Request, exc: Exception) -> Response:
    """An unknown path or a wrong method: under ``/v2`` in the Open Inference Protocol's
    error body, elsewhere in modelyard's."""
    path = request.url.path
    if path == "/v2" or path.startswith("/v2/"):
        return await inference_v2.http_error(request, exc)
    return await http_error(request, exc)


def app_from_environment() -> Starlette:
    """The app for the project found from the working directory and ``MODELYARD_*``
    settings (the factory ``modelyard serve --workers N`` gives uvicorn)."""
    from modelyard.client import connect
    from modelyard.serving.options import ServeOptions

    yard = connect()
    options = ServeOptions.from_env()
    server = None
    if options is not None and options.models:
        server = options.server(yard)
        server.load_all()
    return create_app(yard, models=server, owns_yard=True)
