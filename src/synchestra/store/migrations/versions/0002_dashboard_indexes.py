"""indexes for the dashboard: runs by start time, and the active runs of a target

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ACTIVE = sa.text("state IN ('queued', 'running')")


def upgrade() -> None:
    op.create_index("ix_runs_started", "runs", ["started_at"])
    op.create_index(
        "ix_runs_active",
        "runs",
        ["target", "source"],
        sqlite_where=ACTIVE,
        postgresql_where=ACTIVE,
    )


def downgrade() -> None:
    op.drop_index("ix_runs_active", table_name="runs")
    op.drop_index("ix_runs_started", table_name="runs")
