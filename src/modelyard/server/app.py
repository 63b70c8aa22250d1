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

from starlette.applications import Starlette
from starlette.exceptions import HTTPException

from modelyard.client import Yard
from modelyard.errors import ModelyardError
from modelyard.server import features, health, openapi
from modelyard.server.responses import http_error
from modelyard.server.state import Endpoints, ServerState

__all__ = ["ENDPOINT_GROUPS", "app_from_environment", "create_app"]

logger = logging.getLogger("modelyard.server")

#: The endpoint groups every server has, in the order the OpenAPI document lists them.
ENDPOINT_GROUPS: tuple[Endpoints, ...] = (features.ENDPOINTS, health.ENDPOINTS,
                                          openapi.ENDPOINTS)


def create_app(yard: Yard, *, extra: Sequence[Endpoints] = (),
               owns_yard: bool = False) -> Starlette:
    """The server app for ``yard``'s project. With ``owns_yard`` the app closes the Yard
    when it shuts down; otherwise the caller does."""
    state = ServerState(yard)
    groups = [*ENDPOINT_GROUPS, *extra]
    state.openapi = openapi.document(groups)
    try:  # open the online store now, so the first request does not pay for it
        state.online()
    except ModelyardError as exc:  # /readyz reports it; lookups answer with the error
        logger.warning("the online store is not available yet: %s", exc.message)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            state.close()
            if owns_yard:
                yard.close()

    app = Starlette(routes=[route for group in groups for route in group.routes(state)],
                    exception_handlers={HTTPException: http_error}, lifespan=lifespan)
    app.state.modelyard = state
    return app


def app_from_environment() -> Starlette:
    """The app for the project found from the working directory and ``MODELYARD_*``
    settings (the factory ``modelyard serve --workers N`` gives uvicorn)."""
    from modelyard.client import connect

    return create_app(connect(), owns_yard=True)
