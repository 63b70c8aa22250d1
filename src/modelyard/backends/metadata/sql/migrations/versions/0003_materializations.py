"""Online feature store: the record of every materialization and push.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "materializations",
        sa.Column("materialization_id", sa.String(32), primary_key=True),
        sa.Column("group_name", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("store", sa.String(512), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("at_us", sa.BigInteger, nullable=False),
        sa.Column("snapshot_us", sa.BigInteger, nullable=False),
        sa.Column("since_us", sa.BigInteger, nullable=True),
        sa.Column("entities", sa.BigInteger, nullable=False),
        sa.Column("rows_written", sa.BigInteger, nullable=False),
        sa.Column("chunks_total", sa.Integer, nullable=False),
        sa.Column("chunks_done", sa.Integer, nullable=False),
        sa.Column("resume_after", sa.Text, nullable=True),
        sa.Column("max_event_us", sa.BigInteger, nullable=True),
        sa.Column("layout", sa.Text, nullable=False),
        sa.Column("started_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("finished_at", sa.BigInteger, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_index("ix_materializations_group", "materializations",
                    ["group_name", "version", "store", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_materializations_group", "materializations")
    op.drop_table("materializations")
