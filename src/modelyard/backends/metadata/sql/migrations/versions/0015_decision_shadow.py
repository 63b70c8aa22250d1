"""Decisions: the shadow (or canary) trial of a candidate under the ``shadow`` policy, with
its live comparison against the champion, kept as JSON beside the decision.

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pipeline_decisions") as batch:
        batch.add_column(sa.Column("shadow", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pipeline_decisions") as batch:
        batch.drop_column("shadow")
