"""Schema migrations of the metadata store, on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

import modelyard
from modelyard.backends.metadata.sql import migrations
from modelyard.backends.metadata.sql.engine import make_engine
from modelyard.backends.metadata.sql.migrations import HEAD, SCHEMA_REVISIONS, VERSION_TABLE
from modelyard.backends.metadata.sql.tables import metadata
from modelyard.backends.metadata.sql.tracking_store import SqlTrackingStore
from modelyard.errors import SchemaVersionError, StorageError

FUTURE = "9999_from_the_future"


@pytest.fixture
def engine(store_uri: str) -> Iterator[sa.Engine]:
    eng = make_engine(store_uri)
    yield eng
    eng.dispose()


def _version(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}"))]


def _snapshot(engine: sa.Engine) -> dict[str, Any]:
    """Every table with its columns and its rows."""
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        found: dict[str, Any] = {}
        for name in sorted(inspector.get_table_names()):
            cols = [c["name"] for c in inspector.get_columns(name)]
            rows = conn.execute(sa.text(f'SELECT * FROM "{name}"')).all()
            found[name] = (cols, sorted(map(tuple, rows), key=repr))
        return found


def test_script_directory_and_schema_revisions_agree() -> None:
    scripts = ScriptDirectory(str(Path(migrations.__file__).parent))
    walked = [s.revision for s in scripts.walk_revisions()]  # newest first
    assert tuple(reversed(walked)) == SCHEMA_REVISIONS
    assert scripts.get_heads() == [HEAD]
    assert len(set(SCHEMA_REVISIONS)) == len(SCHEMA_REVISIONS)


def test_a_fresh_database_is_migrated_to_head_once(
    engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="alembic.runtime.migration"):
        SqlTrackingStore(engine)
        first = [r.getMessage() for r in caplog.records if "Running upgrade" in r.getMessage()]
        caplog.clear()
        SqlTrackingStore(engine)  # already at HEAD: nothing to do
        again = [r.getMessage() for r in caplog.records if "Running upgrade" in r.getMessage()]
    assert len(first) == len(SCHEMA_REVISIONS)
    assert again == []
    assert _version(engine) == [HEAD]
    with engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
    assert tables == {*metadata.tables, VERSION_TABLE}


def test_migrated_schema_equals_the_table_definitions(engine: sa.Engine) -> None:
    SqlTrackingStore(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"version_table": VERSION_TABLE, "compare_type": True}
        )
        diff = compare_metadata(context, metadata)
    assert diff == []


def test_a_newer_schema_is_refused_and_left_untouched(
    store_uri: str, project: Path, engine: sa.Engine
) -> None:
    store = SqlTrackingStore(engine)
    store.create_experiment("kept", "made by this version")
    with engine.begin() as conn:  # what a newer modelyard would leave behind
        conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = :v"), {"v": FUTURE})
        conn.execute(sa.text("CREATE TABLE future_things (id INTEGER PRIMARY KEY)"))
        conn.execute(sa.text("INSERT INTO future_things (id) VALUES (7)"))
    before = _snapshot(engine)

    with pytest.raises(SchemaVersionError) as caught:
        SqlTrackingStore(engine)
    message = str(caught.value)
    assert FUTURE in message and HEAD in message
    assert "upgrade modelyard" in message
    assert caught.value.to_dict()["details"]["revision"] == FUTURE
    assert isinstance(caught.value, StorageError)

    with pytest.raises(SchemaVersionError, match=FUTURE):
        modelyard.connect(store_uri)  # the public way in says the same
    assert _snapshot(engine) == before
    assert _version(engine) == [FUTURE]


def test_an_unknown_revision_without_tables_is_refused_too(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(
            f"CREATE TABLE {VERSION_TABLE} (version_num VARCHAR(32) NOT NULL PRIMARY KEY)"))
        conn.execute(sa.text(f"INSERT INTO {VERSION_TABLE} VALUES (:v)"), {"v": FUTURE})
    before = _snapshot(engine)
    with pytest.raises(SchemaVersionError, match="does not know"):
        SqlTrackingStore(engine)
    assert _snapshot(engine) == before


def test_a_0005_database_gains_the_failures_table_and_keeps_its_predictions(
        engine: sa.Engine) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    with engine.begin() as conn:  # what modelyard with the 0005 schema left behind
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0005")
        conn.execute(sa.text(
            "INSERT INTO predictions (model, request_id, row, version, role, at_us, "
            "latency_ms, features, output) VALUES ('m', 'r1', 0, 1, 'primary', 5, 1.0, "
            "'{}', '{}')"))
    assert _version(engine) == ["0005"]
    SqlTrackingStore(engine)
    assert _version(engine) == [HEAD]
    with engine.connect() as conn:
        assert "prediction_failures" in sa.inspect(conn).get_table_names()
        assert conn.execute(sa.text("SELECT request_id FROM predictions")).scalars().all() \
            == ["r1"]


def test_a_0010_database_keeps_its_predictions_and_takes_a_null_latency(
        engine: sa.Engine) -> None:
    from alembic import command
    from alembic.config import Config

    from modelyard.backends.metadata.predictions import PredictionRecord
    from modelyard.backends.metadata.sql.prediction_store import SqlPredictionStore

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    with engine.begin() as conn:  # the 0010 schema: every latency required
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0010")
        conn.execute(sa.text(
            "INSERT INTO predictions (model, request_id, row, version, role, at_us, "
            "latency_ms, features, output) VALUES ('m', 'r1', 0, 1, 'primary', 5, 1.5, "
            "'{}', '{}')"))
    SqlTrackingStore(engine)
    assert _version(engine) == [HEAD]
    store = SqlPredictionStore(engine)
    store.write([PredictionRecord("batch", 0, "m", 1, "primary", 6, None, None, {}, {})])
    frame = store.read("m")
    assert frame["request_id"].tolist() == ["r1", "batch"]
    assert frame["latency_ms"].iloc[0] == 1.5 and np.isnan(frame["latency_ms"].iloc[1])
