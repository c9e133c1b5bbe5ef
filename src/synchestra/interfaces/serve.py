"""``synchestra serve``: the scheduler, the workers and the HTTP API in one process.

The API token comes from the environment variable the config names. Without
one, the API would be open to anyone who can reach the port, so ``serve``
refuses to start unless it is bound to loopback and told ``--no-auth``.

SIGTERM and SIGINT stop it gracefully: the engine stops claiming at once, the
API stops, running runs get ``[engine] grace``, the rest are handed back
(``interrupted``, queued again), and the process exits 0. uvicorn on its own
re-raises the signal it caught once it has stopped, which killed the process
(status 143) before the engine could stop; :class:`ServeServer` does not.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Generator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType

from fastapi import FastAPI

from synchestra.config import ApiServerConfig
from synchestra.core.errors import ConfigError
from synchestra.engine.orchestrator import Orchestrator
from synchestra.interfaces.http import create_app
from synchestra.interfaces.servers import ApiServer


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api_token(
    settings: ApiServerConfig, environ: Mapping[str, str], *, no_auth: bool
) -> str | None:
    """The bearer token, or None when running without auth is allowed."""
    token = environ.get(settings.token_env, "")
    if token:
        return token
    if no_auth and is_loopback(settings.host):
        return None
    if no_auth:
        raise ConfigError(f"--no-auth is only allowed on a loopback address, not {settings.host}")
    raise ConfigError(
        f"no API token: set {settings.token_env} (api_server.token_env), "
        "or pass --no-auth with a loopback host"
    )


class ServeServer(ApiServer):
    """The API server of ``serve``: a stop signal stops claiming too, and is not re-raised."""

    def __init__(self, app: FastAPI, orc: Orchestrator, settings: ApiServerConfig) -> None:
        super().__init__(app, host=settings.host, port=settings.port, log_level="info")
        self._orc = orc
        self._loop = asyncio.get_running_loop()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        # A signal handler interrupts the event loop anywhere: hand the stop to the loop.
        self._loop.call_soon_threadsafe(self._orc.request_stop)

    @contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        with super().capture_signals():
            yield
            self._captured_signals.clear()  # handled: serve() stops the engine, then exits 0


@dataclass(frozen=True)
class Roles:
    """What ``serve`` does besides the API (``--no-scheduler``, ``--no-workers`` leave them out)."""

    scheduler: bool = True
    workers: bool = True


async def serve(
    orc: Orchestrator, settings: ApiServerConfig, token: str | None, roles: Roles = Roles()
) -> None:
    """Run until SIGINT/SIGTERM, then stop the orchestrator gracefully (see the module)."""
    async with orc:
        app = create_app(orc, token=token)
        server = ServeServer(app, orc, settings)
        await start_roles(orc, roles)
        await server.serve()
        await orc.stop()


async def start_roles(orc: Orchestrator, roles: Roles) -> None:
    """Listed with the API role; the loop runs when this process works or schedules.

    With ``--no-workers`` the loop still runs (it may be the scheduler) but claims
    nothing.
    """
    await orc.join(["api"])
    if roles.workers or roles.scheduler:
        orc.start(schedule=roles.scheduler, work=roles.workers)
