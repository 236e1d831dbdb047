"""stage_runs indexed by status first: the rows running now, and the failures by stage and error type

Measured with bench/bench_scale.py: at 1.2M videos (6M stage rows) the recovery at the start of every ingest
(`release_dead_claims`: the rows with status running) and `videobert status`'s most frequent errors (status
failed, by stage and error type) read the whole table; (stage, status) cannot serve a condition on status alone.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 22:10:00
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("stage_runs", schema=None) as batch_op:
        batch_op.create_index("ix_stage_runs_status_stage_error", ["status", "stage", "error_type"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("stage_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_stage_runs_status_stage_error")
