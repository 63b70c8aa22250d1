"""Feature store: versioned definitions, training sets, ingestion profiles, forget log.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

AutoId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "definitions",
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "training_sets",
        sa.Column("training_set_id", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("spec", sa.Text, nullable=False),
    )
    op.create_table(
        "ingestion_profiles",
        sa.Column("source", sa.String(128), primary_key=True),
        sa.Column("commit_id", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("profile", sa.Text, nullable=False),
    )
    op.create_table(
        "forget_log",
        sa.Column("id", AutoId, primary_key=True, autoincrement=True),
        sa.Column("entity", sa.String(128), nullable=False),
        sa.Column("keys", sa.Integer, nullable=False),
        sa.Column("rows_removed", sa.BigInteger, nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("details", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for name in ("forget_log", "ingestion_profiles", "training_sets", "definitions"):
        op.drop_table(name)
