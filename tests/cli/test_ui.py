"""`modelyard ui` refuses a busy address or a folder that is no project in one line,
before it listens (the pages themselves are tested in tests/ui/)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from .conftest import run_main


def test_a_busy_port_and_a_missing_project_are_one_line_each(
        project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        code, out, err = run_main(monkeypatch, capsys, "ui", "--port", str(port))
    assert code == 1 and out == ""
    assert err.startswith(f"error: cannot serve on 127.0.0.1:{port}: the address is already "
                          "in use")
    assert len(err.strip().splitlines()) == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    code, out, err = run_main(monkeypatch, capsys, "ui", "--path", str(empty))
    assert code == 1 and out == "" and "Traceback" not in err
    assert err.startswith(f"error: no modelyard project at {empty}")
    assert list(empty.iterdir()) == []  # nothing created there
