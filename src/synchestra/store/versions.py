"""Earlier versions of records: kept when a record changes, read to say what it was at T.

A version is the record's ``data`` between ``valid_from`` (when it became that)
and ``valid_to`` (when it changed again). Only changes write a version: an
unchanged record costs nothing here, a deleted one keeps its data in place.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from synchestra.store.schema import record_versions, records

_CHUNK = 500


async def archive(
    conn: AsyncConnection, ids: Sequence[int], now: datetime
) -> dict[int, dict[str, Any]]:
    """Keep the current data of these records as versions ending ``now``; return it by id."""
    previous: dict[int, dict[str, Any]] = {}
    for start in range(0, len(ids), _CHUNK):
        rows = list(
            await conn.execute(
                select(
                    records.c.id,
                    records.c.data,
                    records.c.hash,
                    records.c.changed_at,
                    records.c.run_id,
                ).where(records.c.id.in_(ids[start : start + _CHUNK]))
            )
        )
        if not rows:
            continue
        await conn.execute(
            record_versions.insert(),
            [
                {
                    "record_id": row.id,
                    "data": row.data,
                    "hash": row.hash,
                    "valid_from": row.changed_at,
                    "valid_to": now,
                    "run_id": row.run_id,
                }
                for row in rows
            ],
        )
        previous.update({row.id: row.data for row in rows})
    return previous


async def as_of(
    conn: AsyncConnection, ids: Sequence[int], moment: datetime
) -> dict[int, dict[str, Any]]:
    """The data these records had at ``moment``, for those that changed since.

    That is the first version of each record that ended after ``moment``; a
    record with none did not change since (or did not exist yet).
    """
    if not ids:
        return {}
    first_end = (
        select(record_versions.c.record_id, func.min(record_versions.c.valid_to).label("end"))
        .where(record_versions.c.record_id.in_(ids), record_versions.c.valid_to > moment)
        .group_by(record_versions.c.record_id)
        .subquery()
    )
    rows = await conn.execute(
        select(record_versions.c.record_id, record_versions.c.data).join(
            first_end,
            (record_versions.c.record_id == first_end.c.record_id)
            & (record_versions.c.valid_to == first_end.c.end),
        )
    )
    return {row.record_id: row.data for row in rows}
