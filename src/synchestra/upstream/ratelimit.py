"""The per-API request limit shared by every source that talks to the same API.

An API's limits (``rate`` and ``concurrency`` in the config) belong to the API,
not to a source: three sources reading one API must share one budget, or
together they would exceed what the provider allows. :class:`ApiLimiter` is that
budget. HTTP clients take a :meth:`ApiLimiter.slot` around each request (see
:mod:`synchestra.upstream.client`) and the scheduler asks :meth:`ApiLimiter.has_room` before
claiming work for a source, so it does not start syncs that would only queue.

The rate is a *sliding log*, not a token bucket: a token bucket that starts full
lets ``N`` requests through at once and then refills, which exceeds "``N`` per
period" in the first window. Keeping the last ``N`` start times and admitting a
start only once the oldest of them is a full period old guarantees that no
window of ``period`` ever holds more than ``N`` starts. The provider counts
arrivals, not our starts, so a start counts from when the request really left
(:meth:`Start.sent`: a request that first opens a connection leaves later than
it was admitted), and the period is lengthened by a small ``guard`` (2 % of
it, at least 10 ms) for the jitter that remains.

**Shared backoff (AIMD).** When the provider's real limit is lower than the
configured one, the limiter finds it: the number of requests it allows per
period (``allowed``) halves on a 429, or on a burst of server errors (3 within
one period), at most once per period so that the answers to requests already in
flight count as one signal; then, after each full period without a decrease,
it grows again by a tenth of the configured rate (at least 1), never above the
configured rate. Every source and target using the API shares the limiter, so
they slow down and recover together. A 429's ``Retry-After`` also pauses the
API (:meth:`ApiLimiter.pause_until`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from synchestra.core.clock import Clock, sleep_until
from synchestra.core.durations import Rate

DEFAULT_GUARD = timedelta(milliseconds=10)
GUARD_SHARE = 0.02
"""The guard is at least this share of the period (20 ms for a per-second rate)."""
SERVER_ERRORS = frozenset({500, 502, 503, 504})
SERVER_ERROR_BURST = 3
"""Server errors within one period that count as a burst (a signal to slow down)."""


class Start:
    """When a request started, as the rate limit counts it."""

    def __init__(self, at: datetime, clock: Clock) -> None:
        self.at = at
        self._clock = clock

    def sent(self) -> None:
        """The request leaves only now: count it from now (later is always safe)."""
        self.at = max(self.at, self._clock.now())


class ApiLimiter:
    """Rate, concurrency and pause limits of one API, fair to waiters in arrival order.

    Waiters queue on a FIFO lock; only the head of the queue waits for the
    limits, so a request that arrived later can never overtake an earlier one.
    Nothing is recorded until a request actually starts, which is what makes
    cancelling a waiter safe: it leaves neither a start in the log nor a held slot.
    """

    def __init__(
        self,
        name: str,
        rate: Rate | None,
        concurrency: int | None,
        clock: Clock,
        *,
        guard: timedelta = DEFAULT_GUARD,
    ) -> None:
        if rate is not None and (rate.requests < 1 or rate.period.total_seconds() <= 0):
            raise ValueError(f"api {name!r}: rate must allow at least one request per period")
        if concurrency is not None and concurrency < 1:
            raise ValueError(f"api {name!r}: concurrency must be at least 1")
        self.name = name
        self.rate = rate
        self.concurrency = concurrency
        self.clock = clock
        self.guard = max(guard, rate.period * GUARD_SHARE) if rate and guard else guard
        self._starts: deque[Start] = deque(maxlen=rate.requests if rate else 0)
        self.allowed = rate.requests if rate else 0
        """Requests allowed per period now: the configured rate, or less after a backoff."""
        self._last_decrease: datetime | None = None
        self._last_change: datetime | None = None  # the last decrease or increase step
        self._server_errors: deque[datetime] = deque(maxlen=SERVER_ERROR_BURST)
        self.backoffs = 0
        self._paused_until: datetime | None = None
        self._in_flight = 0
        self._turn = asyncio.Lock()  # FIFO: asyncio.Lock wakes waiters in order
        self._released = asyncio.Event()
        self._waiting = 0
        self.requests_started = 0
        self.peak_in_flight = 0
        self.http_429 = 0

    def __repr__(self) -> str:
        return (
            f"ApiLimiter({self.name!r}, rate={self.rate}, concurrency={self.concurrency}, "
            f"in_flight={self._in_flight})"
        )

    @property
    def in_flight(self) -> int:
        """Requests that hold a slot right now."""
        return self._in_flight

    @property
    def waiting(self) -> int:
        """Requests queued for a slot."""
        return self._waiting

    @property
    def paused_until(self) -> datetime | None:
        """The instant before which no request starts (set by :meth:`pause_until`)."""
        return self._paused_until

    def pause_until(self, instant: datetime) -> None:
        """Start no request before ``instant``, e.g. after a 429 with Retry-After.

        A pause only ever extends: an API that asked for 60 s of quiet must not
        be hit earlier because a second, shorter answer arrived afterwards.
        """
        if self._paused_until is None or instant > self._paused_until:
            self._paused_until = instant

    def throttled(self, until: datetime) -> None:
        """Record an HTTP 429 from the API: pause every user of it until ``until``, slow down."""
        self.http_429 += 1
        self.pause_until(until)
        self._decrease(self.clock.now())

    def observe(self, status: int) -> None:
        """Learn from a response's status: a burst of server errors slows the API down."""
        if status not in SERVER_ERRORS or self.rate is None:
            return
        now = self.clock.now()
        self._server_errors.append(now)
        burst = len(self._server_errors) == SERVER_ERROR_BURST
        if burst and now - self._server_errors[0] < self.rate.period:
            self._server_errors.clear()
            self._decrease(now)

    def _decrease(self, now: datetime) -> None:
        """Halve ``allowed``, once per period whatever the number of signals in it."""
        if self.rate is None or self._in_same_period(now):
            return
        self.allowed = max(1, self.allowed // 2)
        self._last_decrease = self._last_change = now
        self.backoffs += 1

    def _recover(self, now: datetime) -> None:
        """Additive increase: one step per full period since the last change."""
        if self.rate is None or self.allowed >= self.rate.requests or self._last_change is None:
            return
        periods = int((now - self._last_change) / self.rate.period)
        if periods > 0:
            step = max(1, self.rate.requests // 10)
            self.allowed = min(self.rate.requests, self.allowed + periods * step)
            self._last_change += periods * self.rate.period

    def _in_same_period(self, now: datetime) -> bool:
        assert self.rate is not None
        return self._last_decrease is not None and now - self._last_decrease < self.rate.period

    def available_at(self, now: datetime) -> datetime:
        """The earliest instant a new request may start by rate and pause (not concurrency)."""
        earliest = now
        if self._paused_until is not None and self._paused_until > earliest:
            earliest = self._paused_until
        if self.rate is not None:
            self._recover(now)
        if self.rate is not None and len(self._starts) >= self.allowed:
            oldest = self._starts[-self.allowed].at
            earliest = max(earliest, oldest + self.rate.period + self.guard)
        return earliest

    def has_room(self, now: datetime) -> bool:
        """Whether a request could start at ``now`` without waiting for any limit.

        Queued waiters count as "no room": they are first in line for the next slot.
        """
        return self._waiting == 0 and self.available_at(now) <= now and self._concurrency_free()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[Start]:
        """Wait for a turn to start a request, then hold a concurrency slot until exit.

        The :class:`Start` it gives may be moved later (:meth:`Start.sent`), to
        when the request really left: opening a connection first delays it.
        """
        start = await self._acquire()
        try:
            yield start
        finally:
            self._release()

    async def _acquire(self) -> Start:
        self._waiting += 1
        try:
            async with self._turn:
                await self._wait_for_limits()
                return self._record_start(self.clock.now())
        finally:
            self._waiting -= 1

    async def _wait_for_limits(self) -> None:
        """Wait (as head of the queue) until rate, pause and concurrency all allow a start.

        Each wake-up re-checks everything, because a pause may have been
        extended while this waiter slept.
        """
        while True:
            now = self.clock.now()
            ready = self.available_at(now)
            if ready > now:
                await sleep_until(self.clock, ready)
            elif not self._concurrency_free():
                self._released.clear()
                await self._released.wait()
            else:
                return

    def _concurrency_free(self) -> bool:
        return self.concurrency is None or self._in_flight < self.concurrency

    def _record_start(self, now: datetime) -> Start:
        start = Start(now, self.clock)
        if self.rate is not None:
            self._starts.append(start)  # maxlen drops the start that left the log
        self._in_flight += 1
        self.requests_started += 1
        self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
        return start

    def _release(self) -> None:
        self._in_flight -= 1
        self._released.set()
