"""Alembic environment: always called programmatically with a live connection."""

from alembic import context

from modelyard.backends.metadata.sql.migrations import VERSION_TABLE
from modelyard.backends.metadata.sql.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
