"""The bearer-token middleware and route guards on a small Starlette app: public paths,
401 / 403 / 429 answers, expiry and revocation, per-environment checks, the request audit,
and the enumeration of routes that are neither public nor guarded."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, Router

with warnings.catch_warnings():  # httpx and its successor httpx2 both do
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`",
                            category=UserWarning)
    from starlette.testclient import TestClient

from modelyard import Yard
from modelyard.security import Principal, SecurityService, environment_of_alias
from modelyard.security.guards import (
    declares,
    principal_of,
    require,
    requires,
    unguarded_routes,
)
from modelyard.security.middleware import AuthMiddleware
from modelyard.security.ratelimit import FailureLimiter

from .conftest import Clock


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


@requires("runs:read")
async def list_runs(request: Request) -> Response:
    return JSONResponse({"who": principal_of(request).name})


@requires("runs:write")
async def create_run(request: Request) -> Response:
    return JSONResponse({"created": True}, status_code=201)


@requires("models:promote", environment=lambda r: environment_of_alias(r.path_params["alias"]))
async def move_alias(request: Request) -> Response:
    return JSONResponse({"alias": request.path_params["alias"]})


@declares("training_sets:read")
async def training_set(request: Request) -> Response:
    await require(request, "training_sets:read")
    return JSONResponse({"rows": 3})


ROUTES = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", healthz, methods=["GET"]),
    Route("/runs", list_runs, methods=["GET"]),
    Route("/runs", create_run, methods=["POST"]),
    Route("/models/{name}/aliases/{alias}", move_alias, methods=["PUT"]),
    Mount("/sets", routes=[Route("/build", training_set, methods=["GET"])]),
]


class Limiter(FailureLimiter):
    now = 0.0

    def __init__(self) -> None:
        super().__init__(max_failures=3, window_s=60, clock=lambda: self.now)


@pytest.fixture
def limiter() -> Limiter:
    return Limiter()


@pytest.fixture
def client(security: SecurityService, limiter: Limiter) -> Iterator[TestClient]:
    app = Starlette(routes=ROUTES, middleware=[Middleware(
        AuthMiddleware, security=security, limiter=limiter, trusted_proxies={"testclient"})])
    with TestClient(app) as c:
        yield c


def _user(security: SecurityService, name: str, *grants: tuple[str, str],
          expires: str = "90d") -> str:
    local = Principal.local()
    security.create_user(name, by=local)
    for role, env in grants:
        security.grant(name, role, environment=env, by=local)
    return security.create_token(name, expires_in=expires, by=local).token


def _auth(token: str, source: str = "10.0.0.1") -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "X-Forwarded-For": source}


def test_public_paths_need_no_token_and_others_do(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    for method, path in [("GET", "/runs"), ("POST", "/runs"), ("GET", "/sets/build"),
                         ("PUT", "/models/m/aliases/prod"), ("GET", "/nowhere")]:
        answer = client.request(method, path)
        assert answer.status_code == 401, (method, path)
        assert answer.headers["www-authenticate"] == "Bearer"
        assert answer.json()["error"] == "AuthenticationError"
    bad = client.get("/runs", headers={"Authorization": "Basic dTpw"})
    assert bad.status_code == 401 and "Bearer" in bad.json()["message"]


def test_roles_allow_and_refuse_with_the_permission_named(
        client: TestClient, security: SecurityService) -> None:
    viewer = _user(security, "vic", ("viewer", "*"))
    editor = _user(security, "eve", ("editor", "*"))
    maintainer = _user(security, "max", ("maintainer", "*"))
    assert client.get("/runs", headers=_auth(viewer)).json() == {"who": "vic"}
    refused = client.post("/runs", headers=_auth(viewer))
    assert refused.status_code == 403
    body = refused.json()
    assert body["error"] == "PermissionDeniedError" and body["status"] == 403
    assert body["details"]["permission"] == "runs:write"
    assert body["details"]["required"] == "editor"
    assert "runs:write" in body["message"]
    assert client.post("/runs", headers=_auth(editor)).status_code == 201
    assert client.put("/models/m/aliases/staging", headers=_auth(editor)).status_code == 200
    prod = client.put("/models/m/aliases/production", headers=_auth(editor))
    assert prod.status_code == 403
    assert prod.json()["details"] == {"permission": "models:promote", "required": "maintainer",
                                      "project": "claims", "environment": "prod"}
    assert client.put("/models/m/aliases/prod", headers=_auth(maintainer)).status_code == 200
    assert client.get("/sets/build", headers=_auth(viewer)).json() == {"rows": 3}


def test_a_grant_for_one_environment(client: TestClient, security: SecurityService) -> None:
    token = _user(security, "sam", ("viewer", "*"), ("maintainer", "staging"))
    assert client.put("/models/m/aliases/staging", headers=_auth(token)).status_code == 200
    assert client.put("/models/m/aliases/prod", headers=_auth(token)).status_code == 403
    assert client.put("/models/m/aliases/champion", headers=_auth(token)).status_code == 403


def test_expired_and_revoked_tokens_are_refused(
        client: TestClient, security: SecurityService, clock: Clock) -> None:
    token = _user(security, "tim", ("viewer", "*"), expires="1h")
    assert client.get("/runs", headers=_auth(token)).status_code == 200
    clock.advance(3600)
    expired = client.get("/runs", headers=_auth(token))
    assert expired.status_code == 401 and expired.json()["message"] == "the token has expired"
    other = security.create_token("tim", by=Principal.local())
    assert client.get("/runs", headers=_auth(other.token)).status_code == 200
    security.revoke_token(other.record.token_id, by=Principal.local())
    revoked = client.get("/runs", headers=_auth(other.token))
    assert revoked.status_code == 401 and "revoked" in revoked.json()["message"]


def test_failed_authentication_is_rate_limited_per_source(
        client: TestClient, security: SecurityService, limiter: Limiter,
        caplog: pytest.LogCaptureFixture) -> None:
    token = _user(security, "una", ("viewer", "*"))
    guess = token[:-6] + "abcdef"
    with caplog.at_level(logging.WARNING, logger="modelyard.security"):
        for _ in range(3):
            assert client.get("/runs", headers=_auth(guess, "10.0.0.66")).status_code == 401
    blocked = client.get("/runs", headers=_auth(token, "10.0.0.66"))  # even a good token
    assert blocked.status_code == 429
    assert blocked.json()["error"] == "RateLimitedError"
    assert blocked.headers["retry-after"] == "60"
    assert client.get("/runs", headers=_auth(token, "10.0.0.7")).status_code == 200
    limiter.now += 30
    assert client.get("/runs", headers=_auth(token, "10.0.0.66")).headers[
        "retry-after"] == "30"
    limiter.now += 31
    assert client.get("/runs", headers=_auth(token, "10.0.0.66")).status_code == 200
    assert "10.0.0.66" in caplog.text and guess not in caplog.text and token not in caplog.text
    failures = security.audit_entries(action="auth:failed")
    assert len(failures) == 3 and {e.source for e in failures} == {"10.0.0.66"}


def test_writes_and_sensitive_reads_are_audited(
        client: TestClient, security: SecurityService) -> None:
    viewer = _user(security, "vic", ("viewer", "*"))
    editor = _user(security, "eve", ("editor", "*"))
    before = len(security.audit_entries(limit=None))
    client.get("/runs", headers=_auth(viewer))  # a plain read: not recorded
    client.post("/runs", headers=_auth(editor, "10.1.1.1"))
    client.post("/runs", headers=_auth(viewer, "10.2.2.2"))
    client.get("/sets/build", headers=_auth(viewer, "10.3.3.3"))
    entries = list(reversed(security.audit_entries(limit=None)))[before:]
    seen = [(e.actor, e.action, e.target, e.source, e.outcome) for e in entries]
    assert seen == [
        ("user:eve", "runs:write", "/runs", "10.1.1.1", "ok"),
        ("user:vic", "runs:write", "/runs", "10.2.2.2", "denied"),
        ("user:vic", "training_sets:read", "/sets/build", "10.3.3.3", "ok"),
    ]
    assert entries[0].detail == {"method": "POST", "status": 201}
    assert security.verify_audit().ok


def test_route_enumeration_lists_what_is_neither_public_nor_guarded() -> None:
    assert unguarded_routes(Starlette(routes=ROUTES)) == []

    async def forgotten(request: Request) -> Response:
        return Response()

    app = Starlette(routes=[*ROUTES, Route("/admin/reset", forgotten, methods=["POST"]),
                            Mount("/api", routes=[Route("/x", forgotten)]),
                            Mount("/static", app=Router())])
    assert unguarded_routes(app) == ["POST /admin/reset", "GET,HEAD /api/x", "MOUNT /static"]
    assert unguarded_routes(app, public=["/healthz", "/readyz", "/admin/reset", "/api/*",
                                         "/static/*"]) == []
    with pytest.raises(Exception, match="unknown permission"):
        requires("runs:delete")


def test_a_guard_under_the_servers_error_wrapper_keeps_its_mark_and_answers_403(
        security: SecurityService) -> None:
    from modelyard.server.responses import guarded

    @guarded
    @requires("runs:write")
    async def create(request: Request) -> Response:
        return Response(status_code=201)

    app = Starlette(routes=[Route("/runs", create, methods=["POST"])],
                    middleware=[Middleware(AuthMiddleware, security=security)])
    assert unguarded_routes(app) == []
    viewer = _user(security, "vic", ("viewer", "*"))
    with TestClient(app) as client:
        refused = client.post("/runs", headers=_auth(viewer))
    assert refused.status_code == 403
    assert refused.json()["details"]["permission"] == "runs:write"


def test_the_project_server_mounts_the_middleware(yard: Yard) -> None:
    from modelyard.server.app import create_app

    app = create_app(yard)
    app.add_middleware(AuthMiddleware, security=yard.security)
    token = _user(yard.security, "vic", ("viewer", "*"))
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/openapi.json").status_code == 401
        assert client.get("/openapi.json", headers=_auth(token)).status_code == 200
