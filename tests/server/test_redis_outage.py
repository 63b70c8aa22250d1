"""A Redis online store that stops and comes back while the server keeps running."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelyard import Yard

from .conftest import ONLINE, feature_yard, free_port, open_client
from .test_features_endpoint import assert_error


class RedisServer:
    """A redis-server of our own that keeps nothing on disk: started, killed, restarted."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 30
        try:
            while True:
                assert self.proc.poll() is None, "redis-server exited"
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    assert time.monotonic() < deadline, "redis-server did not start in time"
                    time.sleep(0.05)
        finally:
            client.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.proc = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not on PATH")
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.mark.redis
def test_lookups_survive_a_redis_restart(project: Path, own_redis: RedisServer) -> None:
    asked = {"features": ["stats:city"], "entities": {"customer_id": [2]}}
    yard: Yard = feature_yard(project, f"{own_redis.url}?prefix=outage")
    try:
        from modelyard.server.app import create_app

        with open_client(create_app(yard)) as client:
            served = client.post(ONLINE, json=asked)
            assert served.json()["rows"] == [{"customer_id": 2, "city": "Lyon",
                                              "status": "found"}]

            own_redis.kill()
            error = assert_error(client.post(ONLINE, json=asked), 503, "StorageError")
            assert "online store" in error["message"] and str(own_redis.port) in error[
                "message"]
            assert "cannot read" in error["message"]
            assert client.get("/healthz").status_code == 200
            ready = assert_error(client.get("/readyz"), 503, "StorageError")
            assert ready["details"]["failing"] == ["online_store"]

            own_redis.start()  # same port, nothing kept: the values are gone
            again = client.post(ONLINE, json=asked)
            assert again.status_code == 200, again.text
            assert again.json()["rows"] == [{"customer_id": 2, "city": None,
                                             "status": "missing"}]
            assert client.get("/readyz").status_code == 200

            yard.materialize(at=None)  # written again: found again, no server restart
            assert client.post(ONLINE, json=asked).json()["rows"][0]["city"] == "Lyon"
    finally:
        yard.close()
