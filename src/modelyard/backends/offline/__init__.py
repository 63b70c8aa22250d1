"""Offline engines: point-in-time-correct training sets computed from feature history.

An engine receives Arrow tables and plain specs (:mod:`modelyard.backends.offline.engine`) and
knows nothing of feature definitions or the registry. DuckDB is the embedded engine
(:mod:`modelyard.backends.offline.duckdb_engine`).
"""
