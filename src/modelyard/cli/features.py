"""CLI: ``modelyard features plan|apply|list|show|ingest|profile|forget``."""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.text import Text

from modelyard.cli.project import (
    IdempotencyKeyOption,
    NoIdempotencyOption,
    UriOption,
    choose_key,
    open_yard,
)
from modelyard.cli.render import (
    cell,
    console,
    format_number,
    format_seconds,
    format_time,
    listing,
    say,
    section,
    short_id,
    show,
)
from modelyard.errors import InvalidInputError

if TYPE_CHECKING:
    import pyarrow as pa

    from modelyard.backends.offline.tables import Commit
    from modelyard.features.profiles import ColumnProfile, ProfileReport
    from modelyard.features.registry import Change

app = typer.Typer(help="Feature store: definitions, ingestion, profiles.",
                  no_args_is_help=True)

PathsArgument = Annotated[list[Path] | None, typer.Argument(
    metavar="PATH", help="Python files or folders holding the definitions; default: the project's "
         "features.py and features/ folder.", show_default=False,
)]

_BLOCKS = "▁▂▃▄▅▆▇█"
_ASCII_LEVELS = "_.-=+*#@"
_PROFILE_COLUMNS = ("column", "type", "count", "nulls", "distinct", "min", "mean", "p50",
                    "max", "distribution")
_NUMBERS = ("count", "nulls", "distinct", "min", "mean", "p50", "max")
_LEFT_OUT_FIRST = ("type", "distribution", "p50", "mean", "distinct")
_ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T[\d:.]+\+00:00$")


def _paths(yard_root: Path | None, paths: list[Path] | None) -> list[Path]:
    from modelyard.features.discovery import default_paths

    if paths:
        return paths
    found = default_paths(yard_root or Path.cwd())
    if not found:
        raise InvalidInputError(
            "no definitions to read: give files, or put them in the project's features.py",
            field="path")
    return found


def _print_changes(changes: Sequence[Change], applied: bool) -> None:
    styles = {"create": "green", "update": "yellow", "unchanged": "dim"}
    for change in changes:
        console.print(Text(str(change), style=styles[change.action]))
    todo = sum(c.action != "unchanged" for c in changes)
    verb = "applied" if applied else "to apply"
    say(f"{todo} change{'s' if todo != 1 else ''} {verb}." if todo else "Nothing to change.")


def _plan_or_apply(paths: list[Path] | None, uri: str | None, *, store: bool) -> None:
    from modelyard.features.discovery import load_definitions

    with open_yard(uri) as yard:
        objects = load_definitions(_paths(yard.settings.project_root, paths))
        changes = yard.features.apply(objects) if store else yard.features.plan(objects)
    _print_changes(changes, applied=store)


@app.command("plan")
def plan(paths: PathsArgument = None, uri: UriOption = None) -> None:
    """Show what `apply` would change, storing nothing."""
    _plan_or_apply(paths, uri, store=False)


@app.command("apply")
def apply(paths: PathsArgument = None, uri: UriOption = None) -> None:
    """Store the definitions; a changed one becomes a new version, unchanged ones stay."""
    _plan_or_apply(paths, uri, store=True)


@app.command("list")
def list_definitions(uri: UriOption = None) -> None:
    """List entities, sources and feature groups (latest versions)."""
    with open_yard(uri) as yard:
        records = yard.features.list_definitions()
    if not records:
        say("No definitions yet: write them in features.py and run "
            "[bold]modelyard features apply[/].")
        return
    table = listing(None, ["kind", "name", "version", "description", "applied"],
                    wrap=("description",))
    for r in records:
        table.add_row(cell(r.kind.replace("_", " ")), cell(r.name, "bold"),
                      cell(f"v{r.version}"), cell(r.spec.get("description", "")),
                      cell(format_time(r.created_at)))
    show(table)


@app.command("show")
def show_group(
    name: Annotated[str, typer.Argument(metavar="GROUP", help="Feature group name.")],
    version: Annotated[int | None, typer.Option("--version", "-v", min=1,
                                                metavar="N",
                                                help="A version; default: the latest.")] = None,
    last: Annotated[int, typer.Option("--commits", "-n", min=0,
                                      metavar="N",
                                      help="How many of the newest commits to list.")] = 10,
    uri: UriOption = None,
) -> None:
    """Show a feature group: entity, source, features, versions and commits."""
    with open_yard(uri) as yard:
        group = yard.features.group(name, version)
        versions = yard.features.history("feature_group", name)
        commits = yard.features.commits(group.source.name)
    shown = version or versions[-1].version
    source = group.source
    head = section(f"Feature group {group.name} (v{shown})")
    head.add_row("entity", cell(f"{group.entity.name} (keys: {', '.join(group.entity.keys)})"))
    head.add_row("source", cell(f"{source.name} ({source.kind_of_source}"
                                f"{': ' + source.location if source.location else ''}"
                                f"), timestamp {source.timestamp}"))
    head.add_row("ttl", cell(group.ttl or "none"))
    if group.transform is not None:
        head.add_row("transform", cell(group.transform.name))
    if group.description:
        head.add_row("description", cell(group.description))
    head.add_row("versions", cell(", ".join(f"v{v.version}" for v in versions)))
    console.print(head)
    table = listing("Features", ["feature", "expression", "window", "tags", "description"],
                    wrap=("expression", "tags", "description"))
    for f in group.features:
        table.add_row(cell(f.name, "bold"), cell(f.expr), cell(f.window or ""),
                      cell(", ".join(f.tags)), cell(f.description))
    show(table)
    _print_commits(source.name, commits, last)


