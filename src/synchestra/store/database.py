"""Opening a database: URLs, dialect settings, transactions and migrations.

Every SQLite/PostgreSQL difference outside single statements lives here:
SQLite gets WAL, a busy timeout, and ``BEGIN IMMEDIATE`` for write transactions
(the writer lock taken at the start, so two writers never deadlock on upgrade)
while reads begin deferred and run beside the writer; see :func:`for_writing`;
PostgreSQL serialises claims with a transaction-level advisory lock.

Lock order (PostgreSQL): a write transaction that takes the claim lock takes
it first, before it touches any row; then it writes runs, pair_status,
source_state (and records last). A record upsert takes its scope's advisory
lock, then reads its run's row (the fence), then writes records; a heartbeat
writes workers, then leadership. Deadlocks that remain possible (two
transactions updating several rows of one table in different orders) are
retried whole by :func:`.failures.retry_conflicts`. Migrations run under a lock of their own
(:func:`migrate`), so processes starting together create the schema once.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, event, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from synchestra.core.errors import ConfigError

MIGRATIONS = Path(__file__).parent / "migrations"
_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}
CLAIM_LOCK_ID = 0x5A1C_0001
"""The PostgreSQL advisory lock that serialises claims across processes."""
MIGRATION_LOCK_ID = 0x5A1C_0002
"""The PostgreSQL session-level advisory lock held while one process migrates."""


WRITE_OPTION = "synchestra_write"


def for_writing(engine: AsyncEngine) -> AsyncEngine:
    """The same engine (same pool), whose transactions take SQLite's writer lock at once.

    Reads must not: with ``BEGIN IMMEDIATE`` every read would queue behind the
    writer and poll SQLite's sleeping busy handler.
    """
    return engine.execution_options(**{WRITE_OPTION: True})


def async_url(url: str) -> URL:
    """Turn ``sqlite:///x.db`` or ``postgresql://u@h/db`` into its asyncio-driver form."""
    try:
        parsed = make_url(url)
    except Exception:  # SQLAlchemy raises ArgumentError with a vague text
        raise ConfigError(f"invalid database url {url!r}") from None
    backend = parsed.get_backend_name()
    if backend not in _ASYNC_DRIVERS:
        raise ConfigError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")
    return parsed.set(drivername=_ASYNC_DRIVERS[backend])


def create_engine(url: str) -> AsyncEngine:
    parsed = async_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    return create_async_engine(parsed, pool_size=10, max_overflow=10, pool_pre_ping=True)


def presence_engine(engine: AsyncEngine) -> AsyncEngine:
    """Where a process renews its liveness: on PostgreSQL one connection of its own.

    So that a pool busy with runs' upserts never delays a renewal past the
    lease. SQLite has one writer whatever the pool: the same engine.
    """
    if engine.dialect.name != "postgresql":
        return engine
    return create_async_engine(engine.url, pool_size=1, max_overflow=1, pool_pre_ping=True)


def _sqlite_engine(url: URL) -> AsyncEngine:
    in_memory = url.database in (None, "", ":memory:")
    if in_memory:
        # One shared connection, or every checkout would see its own empty database.
        engine = create_async_engine(url, poolclass=StaticPool)
    else:
        # Readers run side by side under WAL (the HTTP API's requests); writers queue in the
        # store. A pool of 2 + 3 tripled the API's median latency under 8 clients.
        engine = create_async_engine(url, pool_size=5, max_overflow=10)

    @event.listens_for(engine.sync_engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA cache_size=-32768")  # 32 MiB: the queue indexes stay in memory
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: Connection) -> None:
        writing = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")

    return engine


async def lock_for_claim(connection: AsyncConnection) -> None:
    """Serialise claims across processes (SQLite's writer lock already does)."""
    if connection.dialect.name == "postgresql":
        await connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": CLAIM_LOCK_ID})


def alembic_config(connection: Connection | None = None) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


async def is_current(engine: AsyncEngine) -> bool:
    """Whether the schema is at the newest revision (read only: no lock, no write)."""
    async with engine.connect() as connection:
        return await connection.run_sync(_at_head)


def _at_head(connection: Connection) -> bool:
    current = MigrationContext.configure(connection).get_current_revision()
    return current == ScriptDirectory.from_config(alembic_config()).get_current_head()


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema to the newest revision (idempotent), one process at a time.

    Without the lock, processes starting together on an empty PostgreSQL
    database each ran ``CREATE TABLE alembic_version`` and all but one died on a
    duplicate key in the catalog.
    """
    if engine.dialect.name == "postgresql":
        await _migrate_postgresql(engine)
        return
    async with _file_lock(engine.url.database), for_writing(engine).begin() as connection:
        await connection.run_sync(_upgrade)


async def _migrate_postgresql(engine: AsyncEngine) -> None:
    """Migrate holding a session-level advisory lock on the migrating connection."""
    async with engine.connect() as connection:
        lock = {"id": MIGRATION_LOCK_ID}
        await connection.execute(text("SELECT pg_advisory_lock(:id)"), lock)
        await connection.commit()
        try:
            async with connection.begin():
                await connection.run_sync(_upgrade)
        finally:
            await connection.execute(text("SELECT pg_advisory_unlock(:id)"), lock)
            await connection.commit()


@asynccontextmanager
async def _file_lock(database: str | None) -> AsyncIterator[None]:
    """An exclusive ``flock`` on ``<database>.lock`` beside a SQLite file (none in memory)."""
    if not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    descriptor = os.open(f"{database}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        await asyncio.to_thread(fcntl.flock, descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


def _upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")
