"""Serving replicas: live model servers and the versions they serve (their heartbeats).

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "serving_replicas",
        sa.Column("replica_id", sa.String(32), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("address", sa.String(512), nullable=True),
        sa.Column("started_at_ms", sa.BigInteger, nullable=False),
        sa.Column("heartbeat_at_ms", sa.BigInteger, nullable=False),
        sa.Column("serving", sa.Text, nullable=False),
    )
    op.create_index("ix_serving_replicas_heartbeat", "serving_replicas", ["heartbeat_at_ms"])


def downgrade() -> None:
    op.drop_index("ix_serving_replicas_heartbeat", "serving_replicas")
    op.drop_table("serving_replicas")
