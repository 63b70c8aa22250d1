"""Monitoring: stored checks with their alerts, alert rules, replacement reference profiles.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitor_results",
        sa.Column("result_id", sa.String(32), primary_key=True),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("start_us", sa.BigInteger, nullable=False),
        sa.Column("end_us", sa.BigInteger, nullable=False),
        sa.Column("checked_at_ms", sa.BigInteger, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("result", sa.Text, nullable=False),
    )
    op.create_index("ix_monitor_results_model_end", "monitor_results", ["model", "end_us"])
    op.create_table(
        "monitor_alerts",
        sa.Column("alert_id", sa.String(32), primary_key=True),
        sa.Column("result_id", sa.String(32), sa.ForeignKey("monitor_results.result_id"),
                  nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("rule", sa.Text, nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("fired_at_ms", sa.BigInteger, nullable=False),
        sa.Column("evidence", sa.Text, nullable=False),
        sa.Column("deliveries", sa.Text, nullable=False),
    )
    op.create_index("ix_monitor_alerts_model_fired", "monitor_alerts",
                    ["model", "fired_at_ms"])
    op.create_table(
        "monitor_rules",
        sa.Column("model", sa.String(128), primary_key=True),
        sa.Column("rules", sa.Text, nullable=False),
        sa.Column("notify", sa.Text, nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "monitor_references",
        sa.Column("model", sa.String(128), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("profile_sha256", sa.String(64), nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("monitor_references")
    op.drop_table("monitor_rules")
    op.drop_index("ix_monitor_alerts_model_fired", "monitor_alerts")
    op.drop_table("monitor_alerts")
    op.drop_index("ix_monitor_results_model_end", "monitor_results")
    op.drop_table("monitor_results")
