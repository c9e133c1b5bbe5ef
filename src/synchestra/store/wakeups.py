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

    async def close(self) -> None:
        if self._conn is None:
            return
        try:
            await self._driver.remove_listener(CHANNEL, self._notified)
        except Exception as error:  # a connection the database dropped: nothing to undo
            log.debug("listener already gone: %s", type(error).__name__)
        await self._conn.close()
        self._conn = None
