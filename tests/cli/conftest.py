"""Fixtures for the CLI tests: a runner over the real app, and runs logged through the API."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from modelyard import Yard
from modelyard.cli import render
from modelyard.cli.app import app, main

Invoke = Callable[..., Result]

#: For tests of CLI behaviour that does not depend on the backend: SQLite only.
sqlite_only = pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables as wide as needed, whatever terminal the tests run in."""
    monkeypatch.setattr(render.console, "_width", 200)
    monkeypatch.setattr(render.error_console, "_width", 200)


def narrow(monkeypatch: pytest.MonkeyPatch, width: int = 80) -> None:
    """Print as when the output is piped: 80 columns."""
    monkeypatch.setattr(render.console, "_width", width)


def words(output: str) -> set[str]:
    """Every whitespace-separated word of ``output``: a broken number or name is missing."""
    return {w.strip(",") for w in output.split()}


def fits(output: str, width: int = 80) -> bool:
    """Every line of the tables in ``output`` fits ``width`` (prose, which has no gaps of
    two spaces, wraps where the terminal does)."""
    return all(len(line) <= width or "  " not in line.strip() for line in output.splitlines())


def run_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
             *args: str) -> tuple[int, str, str]:
    """Run the real entry point (``main()``, with its error handling): exit code, out, err."""
    monkeypatch.setattr(sys, "argv", ["modelyard", *args])
    with pytest.raises(SystemExit) as stop:
        main()
    out = capsys.readouterr()
    return int(stop.value.code or 0), out.out, out.err


@pytest.fixture
def invoke() -> Invoke:
    """Run ``modelyard ARGS...`` in-process and return the click result."""
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(app, list(args))

    return run


@dataclass
class Logged:
    """Runs logged through the API: rf-3, rf-5, rf-8 in "claims" (rf-3 has a child),
    and one failed run in "other"."""

    uri: str
    project: Path
    rf: dict[int, str] = field(default_factory=dict)
    child: str = ""
    failed: str = ""


@pytest.fixture
def logged(yard: Yard, store_uri: str, project: Path, tmp_path: Path) -> Logged:
    data = Logged(uri=store_uri, project=project)
    model_file = tmp_path / "model.bin"
    model_file.write_bytes(b"x" * 2048)
    for depth in (3, 5, 8):
        with yard.start_run("claims", name=f"rf-{depth}") as run:
            run.log_params({"max_depth": depth, "n_estimators": 100})
            for i in range(3):
                run.log_metric("loss", 1 / (i + 1 + depth))
            run.log_metrics({"r2": 0.8 + depth / 100, "rmse": 3 - depth / 10})
            if depth == 3:
                run.set_tag("team", "pricing")
                run.set_note("Baseline with **shallow** trees [red]not markup[/red]")
                run.log_artifact(model_file, "model/model.bin")
                with yard.start_run(name="fold-0") as child:
                    child.log_metric("fold_r2", 0.5)
                data.child = child.run_id
        data.rf[depth] = run.run_id
    with pytest.raises(ValueError), yard.start_run("other", name="boom") as failed:
        raise ValueError("diverged")
    data.failed = failed.run_id
    return data