def _print_commits(source: str, commits: list[Commit], last: int) -> None:
    if not commits:
        say(f"No commits yet: [bold]modelyard features ingest {escape(source)}[/].")
        return
    table = listing(f"Commits of {source}", ["commit", "time", "operation", "rows",
                                             "version"], right=("rows", "version"))
    for c in reversed(commits[-last:] if last else []):
        sign = "-" if c.operation == "forget" else "+"
        table.add_row(cell(short_id(c.commit_id)), cell(_when(c)),
                      cell(c.operation, "red" if c.operation == "forget" else "green"),
                      cell(f"{sign}{c.rows:,}"), cell(c.version))
    show(table)
    if len(commits) > last:
        say(f"[dim]{len(commits) - last} older commit(s) not shown (--commits).[/]")


def _when(commit: Commit) -> str:
    return format_time(int(commit.ingested_at.timestamp() * 1000), seconds=True)


def _read_file(file: Path) -> pa.Table:
    import pyarrow as pa
    import pyarrow.dataset as ds

    if not file.exists():
        raise InvalidInputError(f"no file at {file}", field="file")
    fmt = "csv" if file.suffix.lower() in (".csv", ".tsv") else "parquet"
    try:
        return ds.dataset(str(file), format=fmt).to_table()
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise InvalidInputError(f"cannot read {file} as {fmt}: {exc}", field="file") from exc


@app.command("ingest")
def ingest(
    target: Annotated[str, typer.Argument(metavar="NAME", help="Source or feature group name.")],
    file: Annotated[Path | None, typer.Argument(
        metavar="PATH",
        help="Parquet or CSV file to ingest; default: the source's own files or query.",
        show_default=False)] = None,
    idempotency_key: IdempotencyKeyOption = None,
    no_idempotency: NoIdempotencyOption = False,
    uri: UriOption = None,
) -> None:
    """Validate a batch and append it to the source's offline table as one commit.

    Ingesting the same file again is a no-op that shows the first commit (the key is the
    file's sha256 with the source's definition version), unless --no-idempotency."""
    from modelyard.features.recovery import ingest_key

    started = time.perf_counter()
    with open_yard(uri) as yard, console.status(f"Reading {escape(str(file or target))}...",
                                                spinner="dots") as status:
        source = yard.features.source(target)
        key = choose_key(idempotency_key, no_idempotency,
                         lambda: ingest_key(yard.features, source.name, file))
        if key is not None and yard.writes.lookup(key) is not None:
            commit = yard.features.ingest(source, _read_file(file) if file else None,
                                          idempotency_key=key)
            say(f"Already committed under idempotency key {escape(key)}: commit "
                f"{short_id(commit.commit_id)} ({commit.rows:,} rows, table version "
                f"{commit.version}); nothing written. Use --no-idempotency to ingest it "
                "again.")
            return
        data = None if file is None else _read_file(file)
        if data is not None:
            status.update(f"Validating and committing {data.num_rows:,} rows to "
                          f"{escape(source.name)}...")
        commit = yard.features.ingest(source, data, idempotency_key=key)
    where = escape(source.name) if source.name == target else (
        f"{escape(source.name)} (the source of {escape(target)})")
    say(f"Committed [bold]{commit.rows:,}[/] row{'s' if commit.rows != 1 else ''} to "
        f"{where} in {format_seconds(time.perf_counter() - started)}: commit "
        f"{short_id(commit.commit_id)}, table version {commit.version}.\n"
        f"Profile and warnings: [bold]modelyard features profile {escape(source.name)}[/]")


@app.command("profile")
def profile(
    target: Annotated[str, typer.Argument(metavar="NAME", help="Source or feature group name.")],
    commit: Annotated[str | None, typer.Option(
        "--commit", metavar="COMMIT",
        help="A commit id (or its start); default: the newest ingestion.")
    ] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print the commit, its profile and the report as JSON.")] = False,
    uri: UriOption = None,
) -> None:
    """Show the data profile stored when a batch was ingested, with its warnings."""
    with open_yard(uri) as yard:
        found = yard.features.commit_report(target, commit)
    if as_json:
        typer.echo(json.dumps({"source": found.source, "commit": found.commit.to_dict(),
                               "profile": found.profile.to_dict(),
                               "report": found.report.to_dict()}, indent=2, default=str))
        return
    summary = found.profile
    title = (f"Profile of {found.source}, commit {short_id(found.commit.commit_id)} "
             f"({_when(found.commit)}, {summary.rows:,} rows)")
    rows = [_profile_row(c) for c in summary.columns.values()]
    shown, hidden = _fit(rows)
    table = listing(title, shown, wrap=("distribution",), right=_NUMBERS)
    for row in rows:
        table.add_row(*(row[h] for h in shown))
    show(table)
    if hidden:
        say(f"[dim]Not shown for lack of width: {', '.join(hidden)} (see --json).[/]")
    console.print()
    _print_warnings(found.report)


