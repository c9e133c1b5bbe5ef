"""The running simulator: uvicorn in-process on a loopback port.

``async with run_simulator(SimulatorConfig(...)) as sim:`` binds
127.0.0.1 (port 0 picks a free one), serves every API from one uvicorn
server running as a task of the current event loop, and on exit releases any
request held by a timeout fault, asks uvicorn to stop and waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import asdict, replace
from typing import Any

import uvicorn

from synchestra.core.errors import InputError
from synchestra.interfaces.servers import bind_loopback, wait_started
from synchestra.simulator.app import PREFIXES, build_app
from synchestra.simulator.config import API_NAMES, ApiConfig, ApiName, SimulatorConfig
from synchestra.simulator.counters import ApiCounters
from synchestra.simulator.dataset import FmcsaData
from synchestra.simulator.erp_data import ErpStore
from synchestra.simulator.runtime import ApiRuntime

HOST = "127.0.0.1"
STOP_TIMEOUT = 10.0
GRACEFUL_SECONDS = 2
WAIT_LIMIT = 10.0


class SimulatorError(RuntimeError):
    """The simulator could not start (port taken) or is not running."""


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers: the embedding program owns signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Simulator:
    """The simulated APIs, their data and their live configuration."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.data = FmcsaData(config)
        self.erp = ErpStore(config.seed, config.erp_sizes, config.as_of)
        self._stopping = asyncio.Event()
        self._runtimes: dict[ApiName, ApiRuntime] = {
            name: ApiRuntime(name, config.api(name), config.seed, self._stopping)
            for name in API_NAMES
        }
        self.app = build_app(self.data, self.erp, self._runtimes, self.counters_json, self.reset)
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise SimulatorError("the simulator is not running")
        return self._port

    @property
    def url(self) -> str:
        """The root URL (``/_counters`` lives here)."""
        return f"http://{HOST}:{self.port}"

    def base_url(self, api: ApiName) -> str:
        """Where a client should point for ``api``, e.g. ``http://127.0.0.1:PORT/datahub``."""
        return self.url + PREFIXES[api]

    def base_urls(self) -> dict[ApiName, str]:
        return {name: self.base_url(name) for name in API_NAMES}

    @property
    def counters_url(self) -> str:
        return f"{self.url}/_counters"

    def counters(self) -> dict[ApiName, ApiCounters]:
        """A detached copy of every API's counters."""
        return {name: runtime.counters.snapshot() for name, runtime in self._runtimes.items()}

    def counters_json(self) -> dict[str, Any]:
        """What ``GET /_counters`` answers: counters and current config per API."""
        return {
            "apis": {
                name: {**runtime.counters.as_dict(), "config": asdict(runtime.config)}
                for name, runtime in self._runtimes.items()
            }
        }

    def reset(self, api: ApiName | None = None) -> None:
        """Zero the counters and restart rate windows, bursts and fault RNGs."""
        for name in [api] if api else API_NAMES:
            self._runtimes[name].reset()

    def api_config(self, api: ApiName) -> ApiConfig:
        return self._runtimes[api].config

    def configure(self, api: ApiName, config: ApiConfig) -> None:
        """Swap one API's config while running (e.g. turn a fault on mid-test)."""
        self._runtimes[api].configure(config)

    def fail_next(self, api: ApiName, count: int, status: int = 503, after: int = 0) -> None:
        """Make ``count`` requests to ``api`` fail with ``status``, after ``after`` more succeed.

        ``after=2`` fails the third request from now: page 3 of a paged read.
        """
        self._runtimes[api].fail_next(count, status, after)

    def release_held(self, api: ApiName | None = None) -> None:
        """End every request a timeout fault holds now (they answer 504 at once)."""
        for name in [api] if api else API_NAMES:
            self._runtimes[name].release_held()

    async def wait_for_held(self, api: ApiName, count: int) -> None:
        """Wait until ``count`` requests to ``api`` are held by timeout faults.

        Lets a test act while requests are provably inside the server, without
        guessing with sleeps; raises TimeoutError after :data:`WAIT_LIMIT` seconds.
        """
        runtime = self._runtimes[api]
        async with asyncio.timeout(WAIT_LIMIT):
            while runtime.counters.held < count:
                runtime.hold_started.clear()
                await runtime.hold_started.wait()

    async def start(self) -> None:
        """Bind the port, start uvicorn as a task and wait until it serves."""
        if self._task is not None:
            raise SimulatorError("the simulator is already running")
        try:
            sock = bind_loopback(self.config.port)
        except InputError as error:
            raise SimulatorError(str(error)) from None
        self._port = int(sock.getsockname()[1])
        self._stopping.clear()
        config = uvicorn.Config(
            self.app,
            host=HOST,
            port=self._port,
            http="h11",
            ws="none",
            lifespan="off",
            log_config=None,
            log_level="warning",
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=GRACEFUL_SECONDS,
        )
        self._server = _EmbeddedServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        try:
            try:
                await wait_started(self._server, self._task)
            except RuntimeError as error:
                raise SimulatorError(f"the simulator did not start: {error}") from None
        except BaseException:
            await self.stop()
            sock.close()
            raise

    async def stop(self) -> None:
        """Release held requests, stop uvicorn and wait for it (bounded)."""
        server, task = self._server, self._task
        self._server = self._task = None
        if server is None or task is None:
            return
        self._stopping.set()
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), STOP_TIMEOUT)
        except TimeoutError:
            server.force_exit = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._port = None


@contextlib.asynccontextmanager
async def run_simulator(
    config: SimulatorConfig | None = None, **overrides: Any
) -> AsyncIterator[Simulator]:
    """Run the simulator for the duration of the block.

    ``overrides`` are :class:`SimulatorConfig` fields, for brevity:
    ``run_simulator(carriers=3, seed=7)``.
    """
    base = config or SimulatorConfig()
    simulator = Simulator(_replace(base, overrides))
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


def _replace(config: SimulatorConfig, overrides: Mapping[str, Any]) -> SimulatorConfig:
    return replace(config, **overrides) if overrides else config
