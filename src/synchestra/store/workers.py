"""The processes sharing the database, and the elected scheduler: registration, renewal, death.

All times here are the database's (see :func:`database_now`), never a
process's own clock, so that processes on machines whose clocks disagree still
agree on who is alive. Every function runs inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, delete, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from synchestra.core.models import RunState
from synchestra.core.workers import SchedulerTerm, WorkerInfo, WorkerStatus
from synchestra.store.dialect import insert_for
from synchestra.store.schema import leadership, runs, workers

SCHEDULER = "scheduler"


async def database_now(conn: AsyncConnection) -> datetime:
    """The database's time: PostgreSQL's clock; SQLite's processes share their host's."""
    if conn.dialect.name == "postgresql":
        value = await conn.scalar(text("SELECT clock_timestamp()"))
        assert isinstance(value, datetime)
        return value.astimezone(UTC)
    return datetime.now(UTC)


async def register(conn: AsyncConnection, info: WorkerInfo, now: datetime) -> None:
    await conn.execute(
        workers.insert().values(
            id=info.id,
            host=info.host,
            pid=info.pid,
            host_key=info.host_key,
            roles=list(info.roles),
            capacity=info.capacity,
            running=0,
            version=info.version,
            started_at=now,
            heartbeat_at=now,
            dead=False,
        )
    )


async def renew(
    conn: AsyncConnection, worker_id: str, running: int, roles: Sequence[str], now: datetime
) -> bool:
    """Renew a live process's heartbeat; False when it was declared dead meanwhile."""
    result = await conn.execute(
        update(workers)
        .where(workers.c.id == worker_id, workers.c.dead.is_(False))
        .values(heartbeat_at=now, running=running, roles=list(roles))
    )
    return bool(result.rowcount)


async def cancel_requests(conn: AsyncConnection, worker_id: str) -> tuple[int, ...]:
    """The running runs of this process that someone asked to cancel."""
    rows = await conn.execute(
        select(runs.c.id).where(
            runs.c.owner == worker_id,
            runs.c.state == RunState.RUNNING.value,
            runs.c.cancel_requested.is_(True),
        )
    )
    return tuple(row.id for row in rows)


async def unregister(conn: AsyncConnection, worker_id: str) -> None:
    """A clean stop: the process is no longer listed, and gives up what it holds."""
    await conn.execute(delete(workers).where(workers.c.id == worker_id))
    await conn.execute(
        update(leadership)
        .where(leadership.c.holder == worker_id)
        .values(holder=None, expires_at=None)
    )


async def declare_dead(
    conn: AsyncConnection,
    *,
    me: str,
    now: datetime,
    lease: timedelta,
    gone: Callable[[WorkerInfo], bool],
    retention: timedelta,
) -> None:
    """Mark dead the processes silent for ``lease`` (or ``gone`` by the same-host check).

    Long-dead rows (older than ``retention``) are removed. Never marks ``me``.
    """
    alive = (workers.c.dead.is_(False), workers.c.id != me)
    # The silence is judged in the UPDATE itself: a renewal committing meanwhile wins.
    await conn.execute(
        update(workers).where(*alive, workers.c.heartbeat_at < now - lease).values(dead=True)
    )
    rows = await conn.execute(select(workers).where(*alive))
    gone_now = [row.id for row in rows if gone(_info(row))]
    if gone_now:
        await conn.execute(update(workers).where(workers.c.id.in_(gone_now)).values(dead=True))
    await conn.execute(
        delete(workers).where(workers.c.dead.is_(True), workers.c.heartbeat_at < now - retention)
    )


async def live_ids(conn: AsyncConnection) -> set[str]:
    rows = await conn.execute(select(workers.c.id).where(workers.c.dead.is_(False)))
    return {row.id for row in rows}


async def listing(conn: AsyncConnection, now: datetime, lease: timedelta) -> list[WorkerStatus]:
    """Every registered process, live ones first, then by start."""
    holder = await scheduler_holder(conn, now)
    rows = await conn.execute(select(workers).order_by(workers.c.started_at, workers.c.id))
    found = [
        WorkerStatus(
            info=_info(row),
            started_at=row.started_at,
            heartbeat_at=row.heartbeat_at,
            running=row.running,
            live=not row.dead and row.heartbeat_at >= now - lease,
            scheduler=row.id == holder,
        )
        for row in rows
    ]
    return sorted(found, key=lambda status: not status.live)


def _info(row: Any) -> WorkerInfo:
    return WorkerInfo(
        id=row.id,
        host=row.host,
        pid=row.pid,
        host_key=row.host_key,
        roles=tuple(row.roles),
        capacity=row.capacity,
        version=row.version,
    )


# --- the elected scheduler ---------------------------------------------------


async def hold_scheduler(
    conn: AsyncConnection, holder: str, now: datetime, lease: timedelta
) -> int | None:
    """Take or keep the scheduler role; its term when this process holds it, else None.

    A new holder starts a new term, so that a fire written under an older term
    (a paused leader waking up) is refused.
    """
    await conn.execute(
        insert_for(conn, leadership)
        .values(role=SCHEDULER, holder=None, term=0, expires_at=None)
        .on_conflict_do_nothing(index_elements=["role"])
    )
    mine = leadership.c.holder == holder
    await conn.execute(
        update(leadership)
        .where(
            leadership.c.role == SCHEDULER,
            or_(mine, leadership.c.holder.is_(None), leadership.c.expires_at < now),
        )
        .values(
            term=case((mine, leadership.c.term), else_=leadership.c.term + 1),
            holder=holder,
            expires_at=now + lease,
        )
    )
    row = (await conn.execute(select(leadership).where(leadership.c.role == SCHEDULER))).one()
    return int(row.term) if row.holder == holder else None


async def scheduler_holder(conn: AsyncConnection, now: datetime) -> str | None:
    holder = await conn.scalar(
        select(leadership.c.holder).where(
            leadership.c.role == SCHEDULER, leadership.c.expires_at >= now
        )
    )
    return str(holder) if holder is not None else None


async def holds(conn: AsyncConnection, term: SchedulerTerm, now: datetime) -> bool:
    """Whether ``term`` is still the scheduler's (checked in the fire's own transaction)."""
    found = await conn.scalar(
        select(func.count())
        .select_from(leadership)
        .where(
            leadership.c.role == SCHEDULER,
            leadership.c.holder == term.holder,
            leadership.c.term == term.term,
            leadership.c.expires_at >= now,
        )
    )
    return bool(found)
