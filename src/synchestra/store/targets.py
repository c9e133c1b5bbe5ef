"""Targets: the entities per-target sources are synced for."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from synchestra.models import Target
from synchestra.store.dialect import insert_for
from synchestra.store.schema import pair_status, runs, targets

_CHUNK = 500


def _target(row: Row[Any]) -> Target:
    return Target(key=row.key, name=row.name, attrs=dict(row.attrs or {}))


async def put(conn: AsyncConnection, items: Sequence[Target], now: datetime) -> None:
    """Add targets, or update the name and attrs of existing ones."""
    for start in range(0, len(items), _CHUNK):
        chunk = items[start : start + _CHUNK]
        statement = insert_for(conn, targets)
        await conn.execute(
            statement.on_conflict_do_update(
                index_elements=[targets.c.key],
                set_={"name": statement.excluded.name, "attrs": statement.excluded.attrs},
            ),
            [
                {"key": t.key, "name": t.name, "attrs": dict(t.attrs), "created_at": now}
                for t in chunk
            ],
        )


async def get(conn: AsyncConnection, key: str) -> Target | None:
    row = (await conn.execute(select(targets).where(targets.c.key == key))).first()
    return _target(row) if row else None


async def get_many(conn: AsyncConnection, wanted: set[str]) -> dict[str, Target]:
    found: dict[str, Target] = {}
    keys = sorted(wanted)
    for start in range(0, len(keys), _CHUNK):
        rows = await conn.execute(
            select(targets).where(targets.c.key.in_(keys[start : start + _CHUNK]))
        )
        found.update({row.key: _target(row) for row in rows})
    return found


async def page(conn: AsyncConnection, *, limit: int, after: str | None) -> list[Target]:
    statement = select(targets).order_by(targets.c.key).limit(limit)
    if after is not None:
        statement = statement.where(targets.c.key > after)
    return [_target(row) for row in await conn.execute(statement)]


async def keys(conn: AsyncConnection) -> list[str]:
    return [row.key for row in await conn.execute(select(targets.c.key).order_by(targets.c.key))]


async def remove(conn: AsyncConnection, key: str, now: datetime) -> bool:
    """Remove a target, its status, and cancel its queued runs; its records stay."""
    result = await conn.execute(delete(targets).where(targets.c.key == key))
    if not result.rowcount:
        return False
    await conn.execute(delete(pair_status).where(pair_status.c.target == key))
    await conn.execute(
        update(runs)
        .where(runs.c.target == key, runs.c.state == "queued")
        .values(state="cancelled", finished_at=now, error="target removed")
    )
    return True
