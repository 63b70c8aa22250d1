"""Prediction log stores, chosen by URI like the online stores.

The interface and records live in :mod:`modelyard.backends.metadata.predictions`. Two stores
implement it:

- the metadata database's ``predictions`` and ``prediction_labels`` tables
  (:mod:`modelyard.backends.metadata.sql.prediction_store`, SQLite or PostgreSQL, created by
  migration 0005): an empty URI means the project's own metadata store, and a
  ``sqlite:///path.db`` or ``postgresql://...`` URI another database;
- a folder of Parquet files (:mod:`modelyard.backends.predictions.parquet`): ``file:///path``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelyard.errors import ConfigurationError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from modelyard.backends.metadata.predictions import PredictionStore

__all__ = ["prediction_store_from_uri"]


def prediction_store_from_uri(uri: str, *, metadata_engine: Engine | None = None
                              ) -> PredictionStore:
    """The store for ``uri``: empty for the metadata store behind ``metadata_engine``,
    ``sqlite:///path.db`` or ``postgresql://...`` for another database (migrated to the
    current schema on open), ``file:///path`` for a folder of Parquet files."""
    if not uri:
        if metadata_engine is None:
            raise ConfigurationError(
                "an empty prediction store URI means the metadata store, but none was given")
        from modelyard.backends.metadata.sql.prediction_store import SqlPredictionStore

        return SqlPredictionStore(metadata_engine, migrate=False)
    if uri.startswith("file://"):
        from pathlib import Path

        from modelyard.backends.predictions.parquet import ParquetPredictionStore

        return ParquetPredictionStore(Path(uri[len("file://"):]))
    if uri.startswith(("sqlite:", "postgresql:", "postgresql+")):
        from modelyard.backends.metadata.sql.engine import make_engine
        from modelyard.backends.metadata.sql.prediction_store import SqlPredictionStore

        engine = make_engine(uri)
        try:
            return SqlPredictionStore(engine, migrate=True, owns_engine=True)
        except BaseException:
            engine.dispose()
            raise
    raise ConfigurationError(
        f"unsupported prediction store URI {uri!r}: leave it empty for the metadata store, "
        "or use sqlite:///path.db, postgresql://user@host/db or file:///folder (Parquet)")
