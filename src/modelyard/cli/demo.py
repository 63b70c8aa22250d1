"""CLI: ``modelyard demo``, the guided tour on generated insurance claims."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console


def demo(
    path: Annotated[Path, typer.Option(
        "--path", "-p", help="Project folder for the demo; created if missing. A folder an "
        "earlier demo made is cleared first (a clean project each run); a folder holding "
        "anything else is refused.",
    )] = Path("demo-project"),
    seed: Annotated[int, typer.Option(help="Random seed: the same seed makes the same data.",
                                      min=0)] = 42,
    customers: Annotated[int, typer.Option(help="Number of policy holders to generate.",
                                           min=200)] = 20_000,
    today: Annotated[str | None, typer.Option(
        "--today", envvar="MODELYARD_DEMO_TODAY", metavar="YYYY-MM-DD",
        help="The date the demo treats as today (default: the system's date, UTC; no later "
        "than it). The claims history ends at the start of its month; online lookups, the "
        "server's TTL checks and the monitoring windows use it too.", show_default=False,
    )] = None,
) -> None:
    """Generate insurance claims, train candidate models with tracking, and show the best."""
    from modelyard.demo import DemoConfig, run_demo
    from modelyard.demo.clock import parse_today

    day = None if today is None or not today.strip() else parse_today(today)
    # the console of this command, held to the stream it writes to now: the demo's pipeline
    # run captures sys.stdout while it goes on
    run_demo(DemoConfig(path=path, seed=seed, customers=customers, today=day),
             console=Console(file=sys.stdout))


HELP = (
    "Generate insurance claims, train candidate models with tracking, and show the best; then "
    "serve features online, register and promote the model through its gates, serve it over "
    "HTTP while a new version is promoted, and monitor it month by month as the data drifts; "
    "when its error jumps, the alert triggers the project's retraining pipeline, a worker "
    "runs it, the demo approves the candidate with `modelyard models approve`, the running "
    "server swaps it in, and the months after are checked with it."
    "\n\n"
    "Every run starts a clean project: what an earlier demo left in the folder (its .modelyard "
    "store, data files, report and alert inbox) is cleared first, so no figure mixes in an "
    "earlier run's traffic. Every date follows --today: the claims history ends at the start "
    "of its month."
)


def register(app: typer.Typer) -> None:
    app.command("demo", help=HELP)(demo)
