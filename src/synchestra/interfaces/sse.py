"""Server-sent events of the engine's bus, for the HTTP API and the dashboard alike.

Each event is sent as ``id: <id>``, ``event: <type>`` and ``data: <JSON>`` (the
event's ``to_dict()``). A ``: keepalive`` comment goes out every ``heartbeat``
seconds of the orchestrator's clock, which is also when a client that went away
without the server noticing is found out.

A reconnecting client sends ``Last-Event-ID``: the stream subscribes first, then
replays what the bus still remembers after that id, then goes live, skipping
live events it already replayed, so there is neither a gap nor a duplicate (as
far back as the bus's window reaches).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse

from synchestra.core.bus import EventBus
from synchestra.core.clock import Clock
from synchestra.core.events import EVENT_TYPES, Event

HEARTBEAT = 15.0
"""Seconds (of the orchestrator's clock) between two ``: keepalive`` comments."""

KEEPALIVE = ": keepalive\n\n"

HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
"""No caching, and no buffering by a reverse proxy (nginx reads ``X-Accel-Buffering``)."""


class BadStreamRequest(ValueError):
    """A stream asked for with a bad parameter: answered 422, naming ``field``."""

    def __init__(self, error: str, field: str, hint: str) -> None:
        super().__init__(error)
        self.field = field
        self.hint = hint


def frame(event: Event) -> str:
    """One event in the SSE wire format."""
    data = json.dumps(event.to_dict(), separators=(",", ":"), default=str)
    return f"id: {event.id}\nevent: {event.type}\ndata: {data}\n\n"


def parse_types(text: str | None) -> frozenset[str] | None:
    """``"run.queued,run.started"`` as a set; None (every type) when absent or empty."""
    if text is None:
        return None
    wanted = frozenset(part.strip() for part in text.split(",") if part.strip())
    unknown = sorted(wanted - EVENT_TYPES)
    if unknown:
        hint = f"one of {', '.join(sorted(EVENT_TYPES))}"
        raise BadStreamRequest(f"unknown event type {unknown[0]!r}", "types", hint)
    return wanted or None


def parse_last_id(header: str | None, query: str | None) -> int | None:
    """The id to resume after: the header wins over the query parameter."""
    text = header if header is not None else query
    if text is None or not text.strip():
        return None
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 18:  # not "²" nor "١٢"
        hint = "an event id (a non-negative integer)"
        raise BadStreamRequest("invalid last event id", "Last-Event-ID", hint)
    return int(text)


async def event_stream(
    bus: EventBus,
    clock: Clock,
    *,
    after: int | None = None,
    types: Collection[str] | None = None,
    heartbeat: float = HEARTBEAT,
    disconnected: Callable[[], Awaitable[bool]] | None = None,
    closing: asyncio.Event | None = None,
) -> AsyncGenerator[str, None]:
    """The SSE frames of ``bus``: replay after ``after``, then live until cancelled.

    Ends when ``disconnected`` says so (asked at every heartbeat and before each
    event) or when ``closing`` is set (the server stops); the subscription is
    closed whichever way the stream ends.
    """
    wanted = frozenset(types) if types is not None else None
    with bus.subscribe(wanted) as subscription:
        replayed = 0  # live events up to this id were already sent from the backlog
        if disconnected is not None and await disconnected():  # also reads the request body
            return
        if after is not None:
            for event in bus.since(after):
                if wanted is None or event.type in wanted:
                    replayed = event.id
                    yield frame(event)
        next_event: asyncio.Task[Event] = asyncio.ensure_future(subscription.get())
        tick: asyncio.Task[None] = asyncio.ensure_future(clock.sleep(heartbeat))
        closed: asyncio.Task[Any] = asyncio.ensure_future((closing or asyncio.Event()).wait())
        try:
            while True:
                await asyncio.wait({next_event, tick, closed}, return_when=asyncio.FIRST_COMPLETED)
                if closed.done() or (disconnected is not None and await disconnected()):
                    return
                if tick.done():
                    tick = asyncio.ensure_future(clock.sleep(heartbeat))
                    yield KEEPALIVE
                if next_event.done():
                    event = next_event.result()
                    next_event = asyncio.ensure_future(subscription.get())
                    if event.id > replayed:
                        yield frame(event)
        finally:
            for task in (next_event, tick, closed):
                task.cancel()
            await asyncio.gather(next_event, tick, closed, return_exceptions=True)


def stream_response(
    request: Request,
    bus: EventBus,
    clock: Clock,
    *,
    after: int | None,
    types: Collection[str] | None = None,
    heartbeat: float = HEARTBEAT,
) -> StreamingResponse:
    """The event stream as an answer, ending when the client goes or the server closes."""
    stream = event_stream(
        bus,
        clock,
        after=after,
        types=types,
        heartbeat=heartbeat,
        disconnected=request.is_disconnected,
        closing=request.app.state.closing,
    )
    return StreamingResponse(stream, media_type="text/event-stream", headers=HEADERS)
