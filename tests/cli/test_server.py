"""``modelyard server``: the checks made before any worker starts (the server itself is
driven by tests/server/test_team_*.py and the REST parameters of the behaviour tests)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from .conftest import run_main


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_several_workers_need_postgresql(project: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(monkeypatch, capsys, "server", "--port", str(_free_port()),
                              "--workers", "2")
    assert code == 1 and out == ""
    assert "several workers need PostgreSQL" in err and "Traceback" not in err


def test_a_server_is_not_served_again(project: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(monkeypatch, capsys, "server", "--port", str(_free_port()),
                            "--uri", "http://127.0.0.1:9")
    assert code == 1 and "needs a database" in err


def test_a_busy_port_is_refused_first(project: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        code, out, err = run_main(monkeypatch, capsys, "server", "--port", str(port))
    assert code == 1 and out == ""
    assert f"cannot serve on 127.0.0.1:{port}" in err
