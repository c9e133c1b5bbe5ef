"""The schema on both databases: migrations match the code; large loads stay fast."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from synchestra.core.records import RecordScope
from synchestra.store import Store
from synchestra.store.records import ANALYZE_AFTER
from synchestra.store.schema import metadata


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection)
    return list(compare_metadata(context, metadata))


async def test_migrations_match_the_declared_schema(store: Store) -> None:
    async with store.engine.connect() as conn:
        assert await conn.run_sync(_differences) == []


async def test_a_large_upsert_counts_right_and_refreshes_statistics(store: Store) -> None:
    """On PostgreSQL the upsert runs ANALYZE mid-transaction past ANALYZE_AFTER records."""
    now = datetime(2026, 11, 23, tzinfo=UTC)
    scope = RecordScope(kind="item", target=None, source="bulk", run_id=1)
    rows = [(str(n), {"n": n}) for n in range(ANALYZE_AFTER + 500)]
    first = await store.upsert_records(scope, rows, now)
    again = await store.upsert_records(scope, rows, now)
    assert (first.created, again.unchanged) == (len(rows), len(rows))
