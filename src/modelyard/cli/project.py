"""CLI: ``modelyard init`` and ``modelyard doctor``, and the store option other commands share."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from modelyard.project import init_project
from modelyard.settings import PROJECT_FILE, Settings, load_settings

from .render import cell, console, format_size, listing, say, section, show

if TYPE_CHECKING:
    from modelyard.client import Yard
    from modelyard.diagnostics import Diagnosis

UriOption = Annotated[
    str | None,
    typer.Option(
        "--uri", metavar="URI",
        help="Metadata store to use (sqlite:///path.db or postgresql://user@host/db); "
             "default: MODELYARD_URI, else the project's own store.",
    ),
]

IdempotencyKeyOption = Annotated[
    str | None,
    typer.Option(
        "--idempotency-key", metavar="KEY",
        help="Name this write: run again with the same key, it returns the first result and "
             "writes nothing. Default: a key derived from the input's content.",
        show_default=False,
    ),
]
NoIdempotencyOption = Annotated[
    bool,
    typer.Option("--no-idempotency",
                 help="Write even if the same input was written before (no key)."),
]


def choose_key(given: str | None, disabled: bool, derive: Callable[[], str | None]
               ) -> str | None:
    """The idempotency key of a CLI write: the given one, none, or one derived from the
    input's content."""
    if given is not None and disabled:
        from modelyard.errors import InvalidInputError

        raise InvalidInputError("give --idempotency-key or --no-idempotency, not both",
                                field="idempotency_key")
    if disabled:
        return None
    return given if given is not None else derive()


def open_yard(uri: str | None) -> Yard:
    """The connection every store command works on (close it, or use it in ``with``).

    The client (and SQLAlchemy behind it) is imported here, when a command runs, so that
    ``--help``, ``--version`` and shell completion stay fast."""
    from modelyard.client import connect

    return connect(uri)


def hide_password(uri: str) -> str:
    return re.sub(r"(://[^/:@]*:)[^@/]*@", r"\1***@", uri)


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("doctor")(doctor)


def init(
    path: Annotated[Path, typer.Argument(
        metavar="PATH",
        help="Folder to turn into a project (created if missing).", show_default=True,
    )] = Path("."),
    name: Annotated[str | None, typer.Option(
        "--name", metavar="NAME", help="Project name; default: the folder's name.",
    )] = None,
) -> None:
    """Create a project: modelyard.toml plus the .modelyard/ data folder."""
    root = init_project(path, name)
    project_name = load_settings(root).project_name
    say(f"Created project [bold]{escape(project_name)}[/] in {escape(str(root))}\n"
        f"  {PROJECT_FILE}   settings (keep it in version control)\n"
        "  .modelyard/      metadata and artifacts (ignored by git)\n"
        "Next: in Python, [bold]yard = modelyard.connect()[/] and "
        "[bold]with yard.start_run('my-experiment') as run: ...[/]\n"
        "      then [bold]modelyard runs list[/] from this folder or any below it.")

def _writes_table(d: Diagnosis) -> Table:
    """Writes in flight or left half-done, and the latest repairs."""
    from datetime import UTC, datetime

    def when(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")

    table = listing("Writes (recovery)", ["when", "write", "state", "detail"])
    for intent in d.intents:
        state = ("in flight" if intent.owner_alive() else
                 "half-done: repaired on the next open (or doctor --repair)")
        table.add_row(cell(when(intent.started_at)),
                      cell(f"{intent.kind} {intent.target}"), cell(state),
                      cell(f"pid {intent.owner_pid} on {intent.owner_host}"
                           + (f"; blobs {len(intent.blobs)}" if intent.blobs else "")))
    for repair in d.repairs:
        table.add_row(cell(when(repair.repaired_at)), cell(f"{repair.kind} {repair.target}"),
                      cell(repair.action), cell(repair.detail))
    if not d.intents and not d.repairs:
        table.add_row(cell("-"), cell("-"), cell("nothing half-done, nothing repaired"),
                      cell(""))
    return table


def doctor(
    uri: UriOption = None,
    repair: Annotated[bool, typer.Option(
        "--repair", help="First complete or roll back the writes that crashed processes "
                         "left half-done (opening the project does it too).")] = False,
) -> None:
    """Show the project, its stores, the settings in force, the versions in use, and the
    writes that crashes left half-done and how they were repaired.

    Read-only without --repair: it neither creates nor migrates the metadata store."""
    from modelyard.diagnostics import diagnose

    d = diagnose(uri, repair=repair)
    settings = d.settings
    project = section("Project")
    project.add_row("name", cell(settings.project_name or "(none)"))
    project.add_row("root", cell(settings.project_root or "(none: MODELYARD_URI is used)"))
    store = section("Metadata store")
    if d.store is None:
        store.add_row("uri", cell(hide_password(settings.uri)))
        message = d.store_error.message if d.store_error else "unknown problem"
        store.add_row("status", cell(f"unusable: {message}", style="red"))
    else:
        store.add_row("uri", cell(d.store.uri))
        store.add_row("backend", cell(f"{d.store.backend} {d.store.server_version}".strip()))
        if d.store.revision is None:
            store.add_row("schema", cell("not created yet (made on first use)"))
        elif d.store.revision == d.store.head:
            store.add_row("schema", cell(f"{d.store.revision} (up to date)"))
            store.add_row("experiments", cell(d.experiments))
        else:
            store.add_row("schema", cell(f"{d.store.revision} (this modelyard expects "
                                         f"{d.store.head}; it is migrated on first use if older)"))
    artifacts = section("Artifact store")
    artifacts.add_row("uri", cell(settings.artifact_uri))
    if d.artifact_folder_exists is not None:
        artifacts.add_row("folder", cell("exists" if d.artifact_folder_exists
                                         else "not created yet (made on the first artifact)"))
    if d.reclaimable is not None:
        r = d.reclaimable
        parts = ", ".join(f"{count} {kind}{'s' if count != 1 else ''} ({format_size(size)})"
                          for kind, (count, size) in r.totals().items() if count)
        artifacts.add_row("reclaimable", cell(
            f"{format_size(r.bytes)}: {parts} (`modelyard gc` frees it)" if r.count
            else "nothing (no unreferenced data older than an hour)"))
    table = listing("Settings", ["setting", "value", "from"], wrap=("value", "from"))
    for f in Settings.fields():
        value = getattr(settings, f.name)
        shown = hide_password(value) if f.name == "uri" else value
        if f.metadata.get("secret"):
            shown = "(set, not shown)" if value else ""
        source = "--uri" if d.sources[f.name] == "arguments" else d.sources[f.name]
        table.add_row(cell(f.metadata["toml"]), cell(shown), cell(source))
    versions = section("Versions")
    for package, version in d.versions.items():
        versions.add_row(package, cell(version))
    writes = _writes_table(d)
    for part in (project, store, artifacts, table, versions, writes):
        if part is table or part is writes:
            show(part)
        else:
            console.print(part)
        console.print()
    if d.store_error is not None:
        raise d.store_error
