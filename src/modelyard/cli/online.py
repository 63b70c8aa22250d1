"""CLI: ``modelyard features materialize|lookup|push|freshness|check-skew``."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from modelyard.cli.project import UriOption, open_yard
from modelyard.cli.render import cell, console, format_seconds, format_value, listing, say, show
from modelyard.errors import InvalidInputError

AtOption = Annotated[str | None, typer.Option(
    "--at", metavar="TIME",
    help="Compute values as of this time (ISO; naive means UTC); default: now.",
    show_default=False)]


def parse_time(text: str, what: str) -> datetime:
    """An ISO time (naive means UTC), or a duration back from now like 2h or 7d."""
    from modelyard.features.definitions import parse_duration

    text = text.strip()
    if text and text[-1] in "smhdw" and text[:-1].isdigit():
        micros = parse_duration(text, what)
        return datetime.now(UTC) - timedelta(microseconds=micros)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInputError(
            f"--{what} {text!r} is neither an ISO time (2025-01-31T12:00:00+00:00) nor a "
            "duration back from now (2h, 7d)", field=what) from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _iso(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return format_seconds(max(seconds, 0.0)) + " ago"


def register(app: typer.Typer) -> None:
    app.command("materialize")(materialize)
    app.command("lookup")(lookup)
    app.command("push")(push)
    app.command("freshness")(freshness)
    app.command("check-skew")(check_skew)


def materialize(
    groups: Annotated[list[str] | None, typer.Argument(
        metavar="GROUP", help="Feature groups (name or name@vN); default: every group with data.",
        show_default=False)] = None,
    at: AtOption = None,
    since: Annotated[str | None, typer.Option(
        "--since", metavar="TIME",
        help="Only entities that can have changed since this time (ISO, or a "
             "duration back from now like 2h).", show_default=False)] = None,
    incremental: Annotated[bool, typer.Option(
        "--incremental", help="Only entities that can have changed since the last run.")
    ] = False,
    uri: UriOption = None,
) -> None:
    """Write the latest feature values per entity to the online store.

    Values are computed by the training-set engine as of --at (window features too), in
    chunks of bounded memory; a crashed run is resumed by the next one, and running twice
    changes nothing."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    started = time.perf_counter()
    started_ms = time.time_ns() // 1_000_000
    when = None if at is None else parse_time(at, "at")
    cut = None if since is None else parse_time(since, "since")
    with open_yard(uri) as yard, Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("chunks"), TimeElapsedColumn(), console=console,
            transient=True) as bar:
        tasks: dict[str, Any] = {}

        def report(group: str, done: int, total: int) -> None:
            if group not in tasks:
                tasks[group] = bar.add_task(f"Materializing {escape(group)}", total=total)
            bar.update(tasks[group], completed=done, total=total)

        records = yard.features.online.materialize(groups, at=when, since=cut,
                                                   incremental=incremental, progress=report)
    for r in records:
        resumed = " (resumed)" if r.started_at < started_ms else ""
        say(f"{escape(r.group)} v{r.version}: {r.mode}{resumed}, {r.entities:,} entities, "
            f"{r.rows_written:,} values written in {r.chunks_total} chunk"
            f"{'s' if r.chunks_total != 1 else ''}, as of "
            f"{_iso(datetime.fromtimestamp(r.at_us / 1e6, UTC))}")
    say(f"Done in {format_seconds(time.perf_counter() - started)} into {escape(r.store)}."
        if records else "Nothing to materialize.")


