"""Running uvicorn inside an asyncio program (the demo's API and dashboard, the simulator)."""

from __future__ import annotations

import asyncio
import gc
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from synchestra.core.errors import InputError
from synchestra.interfaces.http.app import end_streams

HOST = "127.0.0.1"
START_TIMEOUT = 10.0
SHUTDOWN_GRACE = 2
"""Seconds requests still running (a dashboard's event stream) get when the server stops."""


def bind_loopback(port: int) -> socket.socket:
    """A listening-ready TCP socket on 127.0.0.1 (port 0: the OS picks).

    Binding here, before uvicorn, turns a taken port into a clear error instead
    of uvicorn's exit. The protocol is named explicitly: asyncio only sets
    ``TCP_NODELAY`` on sockets whose ``proto`` is TCP, and without it every
    keep-alive request waits ~40 ms for a delayed ACK.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, port))
    except OSError as error:
        sock.close()
        raise InputError(f"cannot listen on {HOST}:{port}: {error.strerror}") from None
    return sock


async def wait_started(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    """Wait until ``server`` listens; raise if its task ended first or it took too long.

    uvicorn offers no event for this, only the ``started`` flag, so it is polled
    (bounded by :data:`START_TIMEOUT`).
    """
    deadline = asyncio.get_running_loop().time() + START_TIMEOUT
    while not server.started:
        if task.done():
            await task  # raises why it stopped (e.g. the port is taken)
            raise RuntimeError("the HTTP server stopped while starting")
        if asyncio.get_running_loop().time() > deadline:
            raise RuntimeError(f"the HTTP server did not start within {START_TIMEOUT:g}s")
        await asyncio.sleep(0.005)


class ApiServer(uvicorn.Server):
    """uvicorn serving the API: ends its event streams first when it stops.

    uvicorn waits for running requests before it stops, and an event stream
    runs until its client goes; so the streams are told to end, and the rest
    get :data:`SHUTDOWN_GRACE` seconds.
    """

    def __init__(self, app: FastAPI, *, host: str = HOST, port: int = 0, log_level: str) -> None:
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            lifespan="off",
            log_level=log_level,
            timeout_graceful_shutdown=SHUTDOWN_GRACE,
        )
        super().__init__(config)
        self._app = app

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        # Everything imported and built so far lives as long as the server: keep it out
        # of the garbage collector's full passes, which otherwise stall every request
        # for ~100 ms a few times a minute under load.
        gc.collect()
        gc.freeze()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        end_streams(self._app)
        await super().shutdown(sockets)


@asynccontextmanager
async def serving(app: FastAPI, port: int = 0) -> AsyncIterator[int]:
    """Serve the API ``app`` on 127.0.0.1 while the block runs; yields the bound port."""
    server = ApiServer(app, port=port, log_level="warning")
    sock = bind_loopback(port)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await wait_started(server, task)
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await task
        sock.close()
