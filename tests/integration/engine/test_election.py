"""One scheduler among processes: elected through the database, replaced at once on a clean stop."""

from __future__ import annotations

import asyncio
import time

import pytest

from engine_helpers import cfg, opened
from synchestra.core.clock import FakeClock
from synchestra.engine.orchestrator import Orchestrator

POSTGRES_ONLY = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def scheduler_of(*orcs: Orchestrator) -> list[Orchestrator]:
    return [orc for orc in orcs if orc.presence is not None and orc.presence.term is not None]


async def wait_until(predicate: object, seconds: float, what: str) -> float:
    """Poll (real time: the election runs on the database's time) until ``predicate()``."""
    assert callable(predicate)
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


@POSTGRES_ONLY
async def test_one_scheduler_and_a_clean_stop_hands_the_role_over_at_once(
    database_url: str,
) -> None:
    """With notifications, the other candidate takes over well before its next heartbeat."""
    config = cfg({"engine": {"heartbeat": "10s", "lease": "60s"}})
    async with (
        opened(database_url, FakeClock(), config) as first,
        opened(database_url, FakeClock(), config) as second,
    ):
        first.start(schedule=True)
        await wait_until(lambda: scheduler_of(first) == [first], 10, "the first to be elected")
        second.start(schedule=True)
        await wait_until(lambda: second.presence is not None and second.presence.joined, 10, "join")
        assert scheduler_of(first, second) == [first]
        term = first.presence.term if first.presence else None
        await first.stop()
        took = await wait_until(lambda: scheduler_of(second) == [second], 5, "the takeover")
        assert second.presence is not None and second.presence.term is not None
        assert term is not None and second.presence.term.term == term.term + 1
        assert took < 5  # the heartbeat is 10 s: the release woke it


async def test_a_process_that_synced_first_still_becomes_the_scheduler(database_url: str) -> None:
    """``demo`` and scripts do this: a ``sync``, then ``serve``; the second start adds a role."""
    async with opened(database_url, FakeClock()) as orc:

        @orc.source("once")
        async def once(ctx: object) -> None:
            """A source with nothing to do."""

        await orc.sync(["once"])
        assert orc.presence is not None and orc.presence.term is None
        orc.start(schedule=True)
        await wait_until(lambda: scheduler_of(orc) == [orc], 10, "the scheduler role")
        assert orc.presence is not None and "scheduler" in orc.presence.roles


async def test_a_cancel_reaches_the_process_that_runs_the_run(database_url: str) -> None:
    """Contract: a cancel reaches whichever process runs the run (at its next renewal)."""
    config = cfg({"engine": {"heartbeat": "1s", "lease": "3s"}})
    started = asyncio.Event()

    def setup(orc: Orchestrator) -> None:
        @orc.source("hold")
        async def hold(ctx: object) -> None:
            started.set()
            await asyncio.Event().wait()  # until cancelled

    async with (
        opened(database_url, FakeClock(), config, setup=setup) as runner,
        opened(database_url, FakeClock(), config, setup=setup) as other,
    ):
        (queued,) = await other.request(["hold"])
        runner.start(schedule=False)
        await asyncio.wait_for(started.wait(), 10)
        answer = await other.cancel(queued.run.id)  # not the process running it
        assert answer is not None
        (run,) = await asyncio.wait_for(runner.wait_for([queued.run.id]), 10)
        (ended,) = await runner.store.get_runs([run])
        assert ended.state.value == "cancelled"
