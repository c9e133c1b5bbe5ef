"""The Alembic migrations build exactly the schema the code declares, on both databases."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from synchestra.store import Store
from synchestra.store.schema import metadata


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection)
    return list(compare_metadata(context, metadata))


async def test_migrations_match_the_declared_schema(store: Store) -> None:
    async with store.engine.connect() as conn:
        assert await conn.run_sync(_differences) == []
