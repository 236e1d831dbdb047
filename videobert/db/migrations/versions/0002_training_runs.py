"""training runs: run key, data versions, final metrics, checkpoints, owner

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("training_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("run_key", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("corpus_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("codebook_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("final_metrics", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("checkpoints", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("flow_run_id", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_training_runs_run_key", ["run_key"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("training_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_training_runs_run_key")
        for column in ("flow_run_id", "claimed_by", "checkpoints", "final_metrics", "codebook_hash", "corpus_hash", "run_key"):
            batch_op.drop_column(column)
