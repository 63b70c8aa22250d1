"""What a route uses to check permissions, and the audit of route declarations.

- ``@requires(action, environment=...)`` on an endpoint checks the permission before the
  handler runs and marks the endpoint as guarded by it;
- ``@declares(action, ...)`` only marks it, for a handler that learns the project or the
  environment from its body and checks with ``await require(request, action, ...)``;
- :func:`unguarded_routes` lists every route of an app that is neither public nor marked,
  so a test can assert there is none.

The principal and the security service come from the request's scope, where
:class:`~modelyard.security.middleware.AuthMiddleware` put them.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Host, Mount, Route, WebSocketRoute

from modelyard.errors import AuthenticationError, ConfigurationError
from modelyard.security.permissions import PERMISSIONS, least_role
from modelyard.security.principals import Principal

__all__ = ["PERMISSIONS_ATTR", "PUBLIC_PATHS", "declares", "is_public", "principal_of",
           "require", "requires", "unguarded_routes"]

PERMISSIONS_ATTR = "__modelyard_permissions__"
#: Paths answered without a token: liveness and readiness probes.
PUBLIC_PATHS: tuple[str, ...] = ("/healthz", "/readyz")
STATE_PRINCIPAL = "principal"
STATE_SECURITY = "modelyard_security"
STATE_CHECKS = "modelyard_checks"
STATE_RECORDED = "modelyard_recorded"

Endpoint = Callable[[Request], Awaitable[Response]]
E = TypeVar("E", bound=Callable[..., Any])
EnvironmentOf = str | Callable[[Request], str | None] | None


def is_public(path: str, public: Iterable[str]) -> bool:
    """Whether ``path`` is one of ``public``: an exact path, or a prefix ending in ``/*``."""
    for entry in public:
        if entry.endswith("/*"):
            if path == entry[:-2] or path.startswith(entry[:-1]):
                return True
        elif path == entry:
            return True
    return False


def principal_of(conn: HTTPConnection) -> Principal:
    """The authenticated principal of this request (AuthenticationError if none)."""
    principal = conn.scope.get("state", {}).get(STATE_PRINCIPAL)
    if not isinstance(principal, Principal):
        raise AuthenticationError("this route needs a bearer token, and the request did not "
                                  "pass the authentication middleware")
    return principal


async def require(conn: HTTPConnection, action: str, *, project: str | None = None,
                  environment: str | None = None, target: str = "") -> Principal:
    """Return the principal if it may do ``action`` here; else record the refusal and
    raise PermissionDeniedError naming the permission and the role it needs."""
    import anyio.to_thread

    principal = principal_of(conn)
    state = conn.scope["state"]
    security = state[STATE_SECURITY]
    state.setdefault(STATE_CHECKS, []).append((action, environment))
    if not security.allowed(principal, action, project=project, environment=environment):
        source = state.get("modelyard_source", "")
        state[STATE_RECORDED] = True  # the refusal is the request's audit entry
        await anyio.to_thread.run_sync(functools.partial(
            security.require, principal, action, project=project, environment=environment,
            source=source, target=target or conn.url.path))
    return principal


def _mark(endpoint: E, actions: Sequence[str]) -> E:
    for action in actions:
        least_role(action)  # an unknown permission fails when the route is declared
    known = tuple(getattr(endpoint, PERMISSIONS_ATTR, ()))
    setattr(endpoint, PERMISSIONS_ATTR, known + tuple(actions))
    return endpoint


def declares(*actions: str) -> Callable[[E], E]:
    """Mark an endpoint as checking ``actions`` itself (with :func:`require`)."""
    if not actions:
        raise ConfigurationError("declares() needs at least one permission")

    def decorate(endpoint: E) -> E:
        return _mark(endpoint, actions)

    return decorate


def requires(action: str, *, project: str | Callable[[Request], str] | None = None,
             environment: EnvironmentOf = None) -> Callable[[Endpoint], Endpoint]:
    """Check ``action`` before the endpoint runs; ``project`` and ``environment`` may be
    functions of the request (``lambda r: environment_of_alias(r.path_params["alias"])``)."""
    if action not in PERMISSIONS:
        least_role(action)  # raises, naming the known permissions

    def decorate(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def checked(request: Request) -> Response:
            where = project(request) if callable(project) else project
            env = environment(request) if callable(environment) else environment
            await require(request, action, project=where, environment=env)
            return await endpoint(request)

        return _mark(checked, (action,))

    return decorate


def _guarded(endpoint: Any, methods: Iterable[str] | None) -> bool:
    if inspect.isclass(endpoint):  # an HTTPEndpoint: each method handler is marked
        names = [m.lower() for m in (methods or ("get", "post", "put", "patch", "delete"))]
        handlers = [getattr(endpoint, n) for n in names if hasattr(endpoint, n)]
        return bool(handlers) and all(getattr(h, PERMISSIONS_ATTR, None) for h in handlers)
    return bool(getattr(endpoint, PERMISSIONS_ATTR, None))


def unguarded_routes(app: Any, public: Iterable[str] = PUBLIC_PATHS) -> list[str]:
    """``"METHODS /path"`` of every route that is neither public nor guarded."""
    public = tuple(public)
    found: list[str] = []

    def walk(routes: Sequence[BaseRoute], prefix: str) -> None:
        for route in routes:
            if isinstance(route, (Route, WebSocketRoute)):
                path = prefix + route.path
                methods = getattr(route, "methods", None)
                if not is_public(path, public) and not _guarded(route.endpoint, methods):
                    verbs = ",".join(sorted(methods or ())) or "WS"
                    found.append(f"{verbs} {path}")
            elif isinstance(route, Mount):
                path = prefix + route.path
                inner = getattr(route, "routes", None)
                if inner:
                    walk(inner, path)
                elif not is_public(path + "/", public) and not is_public(path, public):
                    found.append(f"MOUNT {path}")
            elif isinstance(route, Host):
                walk(route.routes, prefix)
            else:
                found.append(f"{type(route).__name__} {getattr(route, 'path', '?')}")

    walk(getattr(app, "routes", app), "")
    return found
