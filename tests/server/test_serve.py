"""``modelyard serve``: its options, and the real server in a process of its own."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from modelyard.cli.app import app

from .conftest import ONLINE, feature_yard, free_port, open_client

MODELYARD = Path(sys.executable).parent / "modelyard"


@pytest.fixture
def uvicorn_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    """Record uvicorn.run instead of serving."""
    import uvicorn

    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append((a, kw)))
    return calls


def test_serve_runs_the_app_with_the_options(project: Path, uvicorn_calls: list[Any]) -> None:
    from starlette.applications import Starlette

    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--port", "9123",
                                      "--log-level", "WARNING"])
    assert result.exit_code == 0, result.output
    assert "testproj" in result.output and "http://0.0.0.0:9123" in result.output
    [(args, kwargs)] = uvicorn_calls
    assert isinstance(args[0], Starlette)
    assert kwargs == {"host": "0.0.0.0", "port": 9123, "log_level": "warning"}


def test_serve_with_workers_hands_uvicorn_the_factory(
        project: Path, uvicorn_calls: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELYARD_URI", "unset")  # restored (removed) after the test
    monkeypatch.delenv("MODELYARD_URI")
    uri = f"sqlite:///{project / 'elsewhere.db'}"
    result = CliRunner().invoke(app, ["serve", "--workers", "3", "--uri", uri])
    assert result.exit_code == 0, result.output
    [(args, kwargs)] = uvicorn_calls
    assert args == ("modelyard.server.app:app_from_environment",)
    assert kwargs["factory"] is True and kwargs["workers"] == 3
    assert os.environ["MODELYARD_URI"] == uri  # what each worker process opens


@pytest.mark.parametrize("args", [["--port", "0"], ["--workers", "0"],
                                  ["--log-level", "loud"]])
def test_serve_refuses_bad_options(project: Path, uvicorn_calls: list[Any],
                                   args: list[str]) -> None:
    result = CliRunner().invoke(app, ["serve", *args])
    assert result.exit_code == 2 and not uvicorn_calls


def test_serve_outside_a_project_is_one_clear_error(tmp_path: Path) -> None:
    done = subprocess.run([str(MODELYARD), "serve"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env=_env())
    assert done.returncode == 1
    assert "error:" in done.stderr and "modelyard.toml" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_factory_opens_the_project_of_the_working_directory(project: Path) -> None:
    from modelyard.server.app import app_from_environment

    feature_yard(project, f"sqlite:///{project / '.modelyard' / 'online.db'}").close()
    with open_client(app_from_environment()) as client:  # its lifespan closes the Yard
        response = client.post(ONLINE, json={"features": ["stats:city"],
                                             "entities": {"customer_id": [2]}})
        assert response.json()["rows"] == [{"customer_id": 2, "city": "Lyon",
                                            "status": "found"}]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}


@pytest.fixture
def server(request: pytest.FixtureRequest, project: Path) -> Iterator[str]:
    """``modelyard serve`` in the project, in its own process: its base URL."""
    feature_yard(project, f"sqlite:///{project / '.modelyard' / 'online.db'}").close()
    port = free_port()
    workers = str(getattr(request, "param", 1))
    log = (project / "server.log").open("w")
    proc = subprocess.Popen([str(MODELYARD), "serve", "--port", str(port), "--workers", workers,
                             "--log-level", "warning"],
                            cwd=project, env=_env(), stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (project / "server.log").read_text()
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not start in time"
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.mark.slow
@pytest.mark.parametrize("server", [1, 2], indirect=True, ids=["1-worker", "2-workers"])
def test_the_real_server(server: str) -> None:
    good = {"features": ["stats:city", "stats:amount_sum_7d"],
            "entities": {"customer_id": [2, 999]}}
    expected = {"features": ["stats@v1:city", "stats@v1:amount_sum_7d"], "rows": [
        {"customer_id": 2, "city": "Lyon", "amount_sum_7d": 3.0, "status": "found"},
        {"customer_id": 999, "city": None, "amount_sum_7d": None, "status": "missing"}]}
    with httpx.Client(base_url=server, timeout=30) as http:
        assert http.get("/readyz").json()["status"] == "ready"
        for _ in range(3):  # a bad request between good ones harms nothing
            response = http.post(ONLINE, json=good)
            assert response.status_code == 200, response.text
            assert response.json() == expected
            bad = http.post(ONLINE, content=b'{"features": ["stats:city"], "entities": ',
                            headers={"content-type": "application/json"})
            assert bad.status_code == 422 and bad.json()["details"]["field"] == "body"
            unknown = http.post(ONLINE, json={**good, "features": ["stats:nope"]})
            assert unknown.status_code == 404
        assert "/v1/features/online" in http.get("/openapi.json").json()["paths"]

    def client_loop(index: int) -> list[int]:
        """Good and bad requests interleaved, from several connections at once."""
        statuses = []
        with httpx.Client(base_url=server, timeout=30) as http:
            for turn in range(20):
                if (index + turn) % 3 == 0:
                    statuses.append(http.post(ONLINE, json={"features": [turn]}).status_code)
                else:
                    answer = http.post(ONLINE, json=good)
                    assert answer.json() == expected
                    statuses.append(answer.status_code)
        return statuses

    with ThreadPoolExecutor(8) as pool:
        statuses = [s for result in pool.map(client_loop, range(8)) for s in result]
    assert set(statuses) == {200, 422}
