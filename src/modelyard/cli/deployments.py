"""CLI: ``modelyard deployments`` (the live model servers and what each serves), and the
wait after a promotion or a rollback until every server following the alias serves it."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from modelyard.cli.project import UriOption, open_yard
from modelyard.cli.render import cell, console, format_seconds, format_time, listing, say, show

if TYPE_CHECKING:
    from modelyard.client import Yard

WaitOption = Annotated[float | None, typer.Option(
    "--wait", metavar="SECONDS", min=0,
    help="Then wait up to SECONDS until every live model server that follows the alias "
         "serves the new version (exit code 1 if one does not in time).",
    show_default=False)]


def register(app: typer.Typer) -> None:
    app.command("deployments")(deployments)


def deployments(
    every: Annotated[bool, typer.Option(
        "--all", help="Also list servers that stopped beating without saying goodbye.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")
                       ] = False,
    uri: UriOption = None,
) -> None:
    """The model servers of this project that report a heartbeat: where each runs, which
    references its models follow, and the version each serves now."""
    from modelyard.serving.fleet import live_replicas

    with open_yard(uri) as yard:
        found = yard.replicas.replicas() if every else live_replicas(yard.replicas)
    if as_json:
        console.print_json(json.dumps([{**r.__dict__, "serving": [s.__dict__ for s in r.serving]}
                                       for r in found]))
        return
    if not found:
        say("No model server is running (none has reported a heartbeat lately).")
        return
    now = time.time()
    table = listing(f"Model servers ({len(found)})",
                    ["replica", "host", "pid", "address", "model", "role", "follows",
                     "version", "beat", "up since"], right=("pid", "version"))
    for record in found:
        age = format_seconds(now - record.heartbeat_at_ms / 1000) + " ago"
        for i, slot in enumerate(record.serving or ()):
            first = i == 0
            table.add_row(cell(record.replica_id[:8] if first else ""),
                          cell(record.host if first else ""),
                          cell(record.pid if first else ""),
                          cell((record.address or "-") if first else ""),
                          cell(slot.model), cell(slot.role), cell(slot.reference),
                          cell("loading" if slot.version is None else slot.version),
                          cell(age if first else ""),
                          cell(format_time(record.started_at_ms, seconds=True) if first else ""))
    show(table)


def wait_for_rollout(yard: Yard, model: str, alias: str, version: int,
                     timeout: float) -> None:
    """Print how the servers following ``model@alias`` caught up with ``version``; exit 1 if
    one did not within ``timeout`` seconds."""
    from modelyard.serving.fleet import wait_for_version

    rollout = wait_for_version(yard.replicas, model, alias, version, timeout=timeout)
    if not rollout.replicas:
        say(f"No running model server follows {escape(model)}@{escape(alias)}.")
        return
    count = len(rollout.replicas)
    if rollout.done:
        say(f"[green]{count} model server{'s' if count != 1 else ''}[/] "
            f"serve{'s' if count == 1 else ''} version {version} "
            f"({format_seconds(rollout.waited_s)} after the move).")
        return
    for record in rollout.behind:
        served = record.version_of(model)
        say(f"[red]{escape(record.host)} pid {record.pid}[/] ({escape(record.address or '-')}) "
            f"still serves {'nothing' if served is None else f'version {served}'}")
    say(f"[red]{len(rollout.behind)} of {count}[/] model servers did not serve version "
        f"{version} within {format_seconds(timeout)}.")
    raise typer.Exit(1)
