"""What the dashboard reads: a searchable page of the targets x sources grid, recent runs.

Both are bounded, whatever the size of the fleet or the run history: a grid
page reads the statuses and active runs of its own targets only (through the
``ix_pair_status_target`` and partial ``ix_runs_active`` indexes), and the
timeline reads the runs started in a window (``ix_runs_started``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from synchestra.core.models import Run, Target
from synchestra.core.status import GridPage
from synchestra.store.runs import run_from_row
from synchestra.store.schema import ONLY_ACTIVE, pair_status, runs, targets
from synchestra.store.status import pair_from_row


def _matching(search: str) -> ColumnElement[bool] | None:
    """Targets whose key or name contains ``search``, ignoring case; None: every target."""
    text = search.strip()
    if not text:
        return None
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = f"%{escaped}%"
    return or_(
        targets.c.key.ilike(pattern, escape="\\"), targets.c.name.ilike(pattern, escape="\\")
    )


async def grid_page(conn: AsyncConnection, *, search: str, limit: int, offset: int) -> GridPage:
    condition = _matching(search)
    listing = select(targets.c.key, targets.c.name).order_by(targets.c.key)
    counting = select(func.count()).select_from(targets)
    if condition is not None:
        listing = listing.where(condition)
        counting = counting.where(condition)
    total = int((await conn.execute(counting)).scalar_one())
    rows = list(await conn.execute(listing.limit(limit).offset(offset)))
    keys = [row.key for row in rows]
    if not keys:
        return GridPage(total, [], [], [])
    pairs = await conn.execute(select(pair_status).where(pair_status.c.target.in_(keys)))
    active = await conn.execute(
        select(runs).where(runs.c.target.in_(keys), ONLY_ACTIVE)  # the partial index's own words
    )
    return GridPage(
        total=total,
        targets=[Target(row.key, row.name) for row in rows],
        pairs=[pair_from_row(row) for row in pairs],
        active=[run_from_row(row) for row in active],
    )


async def runs_started_since(conn: AsyncConnection, since: datetime, limit: int) -> list[Run]:
    """The runs started at or after ``since`` (the latest ``limit``), oldest first."""
    statement = (
        select(runs)
        .where(runs.c.started_at >= since)
        .order_by(runs.c.started_at.desc(), runs.c.id.desc())
        .limit(limit)
    )
    found = [run_from_row(row) for row in await conn.execute(statement)]
    return found[::-1]
