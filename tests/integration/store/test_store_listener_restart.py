"""A listener survives its database's restart: it listens again, notifications flow again."""

from __future__ import annotations

import asyncio

import pytest

from engine_helpers import within
from process_helpers import throwaway_cluster
from store_helpers import request
from synchestra.core.clock import FakeClock
from synchestra.store import Store

pytestmark = pytest.mark.slow


async def test_a_listener_listens_again_after_the_database_restarts() -> None:
    clock = FakeClock()
    with throwaway_cluster() as cluster:
        listening = await Store.open(cluster.url, database_clock=clock)
        woken = asyncio.Event()
        listener = await listening.listen(woken.set)
        try:
            await asyncio.to_thread(cluster.stop)
            await asyncio.to_thread(cluster.start)
            await listener.ensure()  # what housekeeping does at every heartbeat
            writing = await Store.open(cluster.url, database_clock=clock)
            try:
                await writing.enqueue([request()], clock.now())
                await within(woken.wait(), 10)
            finally:
                await writing.close()
        finally:
            await listener.close()
            await listening.close()
