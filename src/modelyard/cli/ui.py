"""CLI: ``modelyard ui``, the web UI over the project (run with uvicorn)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from modelyard.cli.project import UriOption, hide_password
from modelyard.cli.render import console
from modelyard.cli.serve import LogLevel, _uvicorn, check_port
from modelyard.errors import ProjectNotFoundError


def register(app: typer.Typer) -> None:
    app.command("ui")(ui)


def ui(
    host: Annotated[str, typer.Option(
        "--host", help="Address to listen on (0.0.0.0: every interface; the UI has no "
                       "login of its own, so keep it local or behind the team server).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(
        "--port", "-p", min=1, max=65535, help="Port to listen on.")] = 8080,
    path: Annotated[Path | None, typer.Option(
        "--path", help="The project folder (default: found by walking up from the "
                       "working directory).", show_default=False)] = None,
    log_level: Annotated[LogLevel, typer.Option(
        "--log-level", case_sensitive=False, help="Server log level.")] = LogLevel.warning,
    uri: UriOption = None,
) -> None:
    """Open the web UI: runs (filter, sort, choose columns, compare), models (versions,
    aliases and their history, gate reports, lineage, promote, roll back, approve),
    monitoring (drift per feature over time, alerts, reports) and the feature store."""
    if path is not None and not (path / "modelyard.toml").is_file():
        raise ProjectNotFoundError(
            f"no modelyard project at {path} (it has no modelyard.toml): give the folder "
            "`modelyard init` or `modelyard demo --path` made", path=str(path))
    uvicorn = _uvicorn()
    check_port(host, port)
    from modelyard.client import connect
    from modelyard.ui import ui_app

    with connect(uri, project=path) as yard:
        app = ui_app(yard)
        shown = "localhost" if host in ("127.0.0.1", "0.0.0.0") else host
        console.print(f"modelyard UI of {escape(yard.settings.project_name or '-')} "
                      f"({escape(hide_password(yard.store_uri))}) on "
                      f"[bold]http://{shown}:{port}/[/bold]; Ctrl-C stops it")
        uvicorn.run(app, host=host, port=port, log_level=log_level.value)
