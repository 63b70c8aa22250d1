"""The team server's API beyond the store contracts: artifacts checked at both ends, alias
moves only through the server, the authentication seam, the search language over HTTP,
and connecting from the environment."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import Request

import modelyard
from modelyard.backends.metadata.registry import AliasEvent
from modelyard.errors import (
    ArtifactIntegrityError,
    ConfigurationError,
    InvalidInputError,
    ModelyardError,
)
from modelyard.server.team import create_team_app
from tests._remote import InProcessServer, InProcessTransport


@pytest.fixture
def server(tmp_path: Path, project: Path) -> Iterator[InProcessServer]:
    found = InProcessServer(tmp_path / "server")
    try:
        yield found
    finally:
        found.close()


@pytest.fixture
def remote(server: InProcessServer) -> Iterator[modelyard.Yard]:
    yard = server.client()
    try:
        yield yard
    finally:
        yard.close()


def _http(server: InProcessServer) -> httpx.Client:
    return httpx.Client(base_url=server.uri, transport=server.transport)


def test_an_upload_with_another_digest_stores_nothing(server: InProcessServer) -> None:
    data = b"model bytes"
    wrong = hashlib.sha256(b"other").hexdigest()
    with _http(server) as http:
        answer = http.put(f"/api/v1/artifacts/{wrong}", content=data)
    assert answer.status_code == 422
    assert answer.json()["error"] == "InvalidInputError" and wrong in answer.json()["message"]
    store = server.yard.tracking.artifacts
    assert not store.exists(wrong)
    assert not store.exists(hashlib.sha256(data).hexdigest())


def test_an_upload_cut_short_stores_nothing(server: InProcessServer) -> None:
    data = b"x" * 10_000
    sha = hashlib.sha256(data).hexdigest()
    with _http(server) as http:  # the length promised is not what arrives
        answer = http.put(f"/api/v1/artifacts/{sha}", content=data[:4000],
                          headers={"Content-Length": str(len(data))})
    assert answer.status_code == 422 and "ended after 4000" in answer.json()["message"]
    # and a client that goes away mid-body
    sent: list[dict[str, Any]] = []
    chunks: list[dict[str, Any]] = [
        {"type": "http.request", "body": data[:5000], "more_body": True},
        {"type": "http.disconnect"}]

    async def receive() -> dict[str, Any]:
        return chunks.pop(0) if chunks else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "PUT", "path": f"/api/v1/artifacts/{sha}",
             "raw_path": f"/api/v1/artifacts/{sha}".encode(), "query_string": b"",
             "headers": [(b"content-length", str(len(data)).encode())], "scheme": "http",
             "server": ("testserver", 80), "client": ("127.0.0.1", 1), "root_path": "",
             "http_version": "1.1", "app": server.app}
    asyncio.run(server.app(scope, receive, send))  # type: ignore[arg-type]
    assert not server.yard.tracking.artifacts.exists(sha)
    assert not list(server.yard.tracking.artifacts.iter_blobs())


def test_artifacts_round_trip_and_a_corrupted_blob_is_refused(
        server: InProcessServer, remote: modelyard.Yard, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(bytes(range(256)) * 5000)  # 1.28 MB, several chunks
    (folder / "notes.txt").write_text("trained on claims")
    with remote.start_run("e") as run:
        entries = run.log_artifact(folder)
    assert sorted(e.path for e in entries) == ["model/notes.txt", "model/weights.bin"]
    out = remote.tracking.download_artifacts(run.run_id, "model", tmp_path / "out")
    assert (out / "weights.bin").read_bytes() == (folder / "weights.bin").read_bytes()

    sha = next(e.sha256 for e in entries if e.path.endswith("weights.bin"))
    blob = server.yard.tracking.artifacts._path(sha)  # type: ignore[attr-defined]
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.chmod(0o644)
    blob.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError, match=sha):
        remote.tracking.read_artifact(run.run_id, "model/weights.bin")
    assert not (tmp_path / "again" / "model" / "weights.bin").exists()
    with pytest.raises(ArtifactIntegrityError):
        remote.tracking.download_artifacts(run.run_id, "model/weights.bin", tmp_path / "again")
    assert not (tmp_path / "again" / "model" / "weights.bin").exists()


def test_aliases_move_only_through_the_server(remote: modelyard.Yard) -> None:
    with pytest.raises(ConfigurationError, match="on the server"):
        remote.models.store.move_alias(AliasEvent("m", "production", None, 1, "promote",
                                                  "me", "", 0))
    with pytest.raises(InvalidInputError, match="dotted path"):
        from modelyard.registry.gates import BehaviourGate

        remote.models.promote("m", 1, gates=[BehaviourGate(lambda model, data: None)])


def test_the_search_language_over_http(server: InProcessServer, remote: modelyard.Yard
                                       ) -> None:
    for depth in (3, 5, 7):
        with remote.start_run("search") as run:
            run.log_params({"depth": depth})
            run.log_metric("r2", depth / 10)
    with _http(server) as http:
        found = http.get("/api/v1/runs", params={
            "experiment": "search", "filter": "params.depth != '3'",
            "order_by": "metrics.r2 desc"}).json()
        bad = http.get("/api/v1/runs", params={"filter": "metrics.r2 >>> 1"})
    assert [r["params"]["depth"] for r in found] == ["7", "5"]
    assert bad.status_code == 422 and bad.json()["error"] == "InvalidFilterError"


def _fitted() -> Any:
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    frame = pd.DataFrame({"a": [float(i) for i in range(20)]})
    model = LinearRegression().fit(frame, frame["a"] * 2)
    model.frame = frame
    return model


class Unauthorized(ModelyardError):
    http_status = 401


def test_the_authentication_seam(tmp_path: Path, project: Path) -> None:
    seen: list[str] = []

    async def authenticate(request: Request) -> str:
        if request.headers.get("authorization") != "Bearer s3cret":
            raise Unauthorized("a valid token is needed")
        seen.append(request.url.path)
        return "alice"

    server = InProcessServer(tmp_path / "server")
    app = create_team_app(server.yard, authenticate=authenticate)
    transport = InProcessTransport(app)
    try:
        stranger = modelyard.connect(server.uri, transport=transport, capture_git=False,
                                     capture_packages=False)
        with pytest.raises(ModelyardError, match="valid token"):
            stranger.list_experiments()
        stranger.close()
        alice = modelyard.connect(server.uri, token="s3cret", transport=transport,
                                  capture_git=False, capture_packages=False)
        assert alice.create_experiment("shared").name == "shared"
        assert "/api/v1/experiments" in seen
        model = _fitted()
        alice.models.register(model, "m", input_example=model.frame, onnx=False)
        moved = alice.models.promote("m", 1, actor="mallory")  # the identity acts, not the claim
        assert moved.event.actor == "alice"
        assert server.yard.models.history("m", "production")[-1].actor == "alice"
        alice.close()
        with httpx.Client(base_url=server.uri, transport=transport) as http:
            assert http.get("/healthz").status_code == 200  # probes stay public
    finally:
        transport.shutdown()
        server.close()


def test_connect_from_the_environment(server: InProcessServer,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELYARD_URI", server.uri)
    monkeypatch.setenv("MODELYARD_TOKEN", "t0ken")
    seen: list[str | None] = []

    class Spy(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            seen.append(request.headers.get("authorization"))
            return server.transport.handle_request(request)

    yard = modelyard.connect(transport=Spy(), capture_git=False, capture_packages=False)
    try:
        assert yard.stores.remote and yard.store_uri == server.uri
        assert repr(yard).count("t0ken") == 0
        yard.list_experiments()
        assert seen == ["Bearer t0ken"]
        with pytest.raises(ConfigurationError, match="not available through"):
            yard.monitoring  # noqa: B018 - not over HTTP yet, and it says so
    finally:
        yard.close()


def test_a_token_is_refused_for_a_database(project: Path) -> None:
    with pytest.raises(ConfigurationError, match="only applies"):
        modelyard.connect(f"sqlite:///{project / 'x.db'}", token="t")


def test_doctor_describes_a_project_behind_a_server(server: InProcessServer,
                                                    remote: modelyard.Yard,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from modelyard.backends.metadata import stores
    from modelyard.backends.metadata.rest.stores import RestMetadataStores
    from modelyard.diagnostics import diagnose

    remote.create_experiment("one")
    monkeypatch.setattr(stores, "metadata_stores", lambda uri, token=None, transport=None:
                        RestMetadataStores(uri, token=token, transport=server.transport))
    found = diagnose(server.uri)
    assert found.store is not None and found.store.backend == "modelyard server"
    assert found.store.uri == server.uri and found.store_error is None
    assert found.experiments == 1 and found.intents == []


def test_the_server_checks_what_a_foreign_client_sends(server: InProcessServer,
                                                       remote: modelyard.Yard) -> None:
    run = remote.start_run("e")
    with _http(server) as http:
        tag = http.post(f"/api/v1/runs/{run.run_id}/tags", json={"tags": {"/bad": "v"}})
        nan = http.post("/api/v1/metrics", content=b'{"points": [["%s", "loss", NaN, 0, 1]]}'
                        % run.run_id.encode())
        long = http.post(f"/api/v1/runs/{run.run_id}/params",
                         json={"params": {"p": "x" * 9000}})
    assert (tag.status_code, tag.json()["error"]) == (422, "InvalidInputError")
    assert (nan.status_code, nan.json()["error"]) == (422, "InvalidMetricError")
    assert long.status_code == 422 and "longer than" in long.json()["message"]
    record = remote.get_run(run.run_id)
    assert "/bad" not in record.tags and not record.params and not record.metrics
    run.end()
