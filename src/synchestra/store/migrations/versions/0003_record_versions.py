"""record versions: what a changed record was before each change

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "record_versions",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("record_id", Id, nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", Id, nullable=True),
    )
    op.create_index("ix_record_versions_record", "record_versions", ["record_id", "valid_to"])


def downgrade() -> None:
    op.drop_index("ix_record_versions_record", table_name="record_versions")
    op.drop_table("record_versions")
