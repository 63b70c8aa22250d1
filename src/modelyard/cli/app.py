"""The root `modelyard` command; each command group lives in its own module.

Importing this module builds the whole command tree without importing the client,
SQLAlchemy, pandas, NumPy, pyarrow or DuckDB: each command imports what it uses when it
runs, so ``--help``, ``--version`` and shell completion answer at once.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from modelyard._version import __version__
from modelyard.cli import (
    access,
    audit,
    demo,
    deploy,
    deployments,
    experiments,
    features,
    gc,
    models,
    monitor,
    online,
    pipelines,
    predict,
    project,
    runs,
    serve,
    server,
    ui,
)
from modelyard.cli.helptext import ReadableGroup
from modelyard.errors import ModelyardError

app = typer.Typer(
    name="modelyard",
    cls=ReadableGroup,
    help="The whole machine-learning lifecycle in one pip install.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"modelyard {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[bool, typer.Option(
        "--version", "-V", is_eager=True, callback=_print_version,
        help="Print the version of modelyard and exit.",
    )] = False,
) -> None:
    """The whole machine-learning lifecycle in one pip install."""


project.register(app)
demo.register(app)
serve.register(app)
ui.register(app)
server.register(app)
predict.register(app)
gc.register(app)
deployments.register(app)
app.add_typer(experiments.app, name="experiments")
app.add_typer(runs.app, name="runs")
online.register(features.app)
app.add_typer(features.app, name="features")
app.add_typer(models.app, name="models")
app.add_typer(monitor.app, name="monitor")
pipelines.register(app)
app.add_typer(deploy.app, name="deploy")
access.register(app)
app.add_typer(audit.app, name="audit")


def main() -> None:
    """Entry point: library errors become one red line and exit code 1, not a traceback."""
    try:
        app()
    except ModelyardError as exc:
        from rich.markup import escape

        from modelyard.cli.render import error_console

        error_console.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False,
                            soft_wrap=True)
        sys.exit(1)
