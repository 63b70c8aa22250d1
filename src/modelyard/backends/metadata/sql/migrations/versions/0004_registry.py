"""Model registry: models, versions, aliases and their history, evaluations, gate reports.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "registered_models",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("gates", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "model_versions",
        sa.Column("name", sa.String(128), sa.ForeignKey("registered_models.name"),
                  primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("flavor", sa.String(32), nullable=False),
        sa.Column("artifact_sha256", sa.String(64), nullable=False),
        sa.Column("artifact_size", sa.BigInteger, nullable=False),
        sa.Column("onnx_sha256", sa.String(64), nullable=True),
        sa.Column("run_id", sa.String(32), nullable=True),
        sa.Column("training_set_id", sa.String(64), nullable=True),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
    )
    op.create_table(
        "model_aliases",
        sa.Column("name", sa.String(128), sa.ForeignKey("registered_models.name"),
                  primary_key=True),
        sa.Column("alias", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "alias_history",
        sa.Column("id", _AUTO_ID, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("from_version", sa.Integer, nullable=True),
        sa.Column("to_version", sa.Integer, nullable=True),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("report_id", sa.String(32), nullable=True),
        sa.Column("at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_alias_history_model", "alias_history", ["name", "alias", "id"])
    op.create_table(
        "model_evaluations",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("dataset", sa.String(128), primary_key=True),
        sa.Column("evaluation", sa.Text, nullable=False),
        sa.Column("plots", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "gate_reports",
        sa.Column("report_id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("passed", sa.Integer, nullable=False),
        sa.Column("forced", sa.Integer, nullable=False),
        sa.Column("report", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_gate_reports_version", "gate_reports", ["name", "version", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_gate_reports_version", "gate_reports")
    op.drop_table("gate_reports")
    op.drop_table("model_evaluations")
    op.drop_index("ix_alias_history_model", "alias_history")
    op.drop_table("alias_history")
    op.drop_table("model_aliases")
    op.drop_table("model_versions")
    op.drop_table("registered_models")
