"""CLI: ``modelyard audit list|verify``: the hash-chained record of writes and sensitive
reads."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from typing import Annotated

import typer
from rich.markup import escape

from modelyard.errors import InvalidInputError

from .project import UriOption, open_yard
from .render import cell, format_time, listing, say, show

app = typer.Typer(help="The audit log: list entries, verify the hash chain.",
                  no_args_is_help=True)

_AGO = re.compile(r"^(\d+)([mhdw])$")
_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def _since_ms(text: str) -> int:
    m = _AGO.match(text.strip())
    if m is not None:
        return time.time_ns() // 1_000_000 - int(m[1]) * _UNIT_MS[m[2]]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInputError(f"--since {text!r} is neither a duration (7d, 12h) nor an ISO "
                                "date-time", field="since") from None
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return int(moment.timestamp() * 1000)


@app.command("list")
def list_entries(
    actor: Annotated[str | None, typer.Option(
        "--actor", metavar="ACTOR", help="Who acted: user:alice, local:bob, anonymous.")] = None,
    action: Annotated[str | None, typer.Option(
        "--action", metavar="ACTION", help="An action (models:promote) or a prefix "
        "(models:*).")] = None,
    environment: Annotated[str | None, typer.Option(
        "--env", "-e", metavar="ENV", help="Only entries in this environment.")] = None,
    outcome: Annotated[str | None, typer.Option(
        "--outcome", metavar="OUTCOME", help="ok, denied or failed.")] = None,
    since: Annotated[str | None, typer.Option(
        "--since", metavar="WHEN", help="7d, 12h, or an ISO date-time.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", metavar="N",
                                       help="At most this many entries.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
    uri: UriOption = None,
) -> None:
    """List audit entries, newest first."""
    from modelyard.backends.metadata.audit import AuditQuery

    query = AuditQuery(actor=actor, action=action, environment=environment, outcome=outcome,
                       since_ms=None if since is None else _since_ms(since), limit=limit)
    with open_yard(uri) as yard:
        found = yard.security.audit_entries(query)
    if as_json:
        for e in found:
            data = {k: v for k, v in e.__dict__.items() if k != "detail_json"}
            typer.echo(json.dumps({**data, "detail": e.detail}))
        return
    if not found:
        say("No audit entries match.")
        return
    table = listing(None, ["seq", "when", "actor", "action", "env", "target", "source",
                           "outcome"], right=("seq",), wrap=("target",))
    for e in found:
        table.add_row(cell(e.seq), cell(format_time(e.at_ms, seconds=True)), cell(e.actor),
                      cell(e.action, "bold"), cell(e.environment), cell(e.target),
                      cell(e.source), cell(e.outcome, "red" if e.outcome != "ok" else ""))
    show(table)


@app.command("verify")
def verify(
    anchor: Annotated[str | None, typer.Option(
        "--anchor", metavar="SEQ:HASH",
        help="An entry's seq and hash kept from an earlier verify, checked too.")] = None,
    uri: UriOption = None,
) -> None:
    """Check the hash chain: a changed, deleted or reordered entry fails (exit code 1)."""
    pinned = None
    if anchor is not None:
        seq, _, digest = anchor.partition(":")
        if not seq.isdigit() or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise InvalidInputError("--anchor must be SEQ:HASH (a number, a colon, 64 hex "
                                    "digits)", field="anchor")
        pinned = (int(seq), digest)
    with open_yard(uri) as yard:
        report = yard.security.verify_audit(pinned)
    if report.ok:
        say(f"[green]ok[/]: {report.entries} entries, chain intact. Head: "
            f"[bold]{report.head_seq}:{report.head_hash}[/] (keep it to pass as --anchor "
            "later)")
        return
    say(f"[bold red]the audit log was tampered with[/] ({report.entries} entries read, first "
        f"bad entry {report.first_bad_seq}):")
    for problem in report.problems:
        say(f"  - {escape(problem)}")
    raise typer.Exit(1)
