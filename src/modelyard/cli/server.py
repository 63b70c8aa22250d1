"""CLI: ``modelyard server``, the team server that remote clients reach over HTTP."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.markup import escape

from modelyard.cli.project import UriOption, hide_password, open_yard
from modelyard.cli.render import say
from modelyard.cli.serve import LogLevel, _uvicorn, check_port
from modelyard.errors import ConfigurationError

FACTORY = "modelyard.server.team:team_app_from_environment"


def register(app: typer.Typer) -> None:
    app.command("server")(server)


def server(
    host: Annotated[str, typer.Option(
        "--host", help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(
        "--port", "-p", min=1, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(
        "--workers", "-w", min=1, help="Worker processes (more than one needs "
                                       "PostgreSQL).")] = 1,
    log_level: Annotated[LogLevel, typer.Option(
        "--log-level", case_sensitive=False, help="Server log level.")] = LogLevel.info,
    uri: UriOption = None,
) -> None:
    """Share the project with a team: the tracking and registry API under /api/v1
    (clients connect with modelyard.connect("http://HOST:PORT", token=...)), artifacts
    streamed both ways, promotions run here with their gates, plus /healthz, /readyz and
    /docs. Model serving is `modelyard serve`."""
    uvicorn = _uvicorn()
    check_port(host, port)
    with open_yard(uri) as yard:  # fails early (and migrates) before any worker starts
        project, store = yard.settings.project_name, yard.store_uri
        if yard.stores.remote:
            raise ConfigurationError("a server needs a database (sqlite:// or "
                                     "postgresql://), not another server", uri=store)
        if workers > 1 and store.startswith("sqlite"):
            raise ConfigurationError(
                "several workers need PostgreSQL: SQLite serializes every write, so use "
                "--workers 1 or a postgresql:// store", field="workers")
    shown = f"[{host}]" if ":" in host else host
    say(f"Team server for project [bold]{escape(project or '(none)')}[/] (metadata: "
        f"{escape(hide_password(store))}) on http://{escape(shown)}:{port} with {workers} "
        f"worker{'s' if workers != 1 else ''}\n"
        f"  connect with modelyard.connect(\"http://{escape(shown)}:{port}\", token=...)\n"
        "  GET  /docs                     the API, described")
    if uri is not None:
        os.environ["MODELYARD_URI"] = uri
    uvicorn.run(FACTORY, factory=True, host=host, port=port, workers=workers,
                log_level=log_level.value, timeout_graceful_shutdown=10)
