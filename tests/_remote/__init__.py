"""The team server for tests: in this process over an ASGI transport, or a real process.

``InProcessServer`` builds the team app over a Yard of its own (a SQLite project in its own
folder, apart from the client's) and gives an ``httpx`` transport that calls the app in this
process, on an event loop in a thread of its own (anyio's blocking portal), so the sync REST
client and its metric-flushing thread reach it as they would a real server.
``ServerProcess`` runs ``modelyard server`` as a real process (several uvicorn workers) and
can be stopped and started again on the same port.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

import modelyard

URI = "http://testserver"


class InProcessTransport(httpx.BaseTransport):
    """A sync transport over an ASGI app (the body is read whole, then sent)."""

    def __init__(self, app: Any) -> None:
        import anyio.from_thread

        self._inner = httpx.ASGITransport(app=app)
        self._portal_cm = anyio.from_thread.start_blocking_portal()
        self._portal = self._portal_cm.__enter__()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()

        async def send() -> tuple[int, list[tuple[bytes, bytes]], bytes]:
            inner = httpx.Request(request.method, request.url, headers=request.headers,
                                  content=body)
            answer = await self._inner.handle_async_request(inner)
            content = b"".join([chunk async for chunk in answer.stream])  # type: ignore[union-attr]
            return answer.status_code, answer.headers.raw, content

        status, headers, content = self._portal.call(send)
        return httpx.Response(status, headers=headers, content=content)

    def close(self) -> None:
        """Kept open: several clients share the transport (``shutdown`` ends it)."""

    def shutdown(self) -> None:
        with contextlib.suppress(Exception):
            self._portal_cm.__exit__(None, None, None)


class InProcessServer:
    """The team app over its own SQLite project (or ``uri``), reached in process."""

    def __init__(self, folder: Path, uri: str | None = None) -> None:
        from modelyard.server.team import create_team_app

        modelyard.init_project(folder, "server")
        self.yard = modelyard.connect(uri, project=folder, capture_packages=False,
                                      capture_git=False)
        self.app = create_team_app(self.yard)
        self.transport = InProcessTransport(self.app)
        self.uri = URI

    def client(self, **settings: Any) -> modelyard.Yard:
        return modelyard.connect(self.uri, transport=self.transport, capture_packages=False,
                                 capture_git=False, **settings)

    def close(self) -> None:
        self.transport.shutdown()
        self.yard.close()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """``modelyard server`` over ``store_uri`` as a real process (with ``workers``)."""

    def __init__(self, folder: Path, store_uri: str, *, workers: int = 2) -> None:
        modelyard.init_project(folder, "server")
        self.folder = folder
        self.store_uri = store_uri
        self.workers = workers
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.log = folder / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
        env["PYTHONPATH"] = os.pathsep.join(
            [str(Path(modelyard.__file__).parents[1]), *filter(None, [env.get("PYTHONPATH")])])
        env.update(MODELYARD_CAPTURE_PACKAGES="0", MODELYARD_CAPTURE_GIT="0")
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "from modelyard.cli.app import main; main()", "server",
                 "--port", str(self.port), "--workers", str(self.workers), "--uri",
                 self.store_uri, "--log-level", "warning"],
                cwd=self.folder, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.uri}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the server did not start: {self.log.read_text()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        """Stop the server and its workers (the whole process group)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout)
        self.proc = None

    def client(self, **settings: Any) -> modelyard.Yard:
        return modelyard.connect(self.uri, capture_packages=False, capture_git=False,
                                 **settings)
