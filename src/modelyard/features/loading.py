"""Reading a source's rows from where it lives: Parquet/CSV files or folders, a SQL query."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from modelyard.errors import InvalidInputError, StorageError
from modelyard.features.definitions import Source

if TYPE_CHECKING:
    import pyarrow as pa


def load_source(source: Source, base: Path) -> pa.Table:
    """All rows the source holds now (files relative to ``base``, the project folder)."""
    if source.kind_of_source == "frame":
        raise InvalidInputError(
            f"source {source.name!r} is fed by pushing frames: yard.features.ingest("
            f"{source.name!r}, frame)", field="data")
    if source.kind_of_source == "sql":
        return _load_sql(source)
    import pyarrow.dataset as ds

    path = Path(source.location)
    path = path if path.is_absolute() else base / path
    if not path.exists():
        raise InvalidInputError(f"source {source.name!r}: no file or folder at {path}",
                                field="location")
    try:
        return ds.dataset(str(path), format=source.kind_of_source).to_table()
    except (OSError, ValueError) as exc:
        raise InvalidInputError(
            f"source {source.name!r}: cannot read {path} as {source.kind_of_source}: {exc}",
            field="location") from exc


def _load_sql(source: Source) -> pa.Table:
    import pandas as pd
    import pyarrow as pa
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(source.uri)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise InvalidInputError(f"source {source.name!r}: bad database URI: {exc}",
                                field="uri") from exc
    try:
        with engine.connect() as conn:
            frame = pd.read_sql_query(sa.text(source.location), conn)
    except sa.exc.SQLAlchemyError as exc:
        raise StorageError(
            f"source {source.name!r}: the query failed: {getattr(exc, 'orig', exc)}") from exc
    finally:
        engine.dispose()
    return pa.Table.from_pandas(frame, preserve_index=False)
