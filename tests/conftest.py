"""Shared fixtures: a database of each kind, a store on it, and a fake clock.

``database_url`` is parametrised over SQLite (a file in ``tmp_path``) and
PostgreSQL (a fresh database on the local server, dropped afterwards), so every
test that takes it runs against both. Without a reachable PostgreSQL server the
``postgresql`` variants are skipped, except in CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest

from synchestra.core.clock import FakeClock
from synchestra.store import Store

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"
PG_ADMIN_DATABASE = "postgres"
CI = os.environ.get("CI") == "true"


async def _admin_connection() -> asyncpg.Connection:
    """A connection to the server's ``postgres`` database; skip (or fail in CI) without one."""
    try:
        return await asyncpg.connect(
            host=PG_HOST, port=PG_PORT, user=PG_USER, database=PG_ADMIN_DATABASE, timeout=5
        )
    except (OSError, TimeoutError, asyncpg.PostgresError) as error:
        if CI:
            raise
        pytest.skip(f"PostgreSQL at {PG_HOST}:{PG_PORT} is unreachable: {error!r}")


@asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """Create an empty database ``syn_test_<hex>``, yield its URL, then drop it."""
    name = f"syn_test_{uuid.uuid4().hex}"
    admin = await _admin_connection()
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
        finally:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid()",
                name,
            )
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        await admin.close()


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of an empty database: SQLite file or fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/t.db"
        return
    async with postgres_database() as url:
        yield url


@pytest.fixture
async def store(database_url: str, clock: FakeClock) -> AsyncIterator[Store]:
    """A migrated :class:`Store` on ``database_url``, closed after the test.

    ``clock`` stands in for the database's time, so leases lapse when it moves.
    """
    opened = await Store.open(database_url, database_clock=clock)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
