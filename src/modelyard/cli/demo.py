"""CLI: ``modelyard demo``, the guided tour on generated insurance claims."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelyard.cli.render import console


def demo(
    path: Annotated[Path, typer.Option(
        "--path", "-p", help="Project folder for the demo; created if missing, reused if not.",
    )] = Path("demo-project"),
    seed: Annotated[int, typer.Option(help="Random seed: the same seed makes the same data.",
                                      min=0)] = 42,
    customers: Annotated[int, typer.Option(help="Number of policy holders to generate.",
                                           min=200)] = 20_000,
) -> None:
    """Generate insurance claims, train candidate models with tracking, and show the best."""
    from modelyard.demo import DemoConfig, run_demo

    run_demo(DemoConfig(path=path, seed=seed, customers=customers), console=console)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
