"""Prediction log: every predicted row, and the ground truth attached to it later.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "predictions",
        sa.Column("model", sa.String(128), primary_key=True),
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("row", sa.Integer, primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("role", sa.String(16), primary_key=True),
        sa.Column("at_us", sa.BigInteger, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("entity", sa.Text, nullable=True),
        sa.Column("features", sa.Text, nullable=False),
        sa.Column("output", sa.Text, nullable=False),
    )
    op.create_index("ix_predictions_model_at", "predictions", ["model", "at_us"])
    op.create_index("ix_predictions_request", "predictions", ["request_id"])
    op.create_index("ix_predictions_entity", "predictions", ["model", "entity", "at_us"])
    op.create_table(
        "prediction_labels",
        sa.Column("model", sa.String(128), primary_key=True),
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("row", sa.Integer, primary_key=True),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("labelled_at_us", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("prediction_labels")
    op.drop_index("ix_predictions_entity", "predictions")
    op.drop_index("ix_predictions_request", "predictions")
    op.drop_index("ix_predictions_model_at", "predictions")
    op.drop_table("predictions")
