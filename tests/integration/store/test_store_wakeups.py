"""Waking other processes: a notification at commit on PostgreSQL, none on SQLite."""

from __future__ import annotations

import asyncio

from engine_helpers import within
from store_helpers import request
from synchestra.core.clock import FakeClock
from synchestra.store import Store


async def test_a_commit_that_queues_work_wakes_the_other_listeners(
    database_url: str, clock: FakeClock
) -> None:
    listening = await Store.open(database_url, database_clock=clock)
    writing = await Store.open(database_url, database_clock=clock)
    woken = asyncio.Event()
    listener = await listening.listen(woken.set)
    try:
        await writing.enqueue([request()], clock.now())
        if listening.engine.dialect.name == "postgresql":
            await within(woken.wait(), 10)
        else:  # SQLite: no notifications; the processes poll
            assert not woken.is_set()
        woken.clear()
        (run,) = await writing.list_runs()
        await writing.cancel(run.id, clock.now())
        if listening.engine.dialect.name == "postgresql":
            await within(woken.wait(), 10)
    finally:
        await listener.close()
        await listening.close()
        await writing.close()
