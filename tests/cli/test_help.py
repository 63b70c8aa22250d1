"""Help pages and the start-up path: readable placeholders, --version, no heavy imports."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from typer.main import get_command
from typer.testing import CliRunner

import modelyard
from modelyard.cli.app import app

HEAVY = ("sqlalchemy", "pandas", "numpy", "pyarrow", "duckdb", "alembic", "modelyard.client")
PLACEHOLDER = re.compile(r"<[a-z][\w ,|\[\]]*>|\[(str|int|float|bool|path)\]")


def _paths(command: object, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        found += _paths(sub, (*path, name))
    return found


COMMANDS = _paths(get_command(app))


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "modelyard")
def test_help_names_values_not_python_types(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    assert not PLACEHOLDER.search(result.output), result.output
    assert "<bool>" not in result.output and "<list" not in result.output


def test_options_show_their_declared_metavars() -> None:
    result = CliRunner().invoke(app, ["features", "lookup", "--help"], env={"COLUMNS": "100"})
    assert "COLUMN=VALUES" in result.output and "FEATURE" in result.output
    promote = CliRunner().invoke(app, ["models", "promote", "--help"], env={"COLUMNS": "100"})
    assert "NAME=PATH" in promote.output and "REF" in promote.output


def test_command_summaries_are_one_line_each() -> None:
    result = CliRunner().invoke(app, ["models", "--help"], env={"COLUMNS": "200"})
    promote = next(line for line in result.output.splitlines() if " promote " in line)
    assert "(exit code 1)" in promote  # the whole first paragraph, not cut at its newline


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version(flag: str) -> None:
    result = CliRunner().invoke(app, [flag])
    assert result.exit_code == 0
    assert result.output == f"modelyard {modelyard.__version__}\n"


def test_the_cli_imports_no_heavy_library_before_a_command_runs() -> None:
    code = ("import json, sys\n"
            "from typer.main import get_command\n"
            "from modelyard.cli.app import app\n"
            "command = get_command(app)\n"
            "ctx = command.make_context('modelyard', ['runs'], resilient_parsing=True)\n"
            "command.get_help(ctx)\n"
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)
    assert json.loads(done.stdout.splitlines()[-1]) == []


@pytest.mark.parametrize("args", [["--version"], ["runs", "list", "--help"]])
def test_the_entry_point_answers_without_heavy_imports(args: list[str]) -> None:
    code = ("import json, sys\n"
            f"sys.argv = ['modelyard', *{args!r}]\n"
            "from modelyard.cli.app import main\n"
            "try:\n"
            "    main()\n"
            "except SystemExit:\n"
            "    pass\n"
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)
    assert json.loads(done.stdout.splitlines()[-1]) == []
