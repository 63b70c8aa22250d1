"""CLI: ``modelyard gc``, removing what no record refers to and no writer still needs."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from modelyard.maintenance.gc import GcReport

from .project import UriOption, open_yard
from .render import cell, console, format_size, listing, show


def register(app: typer.Typer) -> None:
    app.command("gc")(gc)


def gc(
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Only report what would be removed.")] = False,
    older_than: Annotated[str, typer.Option(
        "--older-than", metavar="AGE",
        help="Grace period: nothing written more recently than this (90s, 30m, 1h, 2d) is "
             "touched.")] = "1h",
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print the report as JSON (every item freed).")] = False,
    uri: UriOption = None,
) -> None:
    """Remove artifact blobs no run, model version, profile or plot refers to, partial
    writes of dead writers, and offline-table files no Delta version lists.

    Safe while other processes write: younger data and what a live writer holds are kept."""
    with open_yard(uri) as yard:
        report = yard.gc(dry_run=dry_run, older_than=older_than)
    if as_json:
        console.print_json(json.dumps(report.to_dict()))
        return
    render(report)


def render(report: GcReport) -> None:
    verb = "would free" if report.dry_run else "freed"
    title = f"{'Dry run' if report.dry_run else 'Collected'}, grace {_age(report.older_than_s)}"
    table = listing(title, ["kind", "count", verb])
    for kind, (count, size) in report.totals().items():
        table.add_row(cell(kind), cell(count), cell(format_size(size)))
    table.add_row(cell("total", style="bold"), cell(report.count, style="bold"),
                  cell(format_size(report.bytes), style="bold"))
    show(table)
    console.print(f"kept: {report.referenced} referenced blobs, {report.young} blobs younger "
                  f"than the grace period, {report.in_flight} held by writers in flight",
                  highlight=False)


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"
