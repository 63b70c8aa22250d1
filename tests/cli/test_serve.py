"""`modelyard serve` refuses an address it cannot listen on before loading or announcing
anything."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelyard import InvalidInputError
from modelyard.cli.serve import check_port

from .conftest import run_main


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port of 127.0.0.1 something listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_busy_port_is_one_line_before_the_banner(
        project: Path, busy_port: int, workers: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # the model does not exist: the port is checked before any model is loaded
    code, out, err = run_main(monkeypatch, capsys, "serve", "no-such-model",
                              "--port", str(busy_port), "--workers", workers)
    assert code == 1
    assert out == ""  # no "Serving ... on http://..." banner
    assert err.startswith(f"error: cannot serve on 127.0.0.1:{busy_port}: the address is "
                          "already in use")
    assert "--port" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_check_port_names_the_address_and_a_free_port(busy_port: int) -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_port("127.0.0.1", busy_port)
    message = caught.value.message
    assert f"127.0.0.1:{busy_port}" in message and "--port" in message
    assert caught.value.details == {"field": "port", "host": "127.0.0.1", "port": busy_port}
    suggested = int(message.rsplit("--port ", 1)[1].rstrip(")"))
    check_port("127.0.0.1", suggested)  # the suggested port is free
    with pytest.raises(InvalidInputError, match=r"no\.such\.host\.invalid:8000: unknown host"):
        check_port("no.such.host.invalid", 8000)
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as six:
        six.bind(("::1", 0))
        six.listen()
        with pytest.raises(InvalidInputError, match=r"cannot serve on \[::1\]:\d+: the address"):
            check_port("::1", six.getsockname()[1])
