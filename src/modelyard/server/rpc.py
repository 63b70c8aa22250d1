"""What the team server's API routes share: the wire codec, authentication, a thread per call.

An operation is a plain function ``(state, call) -> result`` that calls one store or service
method; :func:`api_group` turns a table of them into an :class:`Endpoints` group whose routes
read the body with the wire codec (:mod:`modelyard.backends.metadata.wire`), ask the
server's ``authenticate`` dependency who is calling (the seam the security module plugs
into: it raises to refuse, and what it returns is ``call.identity``), run the operation in a
worker thread and answer its result in the same codec. Errors answer as every endpoint does
(:func:`~modelyard.server.responses.guarded`): the error's own status and body.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from modelyard.backends.metadata import wire
from modelyard.errors import InvalidInputError
from modelyard.server.responses import JSON, guarded
from modelyard.server.state import Endpoints, ServerState

__all__ = ["API", "Authenticate", "Call", "Operation", "api_group", "wire_response"]

API = "/api/v1"

#: Who is calling: raises a ModelyardError (401/403) to refuse; the result is the identity
Authenticate = Callable[[Request], Awaitable[Any]]


@dataclass(frozen=True)
class Call:
    """One request, as an operation sees it."""

    path: Mapping[str, str]
    query: Mapping[str, str]
    body: Any
    identity: Any = None

    def field(self, name: str, kind: Any = Any, *, default: Any = ...) -> Any:
        """The body's field ``name`` decoded as ``kind``; InvalidInputError naming it when
        it is missing (and has no default) or does not fit."""
        if not isinstance(self.body, dict):
            raise InvalidInputError("the request body must be a JSON object", field="body")
        if name not in self.body:
            if default is ...:
                raise InvalidInputError(f"the request body needs the field {name!r}",
                                        field=name)
            return default
        return wire.decode(kind, self.body[name], name)

    def args(self, name: str) -> list[str]:
        """Every value of the query parameter ``name`` (it may repeat)."""
        getlist = getattr(self.query, "getlist", None)
        if getlist is not None:
            return list(getlist(name))
        return [self.query[name]] if name in self.query else []

    def actor(self) -> str | None:
        """Who acts: the authenticated identity's name; without authentication, the user
        the client names (``actor`` in the body), else None (the server's user)."""
        if self.identity is not None:
            return str(getattr(self.identity, "name", self.identity))
        claimed = self.field("actor", str | None, default=None) if isinstance(
            self.body, dict) else None
        return claimed if isinstance(claimed, str) else None

    def arg(self, name: str, kind: type = str, *, default: Any = ...) -> Any:
        """The path or query parameter ``name`` as ``kind`` (str or int)."""
        raw = self.path.get(name, self.query.get(name))
        if raw is None:
            if default is ...:
                raise InvalidInputError(f"the parameter {name!r} is missing", field=name)
            return default
        if kind is int:
            try:
                return int(raw)
            except ValueError:
                raise InvalidInputError(f"the parameter {name!r} must be a whole number, got "
                                        f"{raw!r}", field=name) from None
        return raw


Operation = Callable[[ServerState, Call], Any]


def wire_response(result: Any, status: int = 200) -> Response:
    return Response(wire.dumps(wire.encode(result)), status_code=status, media_type=JSON)


def _route(state: ServerState, method: str, path: str, op: Operation, name: str) -> Route:
    @guarded
    async def handle(request: Request) -> Response:
        identity = await state.authenticate(request) if state.authenticate else None
        body = None
        if method in ("POST", "PUT", "PATCH"):
            raw = await request.body()
            body = wire.loads(raw) if raw.strip() else None
        call = Call(request.path_params, request.query_params, body, identity)
        return wire_response(await state.call(op, state, call))

    return Route(API + path, handle, methods=[method], name=name)


_PARAM = re.compile(r"{(\w+)}")


def _path_item(group: str, method: str, path: str, name: str, summary: str) -> dict[str, Any]:
    params = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
              for p in _PARAM.findall(path)]
    op: dict[str, Any] = {
        "tags": [group], "operationId": name, "summary": summary,
        "responses": {
            "200": {"description": "The result, in the wire codec.",
                    "content": {JSON: {"schema": {}}}},
            "default": {"description": "An error; `error` names its class.",
                        "content": {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}}},
        }}
    if params:
        op["parameters"] = params
    return {method.lower(): op}


def api_group(name: str, tag: str,
              table: Sequence[tuple[str, str, Operation, str]]) -> Endpoints:
    """An endpoint group from rows of (method, path under /api/v1, operation, summary)."""
    paths: dict[str, Any] = {}
    for method, path, op, summary in table:
        paths.setdefault(API + path, {}).update(
            _path_item(name, method, path, op.__name__, summary))

    def routes(state: ServerState) -> list[BaseRoute]:
        return [_route(state, method, path, op, op.__name__)
                for method, path, op, _ in table]

    return Endpoints(name=name, routes=routes, paths=paths, tag=tag)
