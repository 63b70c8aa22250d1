"""CLI: ``modelyard serve``, the project's HTTP server (run with uvicorn)."""

from __future__ import annotations

import os
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.markup import escape

from modelyard.cli.project import UriOption, hide_password, open_yard
from modelyard.cli.render import say
from modelyard.errors import ConfigurationError

FACTORY = "modelyard.server.app:app_from_environment"


class LogLevel(StrEnum):
    critical = "critical"
    error = "error"
    warning = "warning"
    info = "info"
    debug = "debug"
    trace = "trace"


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def _uvicorn() -> Any:
    """uvicorn, once the server extra is known to be installed."""
    try:
        import starlette  # noqa: F401
        import uvicorn
    except ImportError as exc:
        raise ConfigurationError(
            "serving needs the server extra: pip install 'modelyard[server]' "
            f"({exc.name} is missing)") from exc
    return uvicorn


def serve(
    host: Annotated[str, typer.Option(
        "--host", help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(
        "--port", "-p", min=1, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(
        "--workers", "-w", min=1, help="Worker processes.")] = 1,
    log_level: Annotated[LogLevel, typer.Option(
        "--log-level", case_sensitive=False, help="Server log level.")] = LogLevel.info,
    uri: UriOption = None,
) -> None:
    """Serve the project over HTTP: the online feature endpoint
    (POST /v1/features/online), health probes (/healthz, /readyz) and the API
    description (/openapi.json, /docs)."""
    uvicorn = _uvicorn()
    level = log_level.value
    if workers == 1:
        from modelyard.server.app import create_app

        with open_yard(uri) as yard:
            app = create_app(yard)
            _announce(yard.settings.project_name, yard.store_uri, host, port, workers)
            uvicorn.run(app, host=host, port=port, log_level=level)
        return
    # Each worker process opens the project itself: check it opens here first, so a mistake
    # is one clear error rather than one per worker, then hand the settings down.
    with open_yard(uri) as yard:
        _announce(yard.settings.project_name, yard.store_uri, host, port, workers)
    if uri is not None:
        os.environ["MODELYARD_URI"] = uri
    uvicorn.run(FACTORY, factory=True, host=host, port=port, workers=workers,
                log_level=level)


def _announce(project: str | None, store: str, host: str, port: int, workers: int) -> None:
    shown = f"[{host}]" if ":" in host else host
    say(f"Serving project [bold]{escape(project or '(none)')}[/] "
        f"(metadata: {escape(hide_password(store))}) on http://{escape(shown)}:{port} "
        f"with {workers} worker{'s' if workers != 1 else ''}\n"
        f"  POST /v1/features/online   feature values of entities\n"
        f"  GET  /docs                 the API, described")
