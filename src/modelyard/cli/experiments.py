"""CLI: ``modelyard experiments list|create``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from .project import UriOption, open_yard
from .render import cell, format_time, listing, say, show

app = typer.Typer(help="List and create experiments (named groups of runs).",
                  no_args_is_help=True)


@app.command("list")
def list_experiments(uri: UriOption = None) -> None:
    """List the experiments of the project, oldest first."""
    with open_yard(uri) as yard:
        experiments = yard.list_experiments()
        counts = yard.tracking.count_runs()
    if not experiments:
        say("No experiments yet: runs create theirs when they start, or use "
            "[bold]modelyard experiments create NAME[/].")
        return
    table = listing(None, ["id", "name", "runs", "description", "created"],
                    wrap=("description",), right=("id", "runs"))
    for exp in experiments:
        table.add_row(cell(exp.experiment_id), cell(exp.name, "bold"),
                      cell(counts.get(exp.experiment_id, 0)), cell(exp.description),
                      cell(format_time(exp.created_at)))
    show(table)


@app.command("create")
def create_experiment(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Name of the new experiment.")],
    description: Annotated[str, typer.Option(
        "--description", "-d", metavar="TEXT", help="What the experiment is about.",
    )] = "",
    uri: UriOption = None,
) -> None:
    """Create an experiment; fails if one with that name exists."""
    with open_yard(uri) as yard:
        exp = yard.create_experiment(name, description)
    say(f"Created experiment [bold]{escape(exp.name)}[/] (id {exp.experiment_id})")
