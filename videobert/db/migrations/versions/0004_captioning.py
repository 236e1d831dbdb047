"""captioning: one row per captioner trained and scored (VideoBERT features or clip features alone)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 23:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "captioning_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_key", sa.String(length=64), nullable=False),
        sa.Column("inputs", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("videobert_sha256", sa.String(length=64), nullable=False),
        sa.Column("annotations_sha256", sa.String(length=64), nullable=False),
        sa.Column("codebook_hash", sa.String(length=64), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("training", sa.JSON(), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("model_prefix", sa.String(length=1024), nullable=True),
        sa.Column("predictions_key", sa.String(length=1024), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("flow_run_id", sa.String(length=64), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("captioning_runs", schema=None) as batch_op:
        batch_op.create_index("ix_captioning_runs_run_key", ["run_key"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("captioning_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_captioning_runs_run_key")
    op.drop_table("captioning_runs")
