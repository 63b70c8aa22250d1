"""Bearer-token authentication for a Starlette (any ASGI) app, and the request audit.

``AuthMiddleware(app, security)`` is pure ASGI and has no routes of its own. For each HTTP
or WebSocket request it:

1. lets explicitly public paths through (``/healthz``, ``/readyz`` by default);
2. refuses a source that failed too often lately with 429 and ``Retry-After``
   (:class:`~modelyard.security.ratelimit.FailureLimiter`);
3. reads ``Authorization: Bearer <token>``; without one answers 401, with a token that
   is unknown, wrong, expired or revoked answers 401 and counts a failure for the source
   (the token itself is never logged: only its non-secret id);
4. puts the :class:`~modelyard.security.principals.Principal` in the scope's state
   (``request.state.principal``), with the service, for :func:`~.guards.require`;
5. after the response, records every write (any method but GET, HEAD, OPTIONS) and every
   sensitive read (a request that checked a permission of :data:`SENSITIVE`) in the audit
   log: who, the action checked, the path, the client address and the outcome.

A ``PermissionDeniedError`` or ``AuthenticationError`` raised by a handler before it
started its response becomes the 403 / 401 JSON error body (``ModelyardError.to_dict``).
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Collection, Iterable
from typing import Any

import anyio.to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelyard.errors import (
    AuthenticationError,
    ModelyardError,
    PermissionDeniedError,
    RateLimitedError,
)
from modelyard.security.guards import (
    PUBLIC_PATHS,
    STATE_CHECKS,
    STATE_PRINCIPAL,
    STATE_RECORDED,
    STATE_SECURITY,
    is_public,
)
from modelyard.security.ratelimit import FailureLimiter
from modelyard.security.service import SecurityService

__all__ = ["SAFE_METHODS", "SENSITIVE", "AuthMiddleware"]

logger = logging.getLogger("modelyard.security")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Reads recorded in the audit log like writes.
SENSITIVE = frozenset({"training_sets:read", "pii:read", "audit:read", "users:manage",
                       "tokens:manage", "roles:manage"})


def _outcome(status: int) -> str:
    if status in (401, 403, 429):
        return "denied"
    return "ok" if status < 400 else "failed"


class AuthMiddleware:
    def __init__(self, app: ASGIApp, security: SecurityService, *,
                 public: Iterable[str] = PUBLIC_PATHS, limiter: FailureLimiter | None = None,
                 trusted_proxies: Collection[str] = ()) -> None:
        """``trusted_proxies``: addresses of reverse proxies whose ``X-Forwarded-For``
        names the client (otherwise the connection's peer is the source)."""
        self.app = app
        self.security = security
        self.public = tuple(public)
        self.limiter = limiter if limiter is not None else FailureLimiter()
        self.trusted_proxies = frozenset(trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or is_public(scope["path"],
                                                                   self.public):
            await self.app(scope, receive, send)
            return
        source = self._source(scope)
        retry = self.limiter.retry_after(source)
        if retry is not None:
            await self._refuse(scope, send, RateLimitedError(
                "too many failed authentications from this address; try again in "
                f"{math.ceil(retry)} s", retry_after=math.ceil(retry)))
            return
        token = _bearer(scope)
        if token is None:
            await self._refuse(scope, send, AuthenticationError(
                "this route needs an 'Authorization: Bearer <token>' header"))
            return
        try:
            principal = await anyio.to_thread.run_sync(functools.partial(
                self.security.authenticate, token, source=source))
        except AuthenticationError as exc:
            self.limiter.failed(source)
            await self._refuse(scope, send, exc)
            return
        state = scope.setdefault("state", {})
        state.update({STATE_PRINCIPAL: principal, STATE_SECURITY: self.security,
                      STATE_CHECKS: [], "modelyard_source": source})
        status = 500
        started = False

        async def send_status(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = int(message["status"]), True
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        except (PermissionDeniedError, AuthenticationError) as exc:
            if started:
                raise
            status = exc.http_status
            await self._refuse(scope, send, exc)
        finally:
            await self._audit(scope, principal, source, status)

    def _source(self, scope: Scope) -> str:
        client = scope.get("client")
        host = str(client[0]) if client else "unknown"
        if host in self.trusted_proxies:
            for name, value in scope.get("headers", ()):
                if name == b"x-forwarded-for":
                    text = bytes(value).decode("latin-1")
                    hops = [h.strip() for h in text.split(",") if h.strip()]
                    if hops:
                        return hops[-1]
        return host

    async def _audit(self, scope: Scope, principal: Any, source: str, status: int) -> None:
        method = scope.get("method", "WS")
        if scope["state"].get(STATE_RECORDED):
            return
        checks = scope["state"].get(STATE_CHECKS) or []
        sensitive = any(action in SENSITIVE for action, _ in checks)
        if method in SAFE_METHODS and not sensitive:
            return
        action, environment = checks[-1] if checks else (f"http:{method}", None)
        try:
            await anyio.to_thread.run_sync(functools.partial(
                self.security.record, principal, action, target=scope["path"],
                environment=environment, source=source, outcome=_outcome(status),
                detail={"method": method, "status": status}))
        except ModelyardError as exc:  # the response is sent: say so loudly, do not raise
            logger.error("could not record %s %s by %s in the audit log: %s", method,
                         scope["path"], principal.actor, exc.message)

    async def _refuse(self, scope: Scope, send: Send, exc: ModelyardError) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        headers = [(b"content-type", b"application/json")]
        if isinstance(exc, AuthenticationError):
            headers.append((b"www-authenticate", b"Bearer"))
        if isinstance(exc, RateLimitedError):
            headers.append((b"retry-after", str(exc.details["retry_after"]).encode()))
        body = json.dumps(exc.to_dict(), separators=(",", ":")).encode("utf-8")
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": exc.http_status,
                    "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, credentials = bytes(value).decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                return credentials.strip()
            return None
    return None
