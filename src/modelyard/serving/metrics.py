"""Prometheus metrics of the model server (the ``prometheus_client`` package).

One :class:`ServingMetrics` per server. With several worker processes, ``modelyard serve``
sets ``PROMETHEUS_MULTIPROC_DIR`` and every worker writes its samples there, so a scrape of
``/metrics`` on any worker reports the whole server.

Series stay bounded whatever clients send: a ``model`` label is a served model's name or
``unknown`` (every request for a name not served is counted there), an ``endpoint`` label one
of the server's own endpoints. The process' CPU, memory, open files and garbage collection come
from prometheus_client's process, platform and GC collectors; with several workers the
server's own series are summed over the workers while the process series are those of the
worker that answered the scrape, and ``modelyard_worker_*`` gauges give each live worker's
memory, CPU time and open files by ``pid``.
"""

from __future__ import annotations

import os
import time
from typing import Any

__all__ = ["ServingMetrics"]

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                   5.0, 10.0)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096, 16384, 100000)


class ServingMetrics:
    """Requests, latency, errors, rows, batch sizes and the versions being served."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self._sampled = -1.0
        # Each label set's children, looked up once: ``labels()`` costs more than the
        # update itself. Keys are served models, versions, roles and the server's own
        # endpoints and outcomes, so these stay as small as the series do.
        self._answer_meters: dict[tuple[str, int, str], tuple[Any, Any, Any]] = {}
        self._request_meters: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        kw: dict[str, Any] = {"registry": None if self.multiprocess else self.registry}
        self.requests = Counter("modelyard_requests", "Requests answered, by outcome "
                                "(ok, client_error, error).", ["model", "endpoint", "outcome"],
                                **kw)
        self.latency = Histogram("modelyard_request_seconds", "Time to answer a request, "
                                 "errors included.", ["model", "endpoint"],
                                 buckets=LATENCY_BUCKETS, **kw)
        self.answer_seconds = Histogram(
            "modelyard_answer_seconds", "Time to answer a predict request, from its checks "
            "to its predictions, by the version and role that answered.",
            ["model", "version", "role"], buckets=LATENCY_BUCKETS, **kw)
        self.rows = Counter("modelyard_predicted_rows", "Rows predicted.",
                            ["model", "version", "role"], **kw)
        self.request_rows = Histogram("modelyard_request_rows", "Rows per request.",
                                      ["model"], buckets=SIZE_BUCKETS, **kw)
        self.batches = Histogram("modelyard_batch_requests",
                                 "Requests predicted together in one model call.",
                                 ["model", "version"], buckets=SIZE_BUCKETS, **kw)
        gauge_mode: dict[str, Any] = (
            {"multiprocess_mode": "mostrecent"} if self.multiprocess else {})
        self.version = Gauge("modelyard_model_version", "The version each role serves.",
                             ["model", "role"], **kw, **gauge_mode)
        self.swaps = Counter("modelyard_model_swaps", "Versions swapped in while serving.",
                             ["model", "role"], **kw)
        self.shadow_dropped = Counter(
            "modelyard_shadow_dropped", "Shadow predictions skipped because the shadow "
            "queue was full.", ["model"], **kw)
        live: dict[str, Any] = {"multiprocess_mode": "liveall"} if self.multiprocess else {}
        self._worker = {
            "resident_memory_bytes": Gauge("modelyard_worker_resident_memory_bytes",
                                           "Resident memory of each worker process.", **kw,
                                           **live),
            "cpu_seconds_total": Gauge("modelyard_worker_cpu_seconds",
                                       "CPU time (user and system) of each worker process.",
                                       **kw, **live),
            "open_fds": Gauge("modelyard_worker_open_fds",
                              "Open file descriptors of each worker process.", **kw, **live),
        }
        if self.multiprocess:
            from prometheus_client import multiprocess

            self.registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(self.registry)  # type: ignore[no-untyped-call]
        from prometheus_client import GCCollector, PlatformCollector, ProcessCollector

        self._process = ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)

    def observe_answer(self, model: str, version: int, role: str, rows: int,
                       seconds: float) -> None:
        """One predict request answered by ``model``'s ``version`` in ``role``."""
        key = (model, version, role)
        meters = self._answer_meters.get(key)
        if meters is None:
            meters = self._answer_meters[key] = (
                self.rows.labels(model, str(version), role),
                self.request_rows.labels(model),
                self.answer_seconds.labels(model, str(version), role))
        predicted, per_request, timed = meters
        predicted.inc(rows)
        per_request.observe(rows)
        timed.observe(seconds)

    def observe_request(self, model: str, endpoint: str, outcome: str,
                        seconds: float) -> None:
        """One request answered (``model`` a served model's name or ``unknown``)."""
        key = (model, endpoint, outcome)
        meters = self._request_meters.get(key)
        if meters is None:
            meters = self._request_meters[key] = (self.latency.labels(model, endpoint),
                                                  self.requests.labels(model, endpoint,
                                                                       outcome))
        timed, counted = meters
        timed.observe(seconds)
        counted.inc()
        self.sample_worker()

    def exposition(self) -> tuple[bytes, str]:
        """The metrics in Prometheus' text format, and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        self.sample_worker()
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def close(self) -> None:
        """This worker is stopping: its ``modelyard_worker_*`` series leave the scrape."""
        if self.multiprocess:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

    def sample_worker(self) -> None:
        """Set this process' ``modelyard_worker_*`` gauges from the process collector (a
        worker samples itself when it answers a scrape and when it records a request,
        at most once a second)."""
        now = time.monotonic()
        if now - self._sampled < 1.0:
            return
        self._sampled = now
        try:
            for family in self._process.collect():
                for sample in family.samples:
                    gauge = self._worker.get(sample.name.removeprefix("process_"))
                    if gauge is not None:
                        gauge.set(sample.value)
        except Exception:  # a platform without /proc: the gauges stay unset
            pass
