"""The API served by uvicorn on loopback: stopping it ends open event streams cleanly."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import httpx

from engine_helpers import opened, within
from synchestra.core.clock import FakeClock
from synchestra.interfaces.http import create_app
from synchestra.interfaces.servers import serving


async def test_stopping_the_server_ends_open_event_streams(
    database_url: str, clock: FakeClock
) -> None:
    """Without this, uvicorn would wait for the stream, then cancel it mid-response."""
    async with opened(database_url, clock) as orc, httpx.AsyncClient() as client:
        stack = AsyncExitStack()
        port = await stack.enter_async_context(serving(create_app(orc, token=None)))
        url = f"http://127.0.0.1:{port}/api/events"
        async with client.stream("GET", url) as response:
            assert response.status_code == 200
            reading = asyncio.create_task(response.aread())
            await within(stack.aclose())
            assert await within(reading) == b""  # a complete response, not a broken one
