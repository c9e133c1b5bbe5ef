"""Time as an injected dependency.

Every component that reads the time or waits takes a :class:`Clock`. Production
code uses :class:`SystemClock`; tests use :class:`FakeClock` and move time
forward explicitly with :meth:`FakeClock.advance`, so no test sleeps to wait.
All datetimes are aware and in UTC.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """The source of "now" and of waiting."""

    def now(self) -> datetime:
        """The current instant, aware, in UTC."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait for ``seconds`` of this clock's time (returns at once for <= 0)."""
        ...


async def sleep_until(clock: Clock, deadline: datetime) -> None:
    """Wait until ``deadline`` on ``clock``."""
    await clock.sleep((deadline - clock.now()).total_seconds())


class SystemClock:
    """The wall clock and asyncio's timer."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0))


class FakeClock:
    """A clock that moves only when told to.

    ``sleep`` parks the caller until :meth:`advance` moves time past its
    deadline; sleepers wake in deadline order.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
        if self._now.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        self._sleepers: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._sequence = itertools.count()

    def now(self) -> datetime:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        deadline = self._now + timedelta(seconds=seconds)
        heapq.heappush(self._sleepers, (deadline, next(self._sequence), future))
        await future

    @property
    def next_deadline(self) -> datetime | None:
        """The earliest deadline of a waiting sleeper, if any."""
        self._drop_cancelled()
        return self._sleepers[0][0] if self._sleepers else None

    async def advance(self, seconds: float = 0.0, *, settle: int = 20) -> None:
        """Move time forward and wake every sleeper whose deadline has come.

        Sleepers wake one deadline at a time, with the time set to that deadline,
        so that what they do next sees the right "now". ``settle`` loop turns are
        given to the woken tasks before returning.
        """
        target = self._now + timedelta(seconds=seconds)
        while True:
            self._drop_cancelled()
            if not self._sleepers or self._sleepers[0][0] > target:
                break
            deadline, _, future = heapq.heappop(self._sleepers)
            self._now = max(self._now, deadline)
            future.set_result(None)
            await _settle(settle)
        self._now = target
        await _settle(settle)

    def set(self, instant: datetime) -> None:
        """Jump to ``instant`` without waking sleepers (for set-up only)."""
        self._now = instant

    def _drop_cancelled(self) -> None:
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)


async def _settle(turns: int) -> None:
    for _ in range(turns):
        await asyncio.sleep(0)


async def first_of(*waits: Awaitable[object]) -> None:
    """Wait until one of ``waits`` is done, then cancel the others and let them finish.

    The engine's idle waits are all "a timer on the clock, or an event":
    whichever comes first ends the wait, and nothing is left running.
    """
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
