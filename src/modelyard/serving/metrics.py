"""Prometheus metrics of the model server (the ``prometheus_client`` package).

One :class:`ServingMetrics` per server. With several worker processes, ``modelyard serve``
sets ``PROMETHEUS_MULTIPROC_DIR`` and every worker writes its samples there, so a scrape of
``/metrics`` on any worker reports the whole server.
"""

from __future__ import annotations

import os
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
        self.registry = CollectorRegistry(auto_describe=True)
        kw: dict[str, Any] = {"registry": None if self.multiprocess else self.registry}
        self.requests = Counter("modelyard_requests", "Requests answered, by outcome "
                                "(ok, client_error, error).", ["model", "endpoint", "outcome"],
                                **kw)
        self.latency = Histogram("modelyard_request_seconds", "Time to answer a request.",
                                 ["model", "endpoint"], buckets=LATENCY_BUCKETS, **kw)
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
        if self.multiprocess:
            from prometheus_client import multiprocess

            self.registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(self.registry)  # type: ignore[no-untyped-call]

    def exposition(self) -> tuple[bytes, str]:
        """The metrics in Prometheus' text format, and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
