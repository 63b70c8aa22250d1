"""CLI: ``modelyard serve``, the project's HTTP server (run with uvicorn)."""

from __future__ import annotations

import errno
import os
import socket
import tempfile
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from modelyard.cli.project import UriOption, hide_password, open_yard
from modelyard.cli.render import console, say
from modelyard.errors import ConfigurationError, InvalidInputError

if TYPE_CHECKING:
    from modelyard.client import Yard
    from modelyard.serving.options import ServeOptions
    from modelyard.serving.service import ModelServer

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


class Batching(StrEnum):
    auto = "auto"
    on = "on"
    off = "off"


def serve(
    models: Annotated[list[str] | None, typer.Argument(
        help="Models to serve, as NAME@ALIAS (follows the alias), NAME:VERSION or NAME "
             "(the newest version).", show_default=False)] = None,
    host: Annotated[str, typer.Option(
        "--host", help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(
        "--port", "-p", min=1, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(
        "--workers", "-w", min=1, help="Worker processes.")] = 1,
    canary: Annotated[list[str] | None, typer.Option(
        "--canary", help="[MODEL=]TARGET:PERCENT: a share of requests answered by another "
                         "alias or version, like challenger:10% (MODEL defaults to the "
                         "first model); an alias without a share (canary) answers the "
                         "share its version's shadow trial declares.",
        show_default=False)] = None,
    shadow: Annotated[list[str] | None, typer.Option(
        "--shadow", help="[MODEL=]TARGET: a version that sees a copy of every request; its "
                         "answers are logged, never returned.", show_default=False)] = None,
    poll_interval: Annotated[float, typer.Option(
        "--poll-interval", min=0.1, help="Seconds between checks of the followed aliases "
                                         "(a moved alias is swapped in without a restart).")
    ] = 2.0,
    listen: Annotated[bool, typer.Option(
        "--listen/--no-listen", help="On PostgreSQL, also wake as soon as an alias moves "
                                     "(LISTEN/NOTIFY); turn off behind a connection pooler in "
                                     "transaction mode, which drops notifications.")] = True,
    onnx: Annotated[bool, typer.Option(
        "--onnx/--no-onnx", help="Serve a version's verified ONNX twin when it has one.")
    ] = True,
    batching: Annotated[Batching, typer.Option(
        "--batching", case_sensitive=False,
        help="Micro-batch concurrent requests: auto (where timing the model says it helps), "
             "on or off.")] = Batching.auto,
    log_level: Annotated[LogLevel, typer.Option(
        "--log-level", case_sensitive=False, help="Server log level.")] = LogLevel.info,
    uri: UriOption = None,
) -> None:
    """Serve the project over HTTP: models (POST /v1/models/NAME/predict, the Open
    Inference Protocol under /v2, /metrics), the online feature endpoint
    (POST /v1/features/online), health probes (/healthz, /readyz) and the API
    description (/openapi.json, /docs)."""
    from modelyard.serving.options import ENV, ServeOptions

    uvicorn = _uvicorn()
    check_port(host, port)  # before anything is loaded or announced
    level = log_level.value
    options = ServeOptions.parse(
        list(models or []), list(canary or []), list(shadow or []),
        poll_interval=poll_interval, listen=listen, prefer_onnx=onnx,
        batching=None if batching is Batching.auto else batching is Batching.on,
        address=advertised(host, port))
    if workers == 1:
        from modelyard.server.app import create_app

        with open_yard(uri) as yard:
            server = _load(options, yard)
            app = create_app(yard, models=server)
            _announce(yard.settings.project_name, yard.store_uri, host, port, workers, server)
            uvicorn.run(app, host=host, port=port, log_level=level)
        return
    # Each worker process opens the project itself: check it opens (and the models load)
    # first, so a mistake is one clear error rather than one per worker. The models are
    # loaded in a short-lived process, so that this one, which only watches the workers,
    # holds none of them.
    with open_yard(uri) as yard:
        project, store = yard.settings.project_name, yard.store_uri
    lines = check_models(options, uri) if options.models else []
    _announce(project, store, host, port, workers, lines=lines)
    if uri is not None:
        os.environ["MODELYARD_URI"] = uri
    os.environ[ENV] = options.to_env()
    with tempfile.TemporaryDirectory(prefix="modelyard-metrics-") as metrics_dir:
        if models:  # the workers' metrics, gathered by whichever worker is scraped
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        uvicorn.run(FACTORY, factory=True, host=host, port=port, workers=workers,
                    log_level=level)


def advertised(host: str, port: int) -> str:
    """The address the replica list shows for this server: the machine's name when it
    listens on every interface."""
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def check_port(host: str, port: int) -> None:
    """Refuse a port that cannot be listened on (taken, privileged, an address not of this
    machine), by binding it as uvicorn will, then letting it go."""
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        _bind(host, port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            free = _free_port(host, port)
            hint = f" (e.g. --port {free})" if free is not None else ""
            raise InvalidInputError(
                f"cannot serve on {shown}: the address is already in use; stop what listens "
                f"there, or choose another port with --port{hint}", field="port",
                host=host, port=port) from None
        if exc.errno == errno.EACCES:
            raise InvalidInputError(
                f"cannot serve on {shown}: permission denied (ports below 1024 need "
                "privileges); choose another port with --port", field="port", host=host,
                port=port) from None
        reason = exc.strerror or str(exc)
        raise InvalidInputError(
            f"cannot serve on {shown}: {reason}; check --host (127.0.0.1: this machine only, "
            "0.0.0.0: every interface) and --port", field="host", host=host,
            port=port) from None


def _bind(host: str, port: int) -> None:
    """Bind (and release) the address the way uvicorn binds it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except socket.gaierror as exc:
            raise OSError(errno.EADDRNOTAVAIL, f"unknown host ({exc.strerror})") from None


def _free_port(host: str, port: int, tries: int = 20) -> int | None:
    """The first port after ``port`` that can be listened on, if one of the next few is."""
    for candidate in range(port + 1, min(port + 1 + tries, 65536)):
        try:
            _bind(host, candidate)
        except OSError:
            continue
        return candidate
    return None


def _load(options: ServeOptions, yard: Yard) -> ModelServer | None:
    """The models of ``options``, loaded (None when none is served)."""
    if not options.models:
        return None
    server = options.server(yard)
    with console.status("Loading models..."):
        server.load_all()
    return server


def check_models(options: ServeOptions, uri: str | None) -> list[str]:
    """Load the models of ``options`` in a separate, short-lived process (the way each
    worker will) and return the lines announcing them; raises the error that process met.
    Nothing is loaded into this process."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from modelyard.errors import error_from_dict

    context = multiprocessing.get_context("spawn")  # a fresh interpreter, nothing inherited
    with console.status("Loading models..."), ProcessPoolExecutor(
            1, mp_context=context) as pool:
        ok, outcome = pool.submit(_check_in_child, options.to_env(), uri).result()
    if not ok:
        raise error_from_dict(outcome)
    lines: list[str] = outcome
    return lines


def _check_in_child(options_json: str, uri: str | None) -> tuple[bool, Any]:
    """In the checking process: (True, the announcement's lines) once every model loaded,
    else (False, the error as a dict)."""
    import json

    from modelyard.errors import ModelyardError
    from modelyard.serving.options import ServeOptions

    data = json.loads(options_json)
    data["models"] = tuple(data.get("models", ()))
    try:
        with open_yard(uri) as yard:
            server = ServeOptions(**data).server(yard)
            try:
                server.load_all()
                return True, _model_lines(server)
            finally:
                server.close()
    except ModelyardError as exc:
        return False, exc.to_dict()
    except Exception as exc:  # reported as one error, never a traceback from the child
        return False, ModelyardError(f"the models could not be loaded: "
                                     f"{type(exc).__name__}: {exc}").to_dict()


def _model_lines(server: ModelServer) -> list[str]:
    lines = []
    for deployment in server.deployments.values():
        for slot in deployment.slots():
            current = slot.current
            what = (f"{escape(str(slot.ref))} -> version {current.version} "
                    f"({current.loaded.runtime})" if current is not None else "")
            share = (f", {deployment.canary_share:g}% of requests"
                     + (" (its shadow trial's)" if deployment.share_from_trial else "")
                     if slot.role == "canary" else "")
            lines.append(f"  {slot.role:<8} {what}{share}")
    return lines


def _announce(project: str | None, store: str, host: str, port: int, workers: int,
              server: ModelServer | None = None, lines: list[str] | None = None) -> None:
    shown = f"[{host}]" if ":" in host else host
    models = lines if lines is not None else (
        _model_lines(server) if server is not None else [])
    lines = [f"Serving project [bold]{escape(project or '(none)')}[/] "
             f"(metadata: {escape(hide_password(store))}) on http://{escape(shown)}:{port} "
             f"with {workers} worker{'s' if workers != 1 else ''}"]
    if models:
        lines.extend(models)
        lines.append("  POST /v1/models/NAME/predict   predictions (instances or entities)")
        lines.append("  POST /v2/models/NAME/infer     the Open Inference Protocol")
    lines.append("  POST /v1/features/online       feature values of entities")
    lines.append("  GET  /docs                     the API, described")
    say("\n".join(lines))
