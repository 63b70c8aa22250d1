"""The columns a feature group's expressions are bound to.

At ``plan``/``apply`` a group is bound to what can be known without reading its rows: the
source's declared schema; else the schema of its Parquet/CSV file (Parquet's footer, the first
block of a CSV: no full read); else the schema of the rows already ingested. A SQL or frame
source without a declared schema, a file not there yet, or a group with a Python transform
(whose output columns only running it tells) is bound at ingestion instead, against the batch
(through the transform) and the rows ingested before, before anything is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from modelyard.backends.offline.tables import COMMIT, INGESTED_AT, OfflineTableStore
from modelyard.features.definitions import FeatureGroup, Source
from modelyard.features.sql import SourceColumns

if TYPE_CHECKING:
    import pyarrow as pa

_SAMPLE_ROWS = 1_000  # rows of a batch a transform runs on to learn its output's columns


def plan_columns(group: FeatureGroup, base: Path, tables: OfflineTableStore
                 ) -> SourceColumns | None:
    """The columns a group is bound to when it is planned, or None when they are known only
    at ingestion."""
    if group.transform is not None:
        return None
    source = group.source
    if source.declared_schema:
        return declared_columns(source)
    if source.kind_of_source in ("parquet", "csv"):
        found = _file_schema(source, base)
        if found is not None:
            return SourceColumns(source.name, _with_system(_stored_types(found, source)),
                                 f"read from {source.location}")
    stored = _stored_schema(tables, source.name)
    if stored is not None:
        return SourceColumns(source.name, stored, "in the rows ingested so far")
    return None


def declared_columns(source: Source) -> SourceColumns:
    import pyarrow as pa

    from modelyard.features.validation import COLUMN_TYPES

    schema = pa.schema([(c, COLUMN_TYPES[t]) for c, t in source.declared_schema.items()])
    return SourceColumns(source.name, _with_system(schema), "as declared")


def batch_columns(group: FeatureGroup, batch: pa.Table, tables: OfflineTableStore
                  ) -> SourceColumns | None:
    """The columns a group's expressions see once ``batch`` is stored: the batch's and those
    of the rows ingested before, through the group's transform if it has one (run on the
    batch's first rows). None when the transform fails on them: it then fails, with its own
    error, where it runs on every row."""
    import pyarrow as pa

    from modelyard.features.training import apply_transform

    source = group.source
    stored = _stored_schema(tables, source.name)
    fields = list(stored) if stored is not None else []
    names = {f.name for f in fields}
    fields += [f for f in _with_system(batch.schema) if f.name not in names]
    schema = pa.schema(fields)
    if group.transform is None:
        origin = ("in this batch and the rows ingested before" if stored is not None
                  else "in this batch")
        return SourceColumns(source.name, schema, origin)
    sample = batch.slice(0, _SAMPLE_ROWS)
    rows = pa.table({f.name: (sample.column(f.name) if f.name in sample.column_names
                              else pa.nulls(sample.num_rows, f.type)) for f in schema})
    try:
        out = apply_transform(rows, group)
    except Exception:  # the user's code: its own error is reported where it runs in full
        return None
    return SourceColumns(source.name, out.schema,
                         f"after transform {group.transform.name!r}")


def _file_schema(source: Source, base: Path) -> pa.Schema | None:
    """The schema of a Parquet/CSV source's files, from their footer or first block; None
    when there are none yet or they cannot be read (ingestion then says why)."""
    import pyarrow.dataset as ds

    path = Path(source.location)
    path = path if path.is_absolute() else base / path
    if not path.exists():
        return None
    try:
        schema: pa.Schema = ds.dataset(str(path), format=source.kind_of_source).schema
    except (OSError, ValueError):
        return None
    return schema


def _stored_types(schema: pa.Schema, source: Source) -> pa.Schema:
    """The file's schema as ingestion stores it: the timestamp column as UTC timestamps."""
    import pyarrow as pa

    from modelyard.features.validation import UTC_TIMESTAMP

    fields = [pa.field(f.name, UTC_TIMESTAMP) if f.name == source.timestamp else f
              for f in schema]
    return pa.schema(fields)


def _stored_schema(tables: OfflineTableStore, name: str) -> pa.Schema | None:
    if not tables.exists(name):
        return None
    reader = tables.scan(name)
    try:
        schema: pa.Schema = reader.schema
    finally:
        reader.close()
    return schema


def _with_system(schema: pa.Schema) -> pa.Schema:
    """The schema with the columns every stored row carries (its ingestion time, commit)."""
    import pyarrow as pa

    from modelyard.features.validation import UTC_TIMESTAMP

    fields = list(schema)
    if INGESTED_AT not in schema.names:
        fields.append(pa.field(INGESTED_AT, UTC_TIMESTAMP))
    if COMMIT not in schema.names:
        fields.append(pa.field(COMMIT, pa.string()))
    return pa.schema(fields)
