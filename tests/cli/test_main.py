"""The real entry point: errors as one red line, every command documented, the executable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.main import get_command

import modelyard
from modelyard.cli.app import app

from .conftest import run_main

MODELYARD = Path(sys.executable).parent / "modelyard"


def test_a_malformed_filter_is_one_error_message_not_a_traceback(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_main(monkeypatch, capsys, "runs", "list", "-f", "metrics.r2 >> 1")
    assert code == 1
    assert out == ""
    assert err.startswith("error: invalid filter:")
    assert "metrics.r2 >> 1" in err and "^" in err
    assert "Traceback" not in err


def test_error_messages_are_printed_literally(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_main(monkeypatch, capsys, "runs", "show", "[bold]deadbeef")
    assert code == 1
    assert "'[bold]deadbeef' is not a run id" in err


def test_success_exits_zero(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_main(monkeypatch, capsys, "experiments", "create", "claims")
    assert (code, err) == (0, "")
    assert "Created experiment claims" in out


def _walk(command: object, path: tuple[str, ...] = ("modelyard",)):  # type: ignore[no-untyped-def]
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from _walk(sub, (*path, name))


def test_every_command_and_option_has_help_text() -> None:
    commands = list(_walk(get_command(app)))
    names = {" ".join(path) for path, _ in commands}
    assert {"modelyard init", "modelyard doctor", "modelyard experiments list",
            "modelyard experiments create", "modelyard runs list", "modelyard runs show",
            "modelyard runs compare"} <= names
    for path, command in commands:
        where = " ".join(path)
        assert (getattr(command, "help", None) or "").strip(), f"{where} has no help text"
        for param in getattr(command, "params", []):
            if param.name == "help":
                continue
            assert (getattr(param, "help", None) or "").strip(), (
                f"{where}: {param.name} has no help text"
            )


def test_the_installed_executable_end_to_end(tmp_path: Path) -> None:
    assert MODELYARD.is_file(), "the modelyard executable is installed beside python"
    env = {**os.environ, "COLUMNS": "160"}
    root = tmp_path / "e2e"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(MODELYARD), *args], cwd=root, env=env, text=True,
                              capture_output=True, timeout=120, check=False)

    root.mkdir()
    created = run("init", "--name", "e2e")
    assert created.returncode == 0, created.stderr
    with modelyard.connect(project=root, capture_git=False, capture_packages=False) as yard, \
            yard.start_run("claims", name="first") as first:
        first.log_metric("r2", 0.91)

    listed = run("runs", "list")
    assert listed.returncode == 0, listed.stderr
    assert first.run_id[:8] in listed.stdout
    assert "first" in listed.stdout and "0.91" in listed.stdout

    missing = run("runs", "show", "0000000000")
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: no run with an id starting with '0000000000'")
    assert "Traceback" not in missing.stderr
