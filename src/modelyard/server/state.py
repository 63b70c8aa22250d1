"""What every endpoint of the server shares: the project's Yard, opened services, the routes.

A route module (``server/features.py``, ``server/health.py``, ...) contributes one
:class:`Endpoints`: a function that builds its routes over the :class:`ServerState`, and the
OpenAPI fragments (path items and component schemas) that describe them. ``create_app``
collects them, so a new group of endpoints is one new module and one entry in its list.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from modelyard.errors import ModelyardError

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.routing import BaseRoute

    from modelyard.client import Yard
    from modelyard.features.online import OnlineService
    from modelyard.serving.metrics import ServingMetrics
    from modelyard.serving.service import ModelServer

__all__ = ["UNKNOWN", "Endpoints", "ServerState"]

UNKNOWN = "unknown"  # the metrics' model label for every name not served here

T = TypeVar("T")


@dataclass(frozen=True)
class Endpoints:
    """One group of endpoints: its routes and its part of the OpenAPI document."""

    name: str
    routes: Callable[[ServerState], list[BaseRoute]]
    paths: Mapping[str, Any] = field(default_factory=dict)  # OpenAPI path items
    schemas: Mapping[str, Any] = field(default_factory=dict)  # OpenAPI component schemas
    tag: str = ""  # the description of the tag the paths are listed under


class ServerState:
    """The Yard the server answers from, with its services opened once and shared by
    every request, and the threads that run the blocking work of requests."""

    def __init__(self, yard: Yard, threads: int | None = None, *,
                 models: ModelServer | None = None,
                 metrics: ServingMetrics | None = None,
                 authenticate: Callable[[Request], Awaitable[Any]] | None = None) -> None:
        self.yard = yard
        # who calls the metadata API (None: anyone); see modelyard.server.rpc
        self.authenticate = authenticate
        self.models = models
        self.metrics = metrics
        self.openapi: dict[str, Any] = {}
        self._online: OnlineService | None = None
        self._lock = threading.Lock()
        # A pool of its own, not Starlette's (anyio's) threadpool: handing work to it costs
        # a fraction, which shows at thousands of small requests per second. Its size
        # (default min(32, CPUs + 4)) bounds the store connections too: one per thread.
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="modelyard-server")

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking ``fn(*args)`` in a worker thread; the event loop goes on meanwhile."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        """Stop the worker threads (the Yard is closed by whoever opened it)."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    def model_server(self) -> ModelServer:
        """The served models; NotFoundError (404) on a server started without any."""
        if self.models is None:
            from modelyard.errors import NotFoundError

            raise NotFoundError("this server serves no models: start it with "
                                "modelyard serve MODEL@ALIAS")
        return self.models

    def count(self, model: str, endpoint: str, status: int, began: float) -> None:
        """Record one answered request in the metrics (when the server keeps them)."""
        metrics = self.metrics
        if metrics is None:
            return
        outcome = "ok" if status < 400 else "client_error" if status < 500 else "error"
        metrics.observe_request(self.model_label(model), endpoint, outcome,
                                time.perf_counter() - began)

    def model_label(self, model: str) -> str:
        """``model`` when it is served here, else ``unknown``: a client naming models that
        do not exist adds no series to the metrics."""
        models = self.models
        return model if models is not None and model in models.deployments else UNKNOWN

    def failed(self, model: str, endpoint: str, request_id: str, error: BaseException,
               began: float, status: int | None = None) -> None:
        """Record one request answered with an error (``status``, else ``error``'s, 500 for
        anything but a ModelyardError): in the metrics, and in the prediction log when
        ``model`` is served here."""
        if status is None:
            status = error.http_status if isinstance(error, ModelyardError) else 500
        self.count(model, endpoint, status, began)
        if self.models is not None:
            self.models.record_failure(model, request_id, status, error, endpoint,
                                       time.perf_counter() - began)

    def online(self) -> OnlineService:
        """The online feature service, opened on first use (once, whatever the threads)."""
        online = self._online
        if online is None:
            with self._lock:
                if self._online is None:
                    self._online = self.yard.features.online
                online = self._online
        return online

    def readiness(self) -> dict[str, str | None]:
        """Per store, None when it answers, else what is wrong (blocking: call it in a
        thread)."""
        checks = {"metadata_store": _problem(self._ping_metadata),
                  "online_store": _problem(lambda: self.online().store.ping())}
        if self.models is not None:
            checks["models"] = self.models.ready()
        return checks

    def _ping_metadata(self) -> None:
        self.yard.tracking.store.ping()


def _problem(check: Callable[[], object]) -> str | None:
    try:
        check()
    except ModelyardError as exc:
        return exc.message
    except Exception as exc:  # a readiness probe reports, never raises
        return f"{type(exc).__name__}: {exc}"
    return None
