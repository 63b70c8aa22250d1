"""The root `modelyard` command; each command group lives in its own module."""

from __future__ import annotations

import sys

import typer

from modelyard.cli import (
    demo,
    experiments,
    features,
    models,
    monitor,
    online,
    pipelines,
    predict,
    project,
    runs,
    serve,
)
from modelyard.errors import ModelyardError

app = typer.Typer(
    name="modelyard",
    help="The whole machine-learning lifecycle in one pip install.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
project.register(app)
demo.register(app)
serve.register(app)
predict.register(app)
app.add_typer(experiments.app, name="experiments")
app.add_typer(runs.app, name="runs")
online.register(features.app)
app.add_typer(features.app, name="features")
app.add_typer(models.app, name="models")
app.add_typer(monitor.app, name="monitor")
pipelines.register(app)


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
