"""Prediction log: a null latency for rows scored in batch rather than served (a backfill),
so service health leaves them out of the latency percentiles.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.alter_column("latency_ms", existing_type=sa.Float, nullable=True)


def downgrade() -> None:
    # a row without a latency cannot be kept under the older schema's NOT NULL: it reads 0
    op.execute("UPDATE predictions SET latency_ms = 0 WHERE latency_ms IS NULL")
    with op.batch_alter_table("predictions") as batch:
        batch.alter_column("latency_ms", existing_type=sa.Float, nullable=False)
