"""evaluations: zero-shot evaluation runs and their per-segment results

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 19:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "evaluation_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("eval_key", sa.String(length=64), nullable=False),
        sa.Column("model_sha256", sa.String(length=64), nullable=False),
        sa.Column("annotations_sha256", sa.String(length=64), nullable=False),
        sa.Column("corpus_hash", sa.String(length=64), nullable=True),
        sa.Column("codebook_hash", sa.String(length=64), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("evaluation_runs", schema=None) as batch_op:
        batch_op.create_index("ix_evaluation_runs_eval_key", ["eval_key"], unique=True)
    op.create_table(
        "evaluation_results",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("video_id", sa.String(length=128), nullable=False),
        sa.Column("segment_id", sa.Integer(), nullable=False),
        sa.Column("verb", sa.String(length=64), nullable=True),
        sa.Column("object", sa.String(length=64), nullable=True),
        sa.Column("verb_top", sa.JSON(), nullable=False),
        sa.Column("object_top", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["evaluation_runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("evaluation_results", schema=None) as batch_op:
        batch_op.create_index("ix_evaluation_results_run_video", ["run_id", "video_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("evaluation_results", schema=None) as batch_op:
        batch_op.drop_index("ix_evaluation_results_run_video")
    op.drop_table("evaluation_results")
    with op.batch_alter_table("evaluation_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_evaluation_runs_eval_key")
    op.drop_table("evaluation_runs")
