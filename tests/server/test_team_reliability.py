"""Remote metric logging survives a server that goes away: no point lost, none doubled.

In process, a transport that drops the answer of a metric batch after the server committed
it makes the client send the batch again under its key; the server logs it once. With real
processes, several clients log through a ``modelyard server`` (two workers, PostgreSQL)
that is killed and started again, then stopped and started again, while they log.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import modelyard
from tests._remote import InProcessServer, ServerProcess
from tests._workers.procs import worker_env


class LosesAnswers(httpx.BaseTransport):
    """Forwards every request, but loses the first ``n`` answers to metric batches (the
    server did the work; the client hears nothing)."""

    def __init__(self, inner: httpx.BaseTransport, n: int) -> None:
        self.inner = inner
        self.left = n
        self.sent = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.url.path.endswith("/metrics") and request.method == "POST":
            self.sent += 1
            if self.left > 0:
                self.left -= 1
                raise httpx.ReadError("connection reset after the request was sent")
        return response


class Away(httpx.BaseTransport):
    """A server that cannot be reached while ``down`` is set."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.down = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused")
        return self.inner.handle_request(request)


def _steps(yard: modelyard.Yard, run_id: str) -> list[int]:
    return [int(s) for s in yard.tracking.metric_history(run_id, "loss")["step"]]


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres",
                                                            marks=pytest.mark.postgres)])
def test_a_batch_whose_answer_was_lost_is_logged_once(tmp_path: Path, project: Path,
                                                      backend: str,
                                                      request: pytest.FixtureRequest) -> None:
    uri = request.getfixturevalue("pg_uri") if backend == "postgres" else None
    server = InProcessServer(tmp_path / "server", uri)
    lossy = LosesAnswers(server.transport, n=3)
    yard = modelyard.connect(server.uri, transport=lossy, capture_git=False,
                             capture_packages=False, flush_interval=3600)
    try:
        with yard.start_run("e") as run:
            for step in range(50):
                run.log_metric("loss", float(step), step=step)
            yard.tracking.buffer.flush()  # answers lost 3 times, sent 4 times
        assert lossy.sent >= 4
        assert _steps(yard, run.run_id) == list(range(50))
    finally:
        yard.close()
        server.close()


def test_batches_wait_while_the_server_is_away(tmp_path: Path, project: Path) -> None:
    server = InProcessServer(tmp_path / "server")
    away = Away(server.transport)
    yard = modelyard.connect(server.uri, transport=away, capture_git=False,
                             capture_packages=False, flush_interval=3600)
    yard.stores.connection.retry_seconds = 0  # type: ignore[attr-defined]
    try:
        run = yard.start_run("e")
        run.log_metric("loss", 0.0, step=0)
        away.down = True
        with pytest.raises(modelyard.StorageError, match="cannot reach"):
            yard.tracking.buffer.flush()
        run.log_metric("loss", 1.0, step=1)
        with pytest.raises(modelyard.StorageError):
            yard.tracking.buffer.flush()
        assert yard.tracking.buffer.pending() == 2
        away.down = False
        run.end()
        assert _steps(yard, run.run_id) == [0, 1]
    finally:
        yard.close()
        server.close()


@pytest.mark.slow
@pytest.mark.postgres
def test_clients_lose_and_double_nothing_while_the_server_restarts(
        tmp_path: Path, project: Path, pg_uri: str) -> None:
    import signal

    server = ServerProcess(tmp_path / "server", pg_uri, workers=2)
    server.start()
    steps, clients = 400, 4
    procs = [subprocess.Popen(
        [sys.executable, "-m", "_workers.remote_metrics", server.uri, str(steps), "8"],
        cwd=project, env=worker_env(), text=True, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE) for _ in range(clients)]
    try:
        time.sleep(2.5)
        server.stop(signal.SIGKILL)  # answers in flight are lost
        time.sleep(0.5)
        server.start()
        time.sleep(1.5)
        server.stop(signal.SIGTERM)  # a graceful restart
        server.start()
        runs = []
        for proc in procs:
            out, err = proc.communicate(timeout=180)
            assert proc.returncode == 0, err[-3000:]
            runs.append(json.loads(out.strip().splitlines()[-1])["run_id"])
        with server.client() as yard:
            for run_id in runs:
                assert _steps(yard, run_id) == list(range(steps)), run_id
                assert yard.get_run(run_id).info.status == "finished"
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        server.stop()
