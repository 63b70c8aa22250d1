"""Blob references read from the SQL metadata store: one query per referring column.

``COLUMNS`` are columns holding one digest; ``DOCUMENTS`` are JSON columns searched for every
64-hex-digit string they hold (so a digest a later version adds to a spec is kept without a
change here). A test holds every ``*sha256`` column of ``tables.py`` to one of the two lists.
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from modelyard.backends.metadata.references import BlobReferences
from modelyard.backends.metadata.sql import tables as t
from modelyard.backends.metadata.sql.engine import read_connection, translate_errors

__all__ = ["COLUMNS", "DOCUMENTS", "SqlBlobReferences"]

COLUMNS: tuple[tuple[sa.Column[str], str], ...] = (
    (t.artifacts.c.sha256, "run artifact"),
    (t.model_versions.c.artifact_sha256, "model archive"),
    (t.model_versions.c.onnx_sha256, "ONNX twin"),
    (t.monitor_references.c.profile_sha256, "reference profile"),
)
DOCUMENTS: tuple[tuple[sa.Column[str], str], ...] = (
    (t.model_versions.c.spec, "model spec"),  # background, reference profile, spine
    (t.model_evaluations.c.plots, "evaluation plot"),
    (t.training_sets.c.spec, "training set"),
)
_DIGEST = re.compile(r'"([0-9a-f]{64})"')


class SqlBlobReferences(BlobReferences):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @translate_errors
    def referenced_blobs(self) -> dict[str, str]:
        found: dict[str, str] = {}
        with read_connection(self._engine) as conn:
            names = set(sa.inspect(conn).get_table_names())
            for column, kind in COLUMNS:
                if column.table.name not in names:  # an older schema: nothing to refer
                    continue
                for (value,) in conn.execute(sa.select(column).where(column.is_not(None))
                                             .distinct()):
                    found.setdefault(str(value), kind)
            for column, kind in DOCUMENTS:
                if column.table.name not in names:
                    continue
                for (text,) in conn.execute(sa.select(column)):
                    for digest in _DIGEST.findall(text or ""):
                        found.setdefault(digest, kind)
        return found
