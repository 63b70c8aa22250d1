"""Pipelines: versioned definitions, their schedules, and the queue of runs with leases.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pipeline_definitions",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "pipeline_schedules",
        sa.Column("pipeline", sa.String(128), primary_key=True),
        sa.Column("cron", sa.String(128), nullable=True),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("declared", sa.Text, nullable=False),
        sa.Column("cursor_ms", sa.BigInteger, nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "pipeline_runs",
        sa.Column("run_id", sa.String(32), primary_key=True),
        sa.Column("pipeline", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("trigger_detail", sa.Text, nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("dedupe_key", sa.String(255), nullable=True, unique=True),
        sa.Column("queued_at_ms", sa.BigInteger, nullable=False),
        sa.Column("run_at_ms", sa.BigInteger, nullable=False),
        sa.Column("started_at_ms", sa.BigInteger, nullable=True),
        sa.Column("ended_at_ms", sa.BigInteger, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("worker", sa.String(128), nullable=True),
        sa.Column("lease_expires_ms", sa.BigInteger, nullable=True),
        sa.Column("result", sa.Text, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("logs", sa.Text, nullable=False),
        sa.Column("steps", sa.Text, nullable=False),
    )
    op.create_index("ix_pipeline_runs_status_queued", "pipeline_runs",
                    ["status", "queued_at_ms"])
    op.create_index("ix_pipeline_runs_pipeline_queued", "pipeline_runs",
                    ["pipeline", "queued_at_ms"])


def downgrade() -> None:
    op.drop_index("ix_pipeline_runs_pipeline_queued", "pipeline_runs")
    op.drop_index("ix_pipeline_runs_status_queued", "pipeline_runs")
    op.drop_table("pipeline_runs")
    op.drop_table("pipeline_schedules")
    op.drop_table("pipeline_definitions")
