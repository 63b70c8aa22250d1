"""The team server for tests: in this process over an ASGI transport, or a real process.

``InProcessServer`` builds the team app over a Yard of its own (a SQLite project in its own
folder, apart from the client's) and reaches it through
:class:`modelyard.server.inprocess.InProcessTransport`, so the sync REST client and its
metric-flushing thread reach it as they would a real server.
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
from modelyard.server.inprocess import InProcessTransport

__all__ = ["URI", "InProcessServer", "InProcessTransport", "ServerProcess", "free_port"]

URI = "http://testserver"


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