def lookup(
    features: Annotated[list[str], typer.Argument(
        metavar="FEATURE", help="Features to read: group:feature, group:* or group@v2:feature.")],
    key: Annotated[list[str], typer.Option(
        "--key", "-k", metavar="COLUMN=VALUES",
        help="Entity key values: column=v1,v2,... (repeat for a composite "
             "key). Values are converted to the key's type.")],
    request: Annotated[list[str] | None, typer.Option(
        "--request", "-r", metavar="COLUMN=VALUES",
        help="Request values for request-time features: column=v1,v2,...",
        show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as JSON.")] = False,
    uri: UriOption = None,
) -> None:
    """Read features of some entities from the online store, with each row's status."""
    with open_yard(uri) as yard:
        plan = yard.features.online.plan(features)
        kinds = {k: kind for g in plan.groups
                 for k, kind in zip(g.layout.keys, g.layout.key_kinds, strict=True)}
        columns: dict[str, list[Any]] = {}
        for item in key:
            name, values = _assignment(item, "key")
            columns[name] = [_typed(v, kinds.get(name, "string"), name) for v in values]
        extra = {n: [_number(v) for v in vs]
                 for n, vs in (_assignment(r, "request") for r in request or [])}
        result = yard.features.online.online_features(features, columns,
                                                      request=extra or None)
    if as_json:
        typer.echo(json.dumps(result.to_records(), indent=2, default=str))
        return
    records = result.to_records()
    names = list(result.to_dict())
    table = listing(f"Online values ({len(result)} row{'s' if len(result) != 1 else ''})",
                    names, right=[n for n in names
                                  if any(_is_number(r[n]) for r in records)])
    for row in records:
        table.add_row(*(cell(format_value(row[n], digits=7),
                             _status_style(row[n]) if n == "status" else "")
                        for n in names))
    show(table)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _status_style(status: object) -> str:
    return {"found": "green", "missing": "yellow", "expired": "red"}.get(str(status), "")


def _assignment(text: str, what: str) -> tuple[str, list[str]]:
    name, sep, values = text.partition("=")
    if not sep or not name.strip():
        raise InvalidInputError(f"--{what} {text!r}: write column=value1,value2",
                                field=what)
    return name.strip(), [v.strip() for v in values.split(",")]


def _typed(text: str, kind: str, name: str) -> Any:
    if kind != "int":
        return text
    try:
        return int(text)
    except ValueError:
        raise InvalidInputError(f"key {name!r} takes integers, not {text!r}",
                                field=name) from None


def _number(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def push(
    group: Annotated[str, typer.Argument(metavar="GROUP", help="Feature group name.")],
    file: Annotated[Path, typer.Argument(metavar="PATH",
                                         help="Parquet or CSV file of fresh rows.")],
    uri: UriOption = None,
) -> None:
    """Ingest fresh rows and update their entities' online values at once."""
    from modelyard.cli.features import _read_file

    started = time.perf_counter()
    with open_yard(uri) as yard:
        done = yard.push(group, _read_file(file))
    say(f"Pushed {done.rows:,} rows (commit {done.commit_id[:8]}); {done.entities:,} "
        f"entities updated online in {len(done.groups)} group"
        f"{'s' if len(done.groups) != 1 else ''} in "
        f"{format_seconds(time.perf_counter() - started)}.")


def freshness(
    groups: Annotated[list[str] | None, typer.Argument(
        metavar="GROUP", help="Feature groups; default: all.", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    uri: UriOption = None,
) -> None:
    """How current each feature group's online values are: the newest event they hold and
    the last materialization."""
    with open_yard(uri) as yard:
        found = yard.features.online.freshness(groups)
    if as_json:
        typer.echo(json.dumps([f.to_dict() for f in found], indent=2))
        return
    table = listing("Online freshness", ["group", "version", "newest event", "event age",
                                         "last materialized", "age", "as of", "runs"],
                    right=("runs",))
    for f in found:
        table.add_row(cell(f.group), cell(f"v{f.version}"), cell(_iso(f.newest_event)),
                      cell(_age(f.event_age())), cell(_iso(f.last_materialized)),
                      cell(_age(f.materialization_age()),
                           "yellow" if f.last_materialized is None else ""),
                      cell(_iso(f.materialized_as_of)), cell(f.runs))
    show(table)


def check_skew(
    group: Annotated[str, typer.Argument(metavar="GROUP", help="Feature group name.")],
    sample: Annotated[int, typer.Option("--sample", min=1,
                                        metavar="N", help="Entities to compare.")] = 100,
    seed: Annotated[int | None, typer.Option("--seed", metavar="N",
                                             help="Random seed of the sample.",
                                             show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    uri: UriOption = None,
) -> None:
    """Compare a sample of online values with an offline recomputation of the same rows;
    exit 1 on any mismatch."""
    with open_yard(uri) as yard:
        report = yard.features.online.check_skew(group, sample=sample, seed=seed)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        table = listing(f"Skew check of {report.group} v{report.version} "
                        f"({report.sampled} entities)", ["feature", "compared", "mismatches",
                                                         "example"],
                        wrap=("example",), right=("compared", "mismatches"))
        for f in report.features:
            example = f.examples[0] if f.examples else None
            text = "" if example is None else (f"key {example['key']}: online "
                                               f"{example['online']!r}, offline "
                                               f"{example['offline']!r}")
            table.add_row(cell(f.feature), cell(f.compared),
                          cell(f.mismatches, "red" if f.mismatches else "green"), cell(text))
        show(table)
        say("[green]No skew: online values equal the offline recomputation.[/]" if report.ok
            else f"[red]{report.mismatches} mismatching value(s).[/]")
    if not report.ok:
        raise typer.Exit(1)
