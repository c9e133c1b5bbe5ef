"""ASGI middleware in front of each API: counting, limits, latency and faults.

The routes only know how to answer correctly; everything that makes an API
hard to live with happens here, in this order: count the request (and its
concurrency), refuse over the concurrency cap, refuse over the rate, wait
the latency, then maybe replace or damage the answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from synchestra.simulator.config import MAX_HOLD_SECONDS
from synchestra.simulator.faults import Fault
from synchestra.simulator.responses import error_response, maintenance_response
from synchestra.simulator.runtime import ApiRuntime

TargetOf = Callable[[Scope], str | None]
MAX_RECEIVES = 10_000
MALFORMED_TAIL = b"\n<!-- upstream error -->"


class Gate:
    """Wraps one API's app with its :class:`ApiRuntime`."""

    def __init__(self, app: ASGIApp, runtime: ApiRuntime, target_of: TargetOf) -> None:
        self.app, self.runtime, self.target_of = app, runtime, target_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        runtime = self.runtime
        target = self.target_of(scope)
        send = _recording(send, runtime)
        runtime.counters.enter(target)
        try:
            await self._admit_and_serve(scope, receive, send, target)
        finally:
            runtime.counters.leave(target)

    async def _admit_and_serve(
        self, scope: Scope, receive: Receive, send: Send, target: str | None
    ) -> None:
        runtime = self.runtime
        if runtime.over_concurrency():
            runtime.counters.over_concurrency += 1
            await _too_many(runtime, 1)(scope, receive, send)
            return
        wait = runtime.over_rate()
        if wait is not None:
            runtime.counters.rate_limited += 1
            await _too_many(runtime, wait)(scope, receive, send)
            return
        if runtime.config.latency:
            await asyncio.sleep(runtime.config.latency)
        fault = runtime.fault_for(target)
        if fault is None:
            await self.app(scope, receive, send)
        else:
            await self._inject(fault, scope, receive, send)

    async def _inject(self, fault: Fault, scope: Scope, receive: Receive, send: Send) -> None:
        runtime = self.runtime
        if fault.kind == "maintenance":
            await maintenance_response()(scope, receive, send)
        elif fault.kind == "timeout":
            await hold(runtime, runtime.config.faults.timeout_seconds, receive)
            await error_response(runtime.name, 504, "Gateway Timeout")(scope, receive, send)
        elif fault.kind in ("malformed", "truncated"):
            await self._damaged(fault, scope, receive, send)
        else:
            headers = {"Retry-After": "1"} if fault.status == 429 else None
            await error_response(runtime.name, fault.status, headers=headers)(scope, receive, send)

    async def _damaged(self, fault: Fault, scope: Scope, receive: Receive, send: Send) -> None:
        """The real answer, then broken: cut in half, or trailed by garbage."""
        start, body = await _capture(self.app, scope, receive)
        if fault.kind == "truncated":
            body = body[: max(1, len(body) // 2)]
        else:
            body += MALFORMED_TAIL
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _too_many(runtime: ApiRuntime, retry_after: int) -> ASGIApp:
    return error_response(runtime.name, 429, headers={"Retry-After": str(retry_after)})


def _recording(send: Send, runtime: ApiRuntime) -> Send:
    """``send`` that also counts the status of every response."""

    async def recording_send(message: Message) -> None:
        if message["type"] == "http.response.start":
            runtime.counters.responded(int(message["status"]))
        await send(message)

    return recording_send


async def _capture(app: ASGIApp, scope: Scope, receive: Receive) -> tuple[Message, bytes]:
    """Run ``app`` and collect its response instead of sending it."""
    start: Message = {"type": "http.response.start", "status": 500, "headers": []}
    chunks: list[bytes] = []

    async def collect(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, collect)
    return start, b"".join(chunks)


async def hold(runtime: ApiRuntime, seconds: float, receive: Receive) -> None:
    """Wait ``seconds`` (bounded), until released, or while the client and server stay.

    The release event is taken before the first await, so a release that
    comes after the request was counted as held always reaches it.
    """
    released = runtime.released
    runtime.counters.held += 1
    runtime.hold_started.set()
    waits = {
        asyncio.ensure_future(asyncio.sleep(min(seconds, MAX_HOLD_SECONDS))),
        asyncio.ensure_future(released.wait()),
        asyncio.ensure_future(runtime.stopping.wait()),
        asyncio.ensure_future(_disconnected(receive)),
    }
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        runtime.counters.held -= 1
        for waiting in waits:
            waiting.cancel()
        await asyncio.gather(*waits, return_exceptions=True)


async def _disconnected(receive: Receive) -> None:
    """Return once the client has gone away."""
    for _ in range(MAX_RECEIVES):
        message = await receive()
        if message["type"] == "http.disconnect":
            return
