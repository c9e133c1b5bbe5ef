"""The external APIs a process talks to: one limiter and one client per API.

Every source that names an API shares its limiter (rate, concurrency, the
pause after a 429) and its ``httpx.AsyncClient``. Credentials are read from the
environment when first needed and registered with the redactor at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

import httpx

from synchestra.config import Config
from synchestra.core.clock import Clock
from synchestra.core.errors import NotConfigured
from synchestra.core.redact import Redactor
from synchestra.upstream.client import AuthSpec, build_client
from synchestra.upstream.ratelimit import ApiLimiter


class Apis:
    def __init__(
        self,
        config: Config,
        *,
        clock: Clock,
        environ: Mapping[str, str],
        redactor: Redactor,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.environ = environ
        self.redactor = redactor
        self.transport = transport
        self._limiters: dict[str, ApiLimiter] = {}
        self._clients: dict[str, httpx.AsyncClient] = {}

    def limiter(self, api: str) -> ApiLimiter:
        if api not in self._limiters:
            settings = self.config.api(api)
            self._limiters[api] = ApiLimiter(api, settings.rate, settings.concurrency, self.clock)
        return self._limiters[api]

    def client(self, api: str) -> httpx.AsyncClient:
        if api not in self._clients:
            settings = self.config.api(api)
            auth = settings.auth
            spec = (
                AuthSpec(env=auth.env, header=auth.header, query=auth.query, required=auth.required)
                if auth
                else None
            )
            self._clients[api] = build_client(
                api=api,
                base_url=settings.base_url,
                auth=spec,
                limiter=self.limiter(api),
                environ=self.environ,
                redactor=self.redactor,
                transport=self.transport,
            )
        return self._clients[api]

    def check_credentials(self, api: str) -> None:
        """Raise NotConfigured when ``api`` needs a credential that is not set.

        A credential that is set is registered for masking here, so that it is
        masked even in errors of a source that never builds a client.
        """
        auth = self.config.api(api).auth
        if auth is None:
            return
        credential = self.environ.get(auth.env)
        if credential:
            self.redactor.add(credential)
        elif auth.required:
            raise NotConfigured(f"not configured: {auth.env} is not set")

    def caps(self, names: Iterable[str]) -> dict[str, int]:
        """The concurrency cap of each of these APIs that has one."""
        caps = {}
        for name in names:
            concurrency = self.limiter(name).concurrency
            if concurrency is not None:
                caps[name] = concurrency
        return caps

    def saturated(self, names: Iterable[str], now: datetime) -> frozenset[str]:
        """The APIs with no rate room at ``now``, or paused after a 429."""
        return frozenset(name for name in names if self.limiter(name).available_at(now) > now)

    def next_room(self, now: datetime) -> list[datetime]:
        """When each saturated API has room again."""
        return [at for at in (lim.available_at(now) for lim in self._limiters.values()) if at > now]

    def stats(self) -> dict[str, dict[str, int]]:
        return {name: _stats(limiter) for name, limiter in self._limiters.items()}

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()


def _stats(limiter: ApiLimiter) -> dict[str, int]:
    numbers = {
        "requests": limiter.requests_started,
        "http_429": limiter.http_429,
        "peak_in_flight": limiter.peak_in_flight,
        "backoffs": limiter.backoffs,
    }
    if limiter.rate is not None:
        numbers["allowed"] = limiter.allowed
    return numbers
