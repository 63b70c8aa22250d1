"""Offline engines: point-in-time-correct training sets computed from feature history.

An engine receives table references (or Arrow tables) and plain specs
(:mod:`modelyard.backends.offline.engine`) and knows nothing of feature definitions or the
registry. DuckDB is the embedded engine (:mod:`modelyard.backends.offline.duckdb_engine`);
Spark, over Spark Connect, the scale-out one (:mod:`modelyard.backends.offline.spark_engine`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelyard.errors import ConfigurationError

if TYPE_CHECKING:
    from modelyard.backends.offline.engine import OfflineEngine

__all__ = ["engine_from_setting"]


def engine_from_setting(engine: str) -> OfflineEngine:
    """The engine the ``engine`` setting names: ``duckdb`` or ``sc://host:port``."""
    if engine == "duckdb":
        from modelyard.backends.offline.duckdb_engine import DuckDBEngine

        return DuckDBEngine()
    if engine.startswith("sc://"):
        from modelyard.backends.offline.spark_engine import SparkEngine

        return SparkEngine(engine)
    raise ConfigurationError(
        f"engine must be 'duckdb' or a Spark Connect address sc://host:15002, got {engine!r}",
        field="engine")
