"""CLI: ``modelyard features plan|apply|list|show|ingest|profile|forget``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from modelyard.cli.project import UriOption, open_yard
from modelyard.cli.render import cell, console, format_time, listing, say, section
from modelyard.errors import InvalidInputError

app = typer.Typer(help="Feature store: definitions, ingestion, profiles.",
                  no_args_is_help=True)

PathsArgument = Annotated[list[Path] | None, typer.Argument(
    help="Python files or folders holding the definitions; default: the project's "
         "features.py and features/ folder.", show_default=False,
)]


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


def _print_changes(changes: list[object], applied: bool) -> None:
    styles = {"create": "green", "update": "yellow", "unchanged": "dim"}
    for change in changes:
        action = getattr(change, "action", "unchanged")
        console.print(f"[{styles[action]}]{escape(str(change))}[/]")
    todo = sum(getattr(c, "action", "") != "unchanged" for c in changes)
    verb = "applied" if applied else "to apply"
    say(f"{todo} change{'s' if todo != 1 else ''} {verb}." if todo else "Nothing to change.")


@app.command("plan")
def plan(paths: PathsArgument = None, uri: UriOption = None) -> None:
    """Show what `apply` would change, storing nothing."""
    from modelyard.features.discovery import load_definitions

    with open_yard(uri) as yard:
        objects = load_definitions(_paths(yard.settings.project_root, paths))
        changes = yard.features.plan(objects)
    _print_changes(list(changes), applied=False)


@app.command("apply")
def apply(paths: PathsArgument = None, uri: UriOption = None) -> None:
    """Store the definitions; a changed one becomes a new version, unchanged ones stay."""
    from modelyard.features.discovery import load_definitions

    with open_yard(uri) as yard:
        objects = load_definitions(_paths(yard.settings.project_root, paths))
        changes = yard.features.apply(objects)
    _print_changes(list(changes), applied=True)


@app.command("list")
def list_definitions(uri: UriOption = None) -> None:
    """List entities, sources and feature groups (latest versions)."""
    with open_yard(uri) as yard:
        records = yard.features.list_definitions()
    if not records:
        say("No definitions yet: write them in features.py and run "
            "[bold]modelyard features apply[/].")
        return
    table = listing(None, ["kind", "name", "version", "description", "applied"])
    for r in records:
        table.add_row(cell(r.kind.replace("_", " ")), cell(r.name, "bold"),
                      cell(f"v{r.version}"), cell(r.spec.get("description", "")),
                      cell(format_time(r.created_at)))
    console.print(table)


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="Feature group name.")],
    version: Annotated[int | None, typer.Option("--version", "-v", min=1,
                                                help="A version; default: the latest.")] = None,
    uri: UriOption = None,
) -> None:
    """Show a feature group: entity, source, features, versions and commits."""
    with open_yard(uri) as yard:
        group = yard.features.group(name, version)
        versions = yard.features.history("feature_group", name)
        commits = yard.features.commits(group.source.name)
    shown = version or versions[-1].version
    head = section(f"Feature group {group.name} (v{shown})")
    head.add_row("entity", cell(f"{group.entity.name} (keys: {', '.join(group.entity.keys)})"))
    head.add_row("source", cell(f"{group.source.name} ({group.source.kind_of_source}"
                                f"{': ' + group.source.location if group.source.location else ''}"
                                f"), timestamp {group.source.timestamp}"))
    head.add_row("ttl", cell(group.ttl or "none"))
    if group.transform is not None:
        head.add_row("transform", cell(group.transform.name))
    if group.description:
        head.add_row("description", cell(group.description))
    head.add_row("versions", cell(", ".join(f"v{v.version}" for v in versions)))
    head.add_row("commits", cell(f"{len(commits)}, last {commits[-1].ingested_at:%Y-%m-%d %H:%M}"
                                 if commits else "none yet"))
    console.print(head)
    table = listing("Features", ["feature", "expression", "window", "tags", "description"])
    for f in group.features:
        table.add_row(cell(f.name, "bold"), cell(f.expr), cell(f.window or ""),
                      cell(", ".join(f.tags)), cell(f.description))
    console.print(table)


@app.command("ingest")
def ingest(
    target: Annotated[str, typer.Argument(help="Source or feature group name.")],
    file: Annotated[Path | None, typer.Argument(
        help="Parquet or CSV file to ingest; default: the source's own files or query.",
        show_default=False)] = None,
    uri: UriOption = None,
) -> None:
    """Validate a batch and append it to the source's offline table as one commit."""
    data = None
    if file is not None:
        import pyarrow.dataset as ds

        if not file.exists():
            raise InvalidInputError(f"no file at {file}", field="file")
        fmt = "csv" if file.suffix.lower() == ".csv" else "parquet"
        data = ds.dataset(str(file), format=fmt).to_table()
    with open_yard(uri) as yard, console.status(f"Ingesting into {target}..."):
        commit = yard.features.ingest(target, data)
    say(f"Committed [bold]{commit.rows:,}[/] rows to {escape(target)} "
        f"(commit {commit.commit_id}, version {commit.version}).")


@app.command("profile")
def profile(
    source: Annotated[str, typer.Argument(help="Source or feature group name.")],
    commit: Annotated[str | None, typer.Option(
        "--commit", help="A commit id; default: the newest.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw profile as JSON.")
                       ] = False,
    uri: UriOption = None,
) -> None:
    """Show the data profile stored when a batch was ingested, with its warnings."""
    with open_yard(uri) as yard:
        name = source
        groups = {r.name for r in yard.features.list_definitions("feature_group")}
        if source in groups:
            name = yard.features.group(source).source.name
        stored = yard.features.commit_profile(name, commit)
    if as_json:
        console.print_json(json.dumps(stored, default=str))
        return
    columns = stored.get("columns", stored)
    table = listing(f"Profile of {name}", ["column", "count", "nulls", "distinct", "min",
                                           "mean", "max"])
    for column, stats in columns.items() if isinstance(columns, dict) else []:
        if not isinstance(stats, dict):
            continue
        table.add_row(cell(column, "bold"), *(cell(_short(stats.get(k))) for k in (
            "count", "nulls", "distinct", "min", "mean", "max")))
    console.print(table)


def _short(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@app.command("forget")
def forget(
    entity: Annotated[str, typer.Argument(help="Entity name.")],
    keys: Annotated[list[str], typer.Argument(help="Key values to forget.")],
    uri: UriOption = None,
) -> None:
    """Delete entities' rows from every version of the offline store, and log it."""
    with open_yard(uri) as yard:
        ent = yard.features.definitions.entity(entity)
        values: list[object] = [int(k) if k.lstrip("-").isdigit() else k for k in keys]
        removed = yard.features.forget(ent, values)
    say(f"Removed {removed:,} rows of {len(keys)} {escape(entity)} key(s) from every "
        "version of the offline store.")
