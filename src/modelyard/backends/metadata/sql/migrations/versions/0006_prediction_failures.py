"""Prediction log: requests answered with an error (status, error class, field; no message).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "prediction_failures",
        sa.Column("model", sa.String(128), primary_key=True),
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("role", sa.String(16), nullable=True),
        sa.Column("at_us", sa.BigInteger, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("error", sa.String(128), nullable=False),
        sa.Column("endpoint", sa.String(32), nullable=False),
        sa.Column("field", sa.String(255), nullable=True),
    )
    op.create_index("ix_prediction_failures_model_at", "prediction_failures",
                    ["model", "at_us"])


def downgrade() -> None:
    op.drop_index("ix_prediction_failures_model_at", "prediction_failures")
    op.drop_table("prediction_failures")
