"""The HTTP client a source uses for its API: credentials, shared limits, error translation.

Every request of every source that uses an API passes through one
:class:`~synchestra.upstream.ratelimit.ApiLimiter` (via :class:`LimitedTransport`), so
the API's rate and concurrency limits hold across sources, and a 429 seen by
one source pauses all of them. httpx errors are translated here, once, into the
exception tree of :mod:`synchestra.core.errors`; no message built here contains a
URL or a credential, because URLs may carry keys.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Generator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from synchestra.core.errors import HTTPFailure, NotConfigured
from synchestra.core.redact import Redactor
from synchestra.upstream.fetch import decode_json, get
from synchestra.upstream.logmask import mask_httpx_request_log
from synchestra.upstream.ratelimit import ApiLimiter, Start

USER_AGENT = "synchestra/0.1"
DEFAULT_RETRY_AFTER = timedelta(seconds=1)
MAX_RETRY_AFTER = timedelta(days=1)
_MAX_SECONDS = MAX_RETRY_AFTER.total_seconds()
_SECONDS = re.compile(r"\d+(?:\.\d+)?")


@dataclass(frozen=True)
class AuthSpec:
    """Where an API's credential comes from (``env``) and where it goes (header or query)."""

    env: str
    header: str | None = None
    query: str | None = None
    required: bool = False

    def __post_init__(self) -> None:
        if (self.header is None) == (self.query is None):
            raise ValueError(f"auth for {self.env}: set exactly one of header and query")


class ApiAuth(httpx.Auth):
    """Adds the credential to every request, as a header or a query parameter."""

    def __init__(self, spec: AuthSpec, credential: str) -> None:
        self._spec = spec
        self._credential = credential

    def __repr__(self) -> str:
        return f"ApiAuth(env={self._spec.env!r})"  # never the credential

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._spec.header is not None:
            request.headers[self._spec.header] = self._credential
        elif self._spec.query is not None:
            request.url = request.url.copy_merge_params({self._spec.query: self._credential})
        yield request


def retry_after_delay(value: str | None, now: datetime) -> timedelta:
    """The wait a ``Retry-After`` header asks for: seconds or an HTTP date.

    A missing or unreadable header means :data:`DEFAULT_RETRY_AFTER`: the API
    throttled us, so some pause is better than hammering it at once. Waits are
    capped at :data:`MAX_RETRY_AFTER` so a garbled header cannot stall an API forever.
    """
    text = (value or "").strip()
    if not text:
        return DEFAULT_RETRY_AFTER
    if _SECONDS.fullmatch(text):
        return timedelta(seconds=min(float(text), _MAX_SECONDS))
    try:
        instant = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER
    if instant.tzinfo is None:  # "-0000" dates are naive; HTTP dates are GMT
        instant = instant.replace(tzinfo=UTC)
    return min(max(instant - now, timedelta(0)), MAX_RETRY_AFTER)


class RequestTally:
    """Requests sent on behalf of one run (see :data:`CURRENT_TALLY`)."""

    def __init__(self) -> None:
        self.count = 0


CURRENT_TALLY: ContextVar[RequestTally | None] = ContextVar("synchestra_tally", default=None)
"""Set by the dispatcher around a run, so that its requests are counted whichever
client sends them: the API's client is shared by every run using the API."""


