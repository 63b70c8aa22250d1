"""The team server (``modelyard server``): one app serving the metadata API of a project.

It is the serving app (health, readiness, online features, OpenAPI) plus the endpoint groups
of the metadata API under ``/api/v1``: tracking, registry, writes and artifacts, each a
module over the project's stores and services. Remote clients reach it with
``modelyard.connect("http://host:port", token=...)``, whose REST stores are the same
interfaces as the SQL ones. Authentication plugs in through ``middleware`` and
``authenticate`` (the security module provides them); without them every caller is let in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from modelyard.server import (
    artifacts_api,
    features_api,
    registry_api,
    tracking_api,
    writes_api,
)
from modelyard.server.app import create_app
from modelyard.server.state import Endpoints

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware

    from modelyard.client import Yard
    from modelyard.server.rpc import Authenticate

__all__ = ["TEAM_GROUPS", "create_team_app", "team_app_from_environment"]

#: The metadata API's endpoint groups, in the order the OpenAPI document lists them.
TEAM_GROUPS: tuple[Endpoints, ...] = (tracking_api.ENDPOINTS, registry_api.ENDPOINTS,
                                      features_api.ENDPOINTS, artifacts_api.ENDPOINTS,
                                      writes_api.ENDPOINTS)


def create_team_app(yard: Yard, *, middleware: Sequence[Middleware] = (),
                    authenticate: Authenticate | None = None,
                    owns_yard: bool = False) -> Starlette:
    """The team server's app over ``yard`` (a SQLite or PostgreSQL project)."""
    return create_app(yard, extra=TEAM_GROUPS, owns_yard=owns_yard, middleware=middleware,
                      authenticate=authenticate)


def team_app_from_environment() -> Starlette:
    """The app for the project found from the working directory and ``MODELYARD_*``
    settings (the factory ``modelyard server --workers N`` gives uvicorn)."""
    from modelyard.client import connect

    return create_team_app(connect(), owns_yard=True)
