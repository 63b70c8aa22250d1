"""A Spark Connect server for the tests: Sail (``pysail``), in this process, on a free port of
127.0.0.1. ``MODELYARD_TEST_SPARK=sc://host:port`` points the tests at another server (a Spark
3.5+/4 cluster with Delta Lake) instead."""

from __future__ import annotations

import os
from typing import Any


def start() -> tuple[str, Any]:
    """The server's address and a handle to stop it with (None when it runs elsewhere)."""
    remote = os.environ.get("MODELYARD_TEST_SPARK")
    if remote:
        return remote, None
    from pysail.spark import SparkConnectServer

    server = SparkConnectServer(ip="127.0.0.1", port=0)
    server.start(background=True)
    _, port = server.listening_address
    return f"sc://127.0.0.1:{port}", server


def stop(server: Any) -> None:
    if server is not None:
        server.stop()
