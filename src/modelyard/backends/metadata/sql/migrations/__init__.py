"""Alembic migrations of the metadata store; SCHEMA_REVISIONS lists them oldest first."""

# Kept in step with versions/ by tests/backends/test_migrations.py, so the version check at
# connect time needs no Alembic import.
SCHEMA_REVISIONS: tuple[str, ...] = ("0001", "0002", "0003", "0004", "0005", "0006", "0007",
                                        "0008", "0009", "0010", "0011", "0012", "0013", "0014",
                                        "0015")
HEAD = SCHEMA_REVISIONS[-1]
VERSION_TABLE = "modelyard_schema_version"
