"""SQLAlchemy implementation of the metadata store: SQLite (WAL) and PostgreSQL."""
