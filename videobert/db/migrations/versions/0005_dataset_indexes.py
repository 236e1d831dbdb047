"""dataset indexes in the store, found through the database; codebooks keyed by what they were fitted on

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 04:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dataset_indexes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("store_key", sa.String(length=1024), nullable=False),
        sa.Column("manifest_hash", sa.String(length=64), nullable=True),
        sa.Column("codebook_hash", sa.String(length=64), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "content_hash", name="uq_dataset_indexes_kind_hash"),
    )
    with op.batch_alter_table("codebooks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("manifest_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("fit_key", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("used_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_codebooks_fit_key", ["fit_key"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("codebooks", schema=None) as batch_op:
        batch_op.drop_index("ix_codebooks_fit_key")
        batch_op.drop_column("used_at")
        batch_op.drop_column("fit_key")
        batch_op.drop_column("manifest_hash")
    op.drop_table("dataset_indexes")
