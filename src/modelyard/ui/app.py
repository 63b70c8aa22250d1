"""The web UI as one Starlette app over a Yard: ``ui_app(yard)``.

Pages are rendered on the server (Jinja2 templates in ``templates/``) with a small script
layer (``static/ui.js``: keyboard shortcuts, the column chooser, compare selection); every
asset ships in the package, nothing is fetched from elsewhere. Each view module contributes
its routes; the app adds the static files and the error pages. ``modelyard ui`` runs it
with uvicorn; a server can mount it (``Mount("/ui", app=ui_app(yard, authorize=...))``),
and every link follows the mount's prefix.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from modelyard.client import Yard
from modelyard.errors import ModelyardError
from modelyard.ui.auth import Authorize, allow_all
from modelyard.ui.pages import UiState, page
from modelyard.ui.views import features, home, models, monitoring, pipelines, runs

__all__ = ["ui_app", "ui_routes"]

logger = logging.getLogger("modelyard.ui")


def ui_routes(state: UiState) -> list[BaseRoute]:
    """Every route of the UI, its static files included."""
    return [*home.routes(), *runs.routes(), *models.routes(), *monitoring.routes(),
            *features.routes(), *pipelines.routes(),
            Mount("/static", app=CachedAssets(packages=[("modelyard.ui", "static")]),
                  name="static")]


class CachedAssets(StaticFiles):
    """The static files; those asked for with the digest the pages link them by (``?v=``,
    see ``pages.asset_tag``) may be kept by the browser for a day without asking again,
    so that loading a page costs one request, not three."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code == 200 and b"v=" in scope.get("query_string", b""):
            response.headers["Cache-Control"] = "public, max-age=86400, immutable"
        return response


def ui_app(yard: Yard, *, authorize: Authorize = allow_all,
           identify: Callable[[Request], str | None] | None = None,
           debug: bool = False) -> Starlette:
    """The UI over ``yard``'s project. ``authorize(request, action)`` is asked before every
    action (promote, rollback, approve, reject) and refuses by raising a ModelyardError;
    the default allows all, as suits one person on their own machine. ``identify(request)``
    names who acts, for the alias history and decisions (default: the user running the
    UI)."""
    state = UiState(yard, authorize, identify or (lambda request: None))
    app = Starlette(debug=debug, routes=ui_routes(state), exception_handlers={
        ModelyardError: _modelyard_error, HTTPException: _http_error,
        Exception: _unexpected})
    app.state.ui = state
    return app


async def _modelyard_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ModelyardError)
    status = exc.http_status if 400 <= exc.http_status < 500 else 500
    if status == 500:
        logger.error("the UI could not answer %s: %s", request.url.path, exc)
    return page(request, "error.html", status=status, title=_title(status),
                message=str(exc), kind=type(exc).__name__)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = ("There is no page at this address." if exc.status_code == 404
               else str(exc.detail))
    return page(request, "error.html", status=exc.status_code, title=_title(exc.status_code),
                message=message, kind="")


async def _unexpected(request: Request, exc: Exception) -> Response:
    request_id = uuid.uuid4().hex[:12]
    logger.exception("unexpected error on %s (request %s)", request.url.path, request_id,
                     exc_info=exc)
    return page(request, "error.html", status=500, title=_title(500),
                message=f"Something went wrong on the server (request {request_id}); its "
                        "log has the details.", kind="")


def _title(status: int) -> str:
    return {400: "Bad request", 403: "Not allowed", 404: "Not found", 409: "Conflict",
            422: "Not valid"}.get(status, "Error" if status < 500 else "Server error")