class LimitedTransport(httpx.AsyncBaseTransport):
    """A transport that keeps to an :class:`ApiLimiter` and honours 429 Retry-After.

    Each request holds a limiter slot until its body has been read, so the
    concurrency limit counts requests really in flight. Every 429 pauses the
    whole API (every source using it) for Retry-After; the request is then sent
    again, at most ``max_429_retries`` times, after which the 429 is returned.
    """

    def __init__(
        self,
        limiter: ApiLimiter,
        inner: httpx.AsyncBaseTransport | None = None,
        *,
        max_429_retries: int = 3,
    ) -> None:
        if max_429_retries < 0:
            raise ValueError("max_429_retries must not be negative")
        self.limiter = limiter
        self.max_429_retries = max_429_retries
        self._inner = inner if inner is not None else httpx.AsyncHTTPTransport()
        self.http_429 = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()  # buffer the body so it can be sent again after a 429
        retries = 0
        while True:
            response = await self._send_in_slot(request)
            if response.status_code != 429:
                return response
            self.http_429 += 1
            self._pause_for(response)  # also after the last try: the next run must wait too
            if retries >= self.max_429_retries:
                return response
            retries += 1

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def _send_in_slot(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` and read the raw body, all while holding a limiter slot."""
        async with self.limiter.slot() as start:
            if (tally := CURRENT_TALLY.get()) is not None:
                tally.count += 1
            request.extensions["trace"] = _when_sent(start)
            response = await self._inner.handle_async_request(request)
            try:
                body = await _read_raw(response)
            finally:
                await response.aclose()
        self.limiter.observe(response.status_code)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=httpx.ByteStream(body),  # raw bytes: the client still decodes them
            extensions=response.extensions,
            request=request,
        )

    def _pause_for(self, response: httpx.Response) -> None:
        now = self.limiter.clock.now()
        delay = retry_after_delay(response.headers.get("Retry-After"), now)
        self.limiter.throttled(now + delay)


def _when_sent(start: Start) -> Callable[[str, dict[str, Any]], Awaitable[None]]:
    """An httpcore trace hook moving the request's start to when its headers are sent.

    A request that first opens a connection arrives later than the limiter let
    it start; counted from its admission, it would make the next window look
    emptier to us than to the provider.
    """

    async def trace(event: str, info: dict[str, Any]) -> None:  # httpcore awaits it
        if event.endswith("send_request_headers.started"):
            start.sent()

    return trace


async def _read_raw(response: httpx.Response) -> bytes:
    """The body as sent, still content-encoded: the client decodes it later, once.

    Reads the transport's stream directly because ``aiter_raw`` refuses
    responses whose content was already loaded (as ``MockTransport`` hands them out).
    """
    stream = response.stream
    if not isinstance(stream, httpx.AsyncByteStream):
        raise TypeError("LimitedTransport needs an async transport")
    return b"".join([chunk async for chunk in stream])


def build_client(
    *,
    api: str,
    base_url: str,
    auth: AuthSpec | None,
    limiter: ApiLimiter,
    environ: Mapping[str, str],
    redactor: Redactor,
    transport: httpx.AsyncBaseTransport | None = None,
    timeout: float = 30.0,
) -> httpx.AsyncClient:
    """The client for ``api``: credential from ``environ``, requests through ``limiter``.

    Raises :class:`NotConfigured` when a required credential is missing, so the
    run is skipped rather than failing against the API. ``transport`` replaces
    the network (tests pass an :class:`httpx.MockTransport`); the limiter wraps
    it either way. The timeout applies to network operations only, not to
    waiting for the limiter.
    """
    mask_httpx_request_log()
    client_auth: ApiAuth | None = None
    if auth is not None:
        credential = environ.get(auth.env, "")
        if credential:
            redactor.add(credential)
            client_auth = ApiAuth(auth, credential)
        elif auth.required:
            raise NotConfigured(f"not configured: {auth.env} is not set")
    return httpx.AsyncClient(
        base_url=base_url,
        auth=client_auth,
        transport=LimitedTransport(limiter, transport),
        timeout=timeout,
        headers={"User-Agent": USER_AGENT},
    )


async def get_json(
    client: httpx.AsyncClient, api: str, url: str, params: Mapping[str, Any] | None = None
) -> Any:
    """GET ``url`` and return its JSON, translating failures into synchestra errors.

    Error statuses become :class:`HTTPFailure` (429 and 5xx retryable), network
    errors :class:`RetryableError`, a body that is not JSON a plain (final)
    :class:`SyncError`. Messages name the API, never the URL.
    """
    response = await get(client, api, url, params)
    if response.status_code >= 400:
        raise HTTPFailure(response.status_code, api)
    return decode_json(response, api)
