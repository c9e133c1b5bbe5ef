"""Helpers shared by the engine tests: an opened orchestrator, waiting without sleeping."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, TypeVar

from synchestra.config import Config, parse_config
from synchestra.core.bus import Subscription
from synchestra.core.clock import FakeClock
from synchestra.core.events import Event
from synchestra.engine.orchestrator import Orchestrator

T = TypeVar("T")
SAFETY = 5.0
"""Seconds of real time after which a wait fails: a safety net, never a timing."""


@asynccontextmanager
async def opened(
    database_url: str,
    clock: FakeClock,
    config: Config | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    setup: Callable[[Orchestrator], None] | None = None,
) -> AsyncIterator[Orchestrator]:
    """An open orchestrator whose shutdown never waits on the fake clock."""
    orc = Orchestrator(
        config,
        database_url=database_url,
        clock=clock,
        rng=random.Random(7),
        environ=environ if environ is not None else {},
    )
    if setup is not None:
        setup(orc)
    async with orc:
        try:
            yield orc
        finally:
            await orc.stop(grace=timedelta(0))


def cfg(data: Mapping[str, Any]) -> Config:
    return parse_config(data, origin="test")


async def within(awaitable: Awaitable[T], seconds: float = SAFETY) -> T:
    """``awaitable``, or a failure after ``seconds`` of real time (a safety net)."""
    return await asyncio.wait_for(awaitable, seconds)


async def until(predicate: Callable[[], bool | Awaitable[bool]], what: str) -> None:
    """Yield to the loop until ``predicate`` holds (never sleeps on real time)."""

    async def holds() -> bool:
        answer = predicate()
        return answer if isinstance(answer, bool) else await answer

    async def poll() -> None:
        while not await holds():  # noqa: ASYNC110 - state written by other tasks and threads
            await asyncio.sleep(0)

    try:
        await asyncio.wait_for(poll(), SAFETY)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def next_event(sub: Subscription, type_: str, **match: Any) -> Event:
    """The next event of ``type_`` whose data has ``match`` (others are skipped)."""

    async def find() -> Event:
        while True:
            event = await sub.get()
            if event.type == type_ and all(event.data.get(k) == v for k, v in match.items()):
                return event

    try:
        return await asyncio.wait_for(find(), SAFETY)
    except TimeoutError:
        raise AssertionError(f"no {type_} event with {match}") from None
