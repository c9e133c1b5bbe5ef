"""Reading runs: by id, the listings, the counts and what comes due next.

Only reads: the statements that change a run's state are in :mod:`.queue`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Row, false, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from synchestra.core.models import Backlog, Mode, Run, RunState
from synchestra.store.schema import runs

_CHUNK = 500
_ACTIVE = [RunState.QUEUED.value, RunState.RUNNING.value]


def run_from_row(row: Row[Any]) -> Run:
    return Run(
        id=row.id,
        source=row.source,
        target=row.target or None,
        mode=Mode(row.mode),
        priority=row.priority,
        state=RunState(row.state),
        attempts=row.attempts,
        group=row.group_name,
        api=row.api,
        trigger=row.trigger,
        queued_at=row.queued_at,
        not_before=row.not_before,
        started_at=row.started_at,
        finished_at=row.finished_at,
        error=row.error,
        result=row.result or {},
        worker=row.owner,
        continued_by=row.continued_by,
    )


async def fetch_runs(conn: AsyncConnection, ids: Iterable[int]) -> list[Run]:
    """The runs with these ids that exist, in the order asked."""
    id_list = list(ids)
    found: dict[int, Run] = {}
    for start in range(0, len(id_list), _CHUNK):
        rows = await conn.execute(
            select(runs).where(runs.c.id.in_(id_list[start : start + _CHUNK]))
        )
        found.update({row.id: run_from_row(row) for row in rows})
    return [found[i] for i in id_list if i in found]


async def list_runs(
    conn: AsyncConnection,
    *,
    source: str | None,
    target: str | None,
    state: RunState | None,
    limit: int,
) -> list[Run]:
    """The latest ``limit`` runs, newest first, of this source, target and state if given."""
    statement = select(runs).order_by(runs.c.id.desc()).limit(limit)
    if source is not None:
        statement = statement.where(runs.c.source == source)
    if target is not None:
        statement = statement.where(runs.c.target == target)
    if state is not None:
        statement = statement.where(runs.c.state == state.value)
    return [run_from_row(row) for row in await conn.execute(statement)]


async def active_runs(conn: AsyncConnection, target: str) -> list[Run]:
    """The queued and running runs of one target."""
    statement = select(runs).where(runs.c.target == target, runs.c.state.in_(_ACTIVE))
    return [run_from_row(row) for row in await conn.execute(statement)]


async def run_counts(conn: AsyncConnection) -> dict[tuple[str, str], int]:
    """How many runs each (source, state) has."""
    statement = select(runs.c.source, runs.c.state, func.count().label("n")).group_by(
        runs.c.source, runs.c.state
    )
    return {(row.source, row.state): int(row.n) for row in await conn.execute(statement)}


async def backlog(conn: AsyncConnection) -> dict[str | None, Backlog]:
    """Queued and running runs per API (None: sources without an API)."""
    statement = (
        select(runs.c.api, runs.c.state, func.count().label("n"))
        .where(runs.c.state.in_(_ACTIVE))
        .group_by(runs.c.api, runs.c.state)
    )
    counts: dict[str | None, dict[str, int]] = {}
    for row in await conn.execute(statement):
        counts.setdefault(row.api, {})[row.state] = int(row.n)
    return {
        api: Backlog(queued=states.get("queued", 0), running=states.get("running", 0))
        for api, states in counts.items()
    }


async def next_due(conn: AsyncConnection) -> datetime | None:
    """The earliest ``not_before`` among queued runs that are not due yet."""
    row = (
        await conn.execute(
            select(runs.c.not_before)
            .where(runs.c.state == RunState.QUEUED.value, runs.c.due == false())
            .order_by(runs.c.not_before)
            .limit(1)
        )
    ).first()
    return row.not_before if row else None
