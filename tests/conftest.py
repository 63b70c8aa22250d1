"""Shared fixtures: an isolated project per test, and a real PostgreSQL database per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

PG_ADMIN_URI = os.environ.get("MODELYARD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("MODELYARD_TEST_REDIS", "redis://127.0.0.1:6379/0")


def _pg_admin():  # type: ignore[no-untyped-def]
    import sqlalchemy as sa

    url = sa.engine.make_url(PG_ADMIN_URI).set(drivername="postgresql+psycopg")
    return sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No MODELYARD_* nor AWS_* from the outside, and a private user config folder."""
    for key in list(os.environ):
        if key.startswith(("MODELYARD_", "AWS_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh project folder, made the working directory."""
    from modelyard import init_project

    root = tmp_path / "proj"
    init_project(root, "testproj")
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def pg_uri() -> Iterator[str]:
    """A brand-new PostgreSQL database on the local server, dropped afterwards."""
    import sqlalchemy as sa

    name = f"my_test_{uuid.uuid4().hex[:12]}"
    admin = _pg_admin()
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:  # pragma: no cover - environment problem
        pytest.fail(f"PostgreSQL at {PG_ADMIN_URI} is not answering: {exc}")
    url = sa.engine.make_url(PG_ADMIN_URI).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test taking ``store_uri`` runs on SQLite and PostgreSQL; a test (or module)
    marked ``over_rest`` also runs through the REST client against the team server: in
    process (``rest``), and with ``over_rest(server=True)`` against a real ``modelyard
    server`` process on PostgreSQL (``server``). A test that parametrizes ``store_uri``
    itself keeps its own choice."""
    if "store_uri" not in metafunc.fixturenames:
        return
    if any(m.args and m.args[0] == "store_uri"
           for m in metafunc.definition.iter_markers("parametrize")):
        return
    params: list[object] = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
    rest = metafunc.definition.get_closest_marker("over_rest")
    if rest is not None:
        params.append(pytest.param("rest", marks=pytest.mark.rest))
        if rest.kwargs.get("server"):
            params.append(pytest.param("server", marks=[pytest.mark.rest, pytest.mark.slow,
                                                         pytest.mark.postgres]))
    metafunc.parametrize("store_uri", params, indirect=True)


@pytest.fixture
def store_uri(request: pytest.FixtureRequest, project: Path) -> str:
    """The metadata store URI for each backend: the project's SQLite file, PostgreSQL, or
    the team server's URI (in process, or a real process on PostgreSQL)."""
    kind = getattr(request, "param", "sqlite")
    if kind == "sqlite":
        return f"sqlite:///{project / '.modelyard' / 'modelyard.db'}"
    if kind == "rest":
        return str(request.getfixturevalue("asgi_server").uri)
    if kind == "server":
        return str(request.getfixturevalue("server_process").uri)
    return str(request.getfixturevalue("pg_uri"))


@pytest.fixture
def asgi_server(tmp_path: Path) -> Iterator[object]:
    """The team server in this process, over a SQLite project of its own."""
    from tests._remote import InProcessServer

    server = InProcessServer(tmp_path / "server-project")
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def server_process(tmp_path: Path, pg_uri: str) -> Iterator[object]:
    """``modelyard server`` with two workers on a PostgreSQL database of its own."""
    from tests._remote import ServerProcess

    server = ServerProcess(tmp_path / "server-project", pg_uri, workers=2)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def yard(store_uri: str, project: Path, request: pytest.FixtureRequest) -> Iterator[object]:
    """A Yard on each backend, with environment capture off to keep tests quick."""
    import modelyard

    transport = None
    if getattr(request.node, "callspec", None) is not None and \
            request.node.callspec.params.get("store_uri") == "rest":
        transport = request.getfixturevalue("asgi_server").transport
    y = modelyard.connect(store_uri, capture_packages=False, capture_git=False,
                          transport=transport)
    try:
        yield y
    finally:
        y.close()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of its own on the local Redis server; its keys are deleted afterwards."""
    import redis

    prefix = f"mytest_{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def online_uri(request: pytest.FixtureRequest, project: Path) -> str:
    """The online store URI for each backend: a SQLite file in the project, or Redis."""
    if request.param == "sqlite":
        return f"sqlite:///{project / '.modelyard' / 'online.db'}"
    return f"{REDIS_URL}?prefix={request.getfixturevalue('redis_prefix')}"


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The S3-compatible server (SeaweedFS ``weed mini`` on 127.0.0.1:8333): started for the
    session unless one answers already (``.ci/run`` starts it), stopped if started here."""
    from _s3 import server

    proc = server.ensure(tmp_path_factory.mktemp("seaweedfs"))
    try:
        yield server.SERVER
    finally:
        if proc is not None:
            server.stop(proc)


@pytest.fixture
def s3_bucket(s3_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A bucket of its own on the S3 server, emptied and deleted afterwards; the standard
    AWS_* variables point at the server meanwhile."""
    from _s3 import buckets

    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    name = buckets.new_name()
    buckets.create(s3_server, name)
    try:
        yield name
    finally:
        buckets.delete(s3_server, name)


@pytest.fixture(scope="session")
def spark_remote() -> Iterator[str]:
    """The ``sc://`` address of a Spark Connect server (Sail, started for the session)."""
    from _spark import server

    remote, handle = server.start()
    try:
        yield remote
    finally:
        server.stop(handle)
