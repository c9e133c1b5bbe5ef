"""``GET /api/events``: server-sent events of the bus, resumable, with heartbeats.

``httpx.ASGITransport`` collects a whole response body before answering, so an
endless stream is read by driving the ASGI app directly (:class:`Stream`): the
response's chunks arrive as the app sends them and the test decides when the
client goes away. Waits are bounded by a real-time safety net; the heartbeat
follows the fake clock.

A sync's events come from the engine working on the database, so that stream is
tested on each database of ``database_url``; the tests that publish on the bus
themselves never read the database and run on SQLite only (:data:`SQLITE_ONLY`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api_helpers import SQLITE_ONLY
from engine_helpers import opened, until, within
from synchestra.connectors.context import SyncContext
from synchestra.core.bus import EventBus
from synchestra.core.clock import FakeClock
from synchestra.core.events import HealthChanged, RunFailed, RunQueued, RunRef, RunStarted
from synchestra.engine.orchestrator import Orchestrator
from synchestra.interfaces.http import create_app
from synchestra.interfaces.sse import HEARTBEAT, event_stream

TOKEN = "s3cret-token-value"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def setup(orc: Orchestrator) -> None:
    @orc.source("catalog")
    async def catalog(ctx: SyncContext) -> None:
        await ctx.upsert("item", [{"id": 1}], key="id")


@pytest.fixture
async def orc(database_url: str, clock: FakeClock) -> AsyncIterator[Orchestrator]:
    async with opened(database_url, clock, setup=setup) as orchestrator:
        yield orchestrator


@pytest.fixture
def app(orc: Orchestrator) -> FastAPI:
    return create_app(orc, token=TOKEN)


@dataclass
class Frame:
    id: int | None = None
    event: str | None = None
    data: dict[str, Any] | None = None
    comments: list[str] = field(default_factory=list)


def parse_frame(text: str) -> Frame:
    frame = Frame()
    for line in text.split("\n"):
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "":
            frame.comments.append(value)
        elif name == "id":
            frame.id = int(value)
        elif name == "event":
            frame.event = value
        elif name == "data":
            frame.data = json.loads(value)
    return frame


class Stream:
    """One GET driven through the ASGI app: chunks as sent, a disconnect on demand."""

    def __init__(self, app: FastAPI, path: str, headers: dict[str, str], spec: str) -> None:
        self._app = app
        self._path, _, self._query = path.partition("?")
        self._headers = headers
        self._spec = spec
        self._asked = False
        self._gone = asyncio.Event()
        self._chunks: asyncio.Queue[bytes] = asyncio.Queue()
        self._buffer = ""
        self.started: asyncio.Future[MutableMapping[str, Any]] = (
            asyncio.get_running_loop().create_future()
        )
        self.ended = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def open(self) -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": self._spec},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": self._path,
            "raw_path": self._path.encode(),
            "query_string": self._query.encode(),
            "root_path": "",
            "headers": [(k.lower().encode(), v.encode()) for k, v in self._headers.items()],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80),
        }
        self.task = asyncio.create_task(self._app(scope, self._receive, self._send))

    async def _receive(self) -> dict[str, Any]:
        if not self._asked:
            self._asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self._gone.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.started.set_result(message)
        elif message["type"] == "http.response.body":
            self._chunks.put_nowait(message.get("body", b""))
            if not message.get("more_body", False):
                self.ended.set()

    async def frame(self) -> Frame:
        """The next frame (an event or a comment)."""
        while "\n\n" not in self._buffer:
            self._buffer += (await within(self._chunks.get())).decode()
        text, self._buffer = self._buffer.split("\n\n", 1)
        return parse_frame(text)

    async def frames(self, count: int) -> list[Frame]:
        return [await self.frame() for _ in range(count)]

    def disconnect(self) -> None:
        self._gone.set()

    async def close(self) -> None:
        self.disconnect()
        if self.task is not None:
            await within(self.task)


@pytest.fixture
async def streams(app: FastAPI) -> AsyncIterator[list[Stream]]:
    opened_streams: list[Stream] = []
    yield opened_streams
    for stream in opened_streams:
        await stream.close()


async def open_stream(
    app: FastAPI,
    streams: list[Stream],
    path: str = "/api/events",
    headers: dict[str, str] | None = None,
    spec: str = "2.3",
) -> Stream:
    """A stream whose subscription is open (its response has started)."""
    stream = Stream(app, path, AUTH | (headers or {}), spec)
    streams.append(stream)
    stream.open()
    start = await within(stream.started)
    assert start["status"] == 200
    assert dict(start["headers"])[b"content-type"].startswith(b"text/event-stream")
    return stream


def queued(at: datetime, run_id: str) -> RunQueued:
    return RunQueued(at=at, run=RunRef(run_id, "x"), priority=0, not_before=None)


def subscribers(bus: EventBus) -> int:
    return bus.subscriber_count  # the stream's subscription must not outlive it


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1", headers=AUTH
    )


# --- live events ---------------------------------------------------------------------------


async def test_a_queued_sync_streams_queued_started_succeeded_in_order(
    orc: Orchestrator, app: FastAPI, clock: FakeClock, streams: list[Stream]
) -> None:
    stream = await open_stream(app, streams)
    await until(lambda: clock.next_deadline is not None, "the stream to wait for events")
    async with client(app) as api:
        response = await api.post("/api/sync/catalog")
    assert response.status_code == 202
    (run,) = response.json()["runs"]
    orc.start(schedule=False)

    seen: list[Frame] = []
    while not seen or seen[-1].event != "run.succeeded":
        frame = await stream.frame()
        if frame.event is not None and frame.event.startswith("run."):
            seen.append(frame)
    assert [frame.event for frame in seen] == ["run.queued", "run.started", "run.succeeded"]
    for frame in seen:
        assert frame.data is not None and frame.data["type"] == frame.event
        assert frame.data["id"] == run["id"] and frame.data["source"] == "catalog"
        assert frame.data["at"].endswith("Z")
    ids = [frame.id for frame in seen if frame.id is not None]
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert seen[-1].data is not None and seen[-1].data["result"]["created"] == 1


@SQLITE_ONLY
async def test_types_filter_keeps_only_those_types(
    orc: Orchestrator, app: FastAPI, streams: list[Stream]
) -> None:
    stream = await open_stream(app, streams, "/api/events?types=run.started,%20run.failed")
    now, run = orc.clock.now(), RunRef("1", "x")
    orc.bus.publish(queued(now, "1"))
    orc.bus.publish(RunStarted(at=now, run=run))
    orc.bus.publish(
        HealthChanged(at=now, source="x", healthy=True, consecutive_failures=0, stale=False)
    )
    orc.bus.publish(RunFailed(at=now, run=run, attempts=1, error="boom", result={}))
    frames = await stream.frames(2)
    assert [(frame.event, frame.id) for frame in frames] == [("run.started", 2), ("run.failed", 4)]


# --- resuming ------------------------------------------------------------------------------


@SQLITE_ONLY
async def test_last_event_id_replays_only_later_events_then_goes_live(
    orc: Orchestrator, app: FastAPI, streams: list[Stream]
) -> None:
    now = orc.clock.now()
    first = [orc.bus.publish(queued(now, str(n))) for n in range(1, 6)]
    stream = await open_stream(app, streams, headers={"Last-Event-ID": str(first[2].id)})
    replayed = await stream.frames(2)
    assert [frame.id for frame in replayed] == [first[3].id, first[4].id]
    assert [frame.data["id"] for frame in replayed if frame.data] == ["4", "5"]
    live = orc.bus.publish(RunStarted(at=now, run=RunRef("5", "x")))
    (frame,) = await stream.frames(1)
    assert (frame.id, frame.event) == (live.id, "run.started")  # no duplicate, no gap

    by_query = await open_stream(app, streams, f"/api/events?last_event_id={first[3].id}")
    assert [frame.id for frame in await by_query.frames(2)] == [first[4].id, live.id]


@SQLITE_ONLY
async def test_resuming_after_a_restart_does_not_swallow_new_events(
    orc: Orchestrator, app: FastAPI, streams: list[Stream]
) -> None:
    """A Last-Event-ID from an earlier process (beyond this bus's ids) still gets live events."""
    stream = await open_stream(app, streams, headers={"Last-Event-ID": "9999"})
    event = orc.bus.publish(queued(orc.clock.now(), "1"))
    (frame,) = await stream.frames(1)
    assert frame.id == event.id


async def test_the_generator_skips_live_events_it_already_replayed() -> None:
    clock = FakeClock()
    bus = EventBus()
    for n in range(3):
        bus.publish(queued(clock.now(), str(n)))
    stream = event_stream(bus, clock, after=1)
    assert parse_frame((await within(anext(stream))).strip()).id == 2
    assert parse_frame((await within(anext(stream))).strip()).id == 3
    pending = asyncio.ensure_future(anext(stream))
    await until(lambda: subscribers(bus) == 1 and clock.next_deadline is not None, "waiting")
    bus.publish(RunStarted(at=clock.now(), run=RunRef("2", "x")))
    assert parse_frame((await within(pending)).strip()).id == 4
    await stream.aclose()
    assert subscribers(bus) == 0


# --- heartbeat and disconnection -------------------------------------------------------------


@SQLITE_ONLY
async def test_a_keepalive_comment_follows_the_clock(
    app: FastAPI, clock: FakeClock, streams: list[Stream]
) -> None:
    stream = await open_stream(app, streams)
    await until(lambda: clock.next_deadline is not None, "the heartbeat timer")
    assert clock.next_deadline == clock.now() + timedelta(seconds=HEARTBEAT)
    await clock.advance(HEARTBEAT)
    (frame,) = await stream.frames(1)
    assert frame.comments == ["keepalive"] and frame.event is None
    await until(lambda: clock.next_deadline is not None, "the next heartbeat timer")
    assert clock.next_deadline == clock.now() + timedelta(seconds=HEARTBEAT)


@SQLITE_ONLY
@pytest.mark.parametrize("spec", ["2.3", "2.4"])
async def test_a_client_that_goes_away_ends_the_stream_and_its_subscription(
    orc: Orchestrator, app: FastAPI, clock: FakeClock, streams: list[Stream], spec: str
) -> None:
    before = subscribers(orc.bus)
    stream = await open_stream(app, streams, spec=spec)
    await until(lambda: clock.next_deadline is not None, "the heartbeat timer")
    assert subscribers(orc.bus) == before + 1
    stream.disconnect()
    if spec == "2.4":  # the server tells no one: the next heartbeat finds out
        await clock.advance(HEARTBEAT)
    assert stream.task is not None
    await within(stream.task)
    assert subscribers(orc.bus) == before
    assert clock.next_deadline is None  # no heartbeat timer left behind


# --- errors ------------------------------------------------------------------------------------


@SQLITE_ONLY
async def test_events_need_the_token_and_refuse_bad_parameters(app: FastAPI) -> None:
    async with client(app) as api:
        missing = await api.get("/api/events", headers={"Authorization": ""})
        assert missing.status_code == 401
        assert missing.json()["error"] == "missing bearer token"
        wrong = await api.get("/api/events", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 403
        bad_type = await api.get("/api/events", params={"types": "run.queued,run.exploded"})
        assert bad_type.status_code == 422
        assert "run.exploded" in bad_type.json()["error"]
        bad_id = await api.get("/api/events", headers={"Last-Event-ID": "abc"})
        assert bad_id.status_code == 422
        assert bad_id.json()["detail"][0]["field"] == "Last-Event-ID"
        document = (await api.get("/openapi.json")).json()
    assert (
        "text/event-stream"
        in document["paths"]["/api/events"]["get"]["responses"]["200"]["content"]
    )
