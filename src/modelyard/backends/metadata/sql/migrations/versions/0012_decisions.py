"""Decisions: what became of each pipeline run's candidate model version.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pipeline_decisions",
        sa.Column("decision_id", sa.String(32), primary_key=True),
        sa.Column("run_id", sa.String(32), nullable=False, unique=True),
        sa.Column("pipeline", sa.String(128), nullable=False),
        sa.Column("pipeline_version", sa.Integer, nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("champion", sa.Integer, nullable=True),
        sa.Column("policy", sa.String(16), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("trigger_detail", sa.Text, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("candidate_metrics", sa.Text, nullable=False),
        sa.Column("champion_metrics", sa.Text, nullable=True),
        sa.Column("gate_report", sa.Text, nullable=False),
        sa.Column("passed", sa.Integer, nullable=False),
        sa.Column("decided_by", sa.String(128), nullable=True),
        sa.Column("decided_at_ms", sa.BigInteger, nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_pipeline_decisions_model_version", "pipeline_decisions",
                    ["model", "version"])


def downgrade() -> None:
    op.drop_index("ix_pipeline_decisions_model_version", "pipeline_decisions")
    op.drop_table("pipeline_decisions")
