"""Waking the other processes: PostgreSQL ``LISTEN``/``NOTIFY`` as a hint, never a guarantee.

A write that others should act on (work queued, a cancel, a run ended) sends a
notification in its own transaction, so it is delivered at commit and only if
it commits. A listener holds one connection of its own and calls back on each
notification. Every process also polls, so a lost notification (a restart, a
transaction pooler that drops ``LISTEN``) only delays work; SQLite has no
notifications and relies on the poll alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger("synchestra")

CHANNEL = "synchestra"


async def announce(conn: AsyncConnection) -> None:
    """Tell the other processes something changed (at commit; PostgreSQL only)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})


class Listener:
    """One connection listening on :data:`CHANNEL`; :meth:`close` gives it back."""

    def __init__(self, engine: AsyncEngine, on_notice: Callable[[], None]) -> None:
        self._engine = engine
        self._on_notice = on_notice
        self._conn: AsyncConnection | None = None
        self._driver: Any = None

    async def open(self) -> None:
        if self._engine.dialect.name != "postgresql":
            return
        self._conn = await self._engine.connect()
        raw = await self._conn.get_raw_connection()
        self._driver = raw.driver_connection
        await self._driver.add_listener(CHANNEL, self._notified)

    def _notified(self, *_: object) -> None:
        self._on_notice()

    async def ensure(self) -> None:
        """Listen again if the connection was lost (a database restart, a cut).

        Called at every housekeeping; a failure is logged at debug level and
        tried again next time (the processes poll meanwhile).
        """
        if self._engine.dialect.name != "postgresql":
            return
        if self._driver is not None and not self._driver.is_closed():
            return
        await self._drop()
        try:
            await self.open()
        except Exception as error:  # the database is still away
            log.debug("cannot listen yet: %s", type(error).__name__)
            await self._drop()

    async def _drop(self) -> None:
        """Forget a dead connection (invalidated: the pool must not hand it out again)."""
        if self._conn is not None:
            try:
                await self._conn.invalidate()
                await self._conn.close()
            except Exception as error:
                log.debug("listener connection already gone: %s", type(error).__name__)
        self._conn, self._driver = None, None

    async def close(self) -> None:
        if self._conn is None:
            return
        try:
            await self._driver.remove_listener(CHANNEL, self._notified)
        except Exception as error:  # a connection the database dropped: nothing to undo
            log.debug("listener already gone: %s", type(error).__name__)
        await self._conn.close()
        self._conn = None