def _profile_row(c: ColumnProfile) -> dict[str, Text]:
    p50 = (c.quantiles or {}).get("p50")
    return {"column": cell(c.name, "bold"), "type": cell(c.dtype, "dim"),
            "count": cell(f"{c.count:,}"), "nulls": cell(f"{c.nulls:,}",
                                                         "yellow" if c.nulls else ""),
            "distinct": cell(f"{c.distinct:,}"), "min": cell(_short(c.min)),
            "mean": cell(_short(c.mean)), "p50": cell(_short(p50)),
            "max": cell(_short(c.max)), "distribution": cell(_distribution(c), "cyan")}


def _fit(rows: list[dict[str, Text]]) -> tuple[list[str], list[str]]:
    """The profile columns that fit the terminal, and those left out (least useful first)."""
    widths = {h: max([len(h), *(len(r[h]) for r in rows)]) + 3 for h in _PROFILE_COLUMNS}
    hidden: list[str] = []
    for header in _LEFT_OUT_FIRST:
        if sum(w for h, w in widths.items() if h not in hidden) <= console.width:
            break
        hidden.append(header)
    return [h for h in _PROFILE_COLUMNS if h not in hidden], hidden


def _short(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, int | float):
        text = str(value)
        if _ISO_UTC.match(text):  # stored timestamps are UTC: say it once, in the type
            text = text[:-6].replace("T", " ").removesuffix(" 00:00:00")
        return text if len(text) <= 25 else text[:22] + "..."
    return format_number(value)


def _distribution(c: ColumnProfile) -> str:
    if c.histogram is not None:
        return _sparkline(c.histogram.counts)
    if c.top_values:
        return ", ".join(f"{v} ({n})" for v, n in c.top_values[:3]) + (
            ", ..." if len(c.top_values) > 3 or c.other_values else "")
    return ""


def _sparkline(counts: Sequence[int]) -> str:
    levels = _BLOCKS if (console.encoding or "").lower().startswith("utf") else _ASCII_LEVELS
    top = max(counts, default=0)
    if top == 0:
        return ""
    return "".join(" " if n == 0 else levels[math.ceil(n * len(levels) / top) - 1]
                   for n in counts)


def _print_warnings(report: ProfileReport) -> None:
    if not report.flagged:
        say("[green]Nothing flagged[/]: no outliers, comparable scales, no highly correlated "
            "pairs, no constant columns.")
        return
    from modelyard.features.profiles import CORRELATION, ROBUST_Z

    warnings = section("Warnings")
    for o in report.outliers:
        if o.iqr or o.robust_z:
            warnings.add_row(Text("outliers", "yellow"), cell(
                f"{o.column}: {o.iqr:,} row(s) outside 1.5 IQR of the quartiles, "
                f"{o.robust_z:,} with a robust z-score above {ROBUST_Z}"))
    if report.scale_gap is not None:
        g = report.scale_gap
        warnings.add_row(Text("scales", "yellow"), cell(
            f"{g.largest} spreads {g.ratio:,.3g}x wider than {g.smallest}: scale features "
            "for distance- or gradient-based models"))
    for pair in report.correlated:
        warnings.add_row(Text("correlated", "magenta"), cell(
            f"{pair.a} ~ {pair.b}: pearson {pair.pearson:+.3f} (|r| > {CORRELATION})"))
    for name in report.constant:
        warnings.add_row(Text("constant", "red"), cell(f"{name}: one value in every row"))
    console.print(warnings)


@app.command("forget")
def forget(
    entity: Annotated[str, typer.Argument(metavar="ENTITY", help="Entity name.")],
    keys: Annotated[list[str], typer.Argument(
        metavar="KEY",
        help="Key values to forget, converted to the type of the entity's key column.")],
    uri: UriOption = None,
) -> None:
    """Delete entities' rows from every version of the offline store, and log it.

    Entities with a composite key are forgotten from Python:
    yard.features.forget(entity, {column: [values], ...})."""
    with open_yard(uri) as yard:
        removed = yard.features.forget(entity, yard.features.typed_keys(entity, keys))
    say(f"Removed {removed:,} row{'s' if removed != 1 else ''} of {len(keys)} "
        f"{escape(entity)} key(s) from every version of the offline store.")
