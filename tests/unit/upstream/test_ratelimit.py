"""ApiLimiter: sliding-window rate, concurrency, pauses, fairness and cancellation."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synchestra.core.clock import FakeClock
from synchestra.core.durations import Rate
from synchestra.upstream.ratelimit import ApiLimiter


async def _settle(turns: int = 50) -> None:
    for _ in range(turns):
        await asyncio.sleep(0)


async def run_until_done(clock: FakeClock, tasks: list[asyncio.Task[None]]) -> None:
    """Advance the fake clock deadline by deadline until every task has finished."""
    for _ in range(100_000):
        await _settle()
        if all(task.done() for task in tasks):
            for task in tasks:
                task.result()  # re-raise assertion errors from inside the tasks
            return
        deadline = clock.next_deadline
        assert deadline is not None, "deadlock: tasks wait but no one sleeps"
        await clock.advance((deadline - clock.now()).total_seconds())
    raise AssertionError("tasks did not finish")


def seconds_since(clock: FakeClock, start: datetime) -> float:
    return (clock.now() - start).total_seconds()


@dataclass
class Trace:
    """What a scenario observed from inside the slots."""

    starts: list[datetime] = field(default_factory=list)
    in_flight: int = 0
    peak: int = 0


async def timed_request(
    clock: FakeClock, limiter: ApiLimiter, trace: Trace, arrival: float, duration: float
) -> None:
    await clock.sleep(arrival)
    async with limiter.slot():
        trace.starts.append(clock.now())
        trace.in_flight += 1
        trace.peak = max(trace.peak, trace.in_flight)
        await clock.sleep(duration)
        trace.in_flight -= 1


def max_starts_in_any_window(starts: list[datetime], period: timedelta) -> int:
    """The most starts in a half-open window [t, t + period); windows start at a start."""
    ordered = sorted(starts)
    return max(
        (
            sum(1 for later in ordered[i:] if later < first + period)
            for i, first in enumerate(ordered)
        ),
        default=0,
    )


# -- property ---------------------------------------------------------------------------------

jobs_strategy = st.lists(
    st.tuples(st.integers(0, 3000), st.integers(0, 1500)),  # (arrival ms, duration ms)
    min_size=1,
    max_size=25,
)
pauses_strategy = st.lists(
    st.tuples(st.integers(0, 3000), st.integers(1, 1000)),  # (at ms, length ms)
    max_size=3,
)


@settings(max_examples=75, deadline=None)
@given(
    requests=st.integers(1, 5),
    period_ms=st.integers(1, 2000),
    concurrency=st.none() | st.integers(1, 4),
    jobs=jobs_strategy,
    pauses=pauses_strategy,
)
def test_limits_hold_for_any_burst(
    requests: int,
    period_ms: int,
    concurrency: int | None,
    jobs: list[tuple[int, int]],
    pauses: list[tuple[int, int]],
) -> None:
    period = timedelta(milliseconds=period_ms)
    clock = FakeClock()
    t0 = clock.now()
    trace = Trace()

    async def pause_at(at: float, length: float) -> None:
        await clock.sleep(at)
        limiter.pause_until(clock.now() + timedelta(seconds=length))

    async def scenario() -> None:
        tasks = [
            asyncio.create_task(timed_request(clock, limiter, trace, a / 1000, d / 1000))
            for a, d in jobs
        ]
        tasks += [asyncio.create_task(pause_at(at / 1000, ln / 1000)) for at, ln in pauses]
        await run_until_done(clock, tasks)

    limiter = ApiLimiter("api", Rate(requests, period), concurrency, clock)
    asyncio.run(scenario())

    assert len(trace.starts) == len(jobs) == limiter.requests_started
    assert max_starts_in_any_window(trace.starts, period) <= requests
    if concurrency is not None:
        assert trace.peak <= concurrency
        assert limiter.peak_in_flight <= concurrency
    assert limiter.peak_in_flight == trace.peak
    assert limiter.in_flight == 0
    assert limiter.waiting == 0
    for at, length in pauses:
        begin = t0 + timedelta(milliseconds=at)
        end = begin + timedelta(milliseconds=length)
        assert not [s for s in trace.starts if begin < s < end], "a start inside a pause"


# -- rate -------------------------------------------------------------------------------------


async def test_full_bucket_does_not_burst_above_the_rate() -> None:
    clock = FakeClock()
    t0 = clock.now()
    limiter = ApiLimiter("api", Rate(3, timedelta(seconds=1)), None, clock, guard=timedelta(0))
    trace = Trace()
    tasks = [asyncio.create_task(timed_request(clock, limiter, trace, 0, 0)) for _ in range(10)]
    await _settle()
    assert len(trace.starts) == 3
    await clock.advance(0.5)  # a token bucket would have refilled 1.5 tokens by now
    assert len(trace.starts) == 3
    await run_until_done(clock, tasks)
    offsets = [(s - t0).total_seconds() for s in trace.starts]
    assert offsets == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3]


async def test_available_at_and_has_room_follow_the_sliding_log() -> None:
    clock = FakeClock()
    t0 = clock.now()
    limiter = ApiLimiter("api", Rate(2, timedelta(seconds=10)), None, clock, guard=timedelta(0))
    assert limiter.has_room(t0)
    async with limiter.slot():
        pass
    await clock.advance(4)
    async with limiter.slot():
        pass
    now = clock.now()
    assert limiter.available_at(now) == t0 + timedelta(seconds=10)
    assert not limiter.has_room(now)
    assert limiter.has_room(t0 + timedelta(seconds=10))
    assert limiter.available_at(t0 + timedelta(seconds=12)) == t0 + timedelta(seconds=12)


async def test_no_limits_means_always_room() -> None:
    clock = FakeClock()
    limiter = ApiLimiter("api", None, None, clock)
    async with limiter.slot(), limiter.slot(), limiter.slot():
        assert limiter.in_flight == 3
        assert limiter.has_room(clock.now())
    assert limiter.requests_started == 3
    assert limiter.peak_in_flight == 3


# -- concurrency and fairness -----------------------------------------------------------------


async def test_concurrency_caps_requests_in_flight() -> None:
    clock = FakeClock()
    limiter = ApiLimiter("api", None, 2, clock)
    trace = Trace()
    tasks = [asyncio.create_task(timed_request(clock, limiter, trace, 0, 5)) for _ in range(5)]
    await _settle()
    assert limiter.in_flight == 2
    assert limiter.waiting == 3
    assert not limiter.has_room(clock.now())
    await run_until_done(clock, tasks)
    assert limiter.peak_in_flight == 2
    assert seconds_since(clock, trace.starts[0]) == 15  # 3 rounds of 5 s
    assert limiter.has_room(clock.now())


async def test_waiters_start_in_arrival_order() -> None:
    clock = FakeClock()
    limiter = ApiLimiter("api", Rate(1, timedelta(seconds=1)), 1, clock)
    order: list[int] = []

    async def request(number: int) -> None:
        async with limiter.slot():
            order.append(number)
            await clock.sleep(0.25)

    tasks = []
    for number in range(6):
        tasks.append(asyncio.create_task(request(number)))
        await _settle(3)
    await run_until_done(clock, tasks)
    assert order == list(range(6))


async def test_an_error_inside_the_slot_releases_it() -> None:
    clock = FakeClock()
    limiter = ApiLimiter("api", None, 1, clock)
    with pytest.raises(RuntimeError):
        async with limiter.slot():
            raise RuntimeError("boom")
    assert limiter.in_flight == 0
    assert limiter.has_room(clock.now())


# -- pauses -----------------------------------------------------------------------------------


async def test_pause_delays_starts_and_only_ever_extends() -> None:
    clock = FakeClock()
    t0 = clock.now()
    limiter = ApiLimiter("api", None, None, clock)
    limiter.pause_until(t0 + timedelta(seconds=5))
    limiter.pause_until(t0 + timedelta(seconds=2))  # earlier: must not shorten
    assert limiter.paused_until == t0 + timedelta(seconds=5)
    assert limiter.available_at(t0) == t0 + timedelta(seconds=5)
    assert not limiter.has_room(t0)

    trace = Trace()
    task = asyncio.create_task(timed_request(clock, limiter, trace, 0, 0))
    await clock.advance(3)
    limiter.pause_until(t0 + timedelta(seconds=8))  # extended while the waiter sleeps
    await clock.advance(3)
    assert trace.starts == []
    await run_until_done(clock, [task])
    assert trace.starts == [t0 + timedelta(seconds=8)]


async def test_throttled_counts_and_pauses() -> None:
    clock = FakeClock()
    limiter = ApiLimiter("api", None, None, clock)
    limiter.throttled(clock.now() + timedelta(seconds=3))
    assert limiter.http_429 == 1
    assert limiter.available_at(clock.now()) == clock.now() + timedelta(seconds=3)


# -- cancellation -----------------------------------------------------------------------------


async def test_cancelled_concurrency_waiter_leaks_nothing() -> None:
    clock = FakeClock()
    limiter = ApiLimiter("api", None, 1, clock)
    trace = Trace()
    holder = asyncio.create_task(timed_request(clock, limiter, trace, 0, 5))
    head = asyncio.create_task(timed_request(clock, limiter, trace, 0, 5))
    behind = asyncio.create_task(timed_request(clock, limiter, trace, 0, 5))
    await _settle()
    assert limiter.waiting == 2
    head.cancel()
    await _settle()
    assert head.cancelled()
    assert limiter.waiting == 1
    assert limiter.in_flight == 1
    assert limiter.requests_started == 1
    await run_until_done(clock, [holder, behind])
    assert len(trace.starts) == 2
    assert seconds_since(clock, trace.starts[0]) == 10
    assert limiter.in_flight == 0
    assert limiter.requests_started == 2


async def test_cancelled_rate_waiter_records_no_start() -> None:
    clock = FakeClock()
    t0 = clock.now()
    limiter = ApiLimiter("api", Rate(1, timedelta(seconds=1)), None, clock, guard=timedelta(0))
    trace = Trace()
    first = asyncio.create_task(timed_request(clock, limiter, trace, 0, 0))
    waiter = asyncio.create_task(timed_request(clock, limiter, trace, 0, 0))
    await _settle()
    waiter.cancel()
    await _settle()
    assert waiter.cancelled()
    late = asyncio.create_task(timed_request(clock, limiter, trace, 0.5, 0))
    then = asyncio.create_task(timed_request(clock, limiter, trace, 0.6, 0))
    await run_until_done(clock, [first, late, then])
    offsets = [(s - t0).total_seconds() for s in trace.starts]
    assert offsets == [0, 1, 2]
    assert limiter.requests_started == 3
    assert limiter.waiting == 0


# -- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "concurrency"),
    [(Rate(0, timedelta(seconds=1)), None), (Rate(1, timedelta(0)), None), (None, 0)],
)
def test_rejects_impossible_limits(rate: Rate | None, concurrency: int | None) -> None:
    with pytest.raises(ValueError, match="api 'x'"):
        ApiLimiter("x", rate, concurrency, FakeClock())


# -- guard and shared backoff (AIMD) ----------------------------------------------------------


async def test_the_guard_spaces_windows_so_the_provider_never_counts_one_too_many() -> None:
    clock = FakeClock()
    t0 = clock.now()
    limiter = ApiLimiter("api", Rate(3, timedelta(seconds=1)), None, clock)
    assert limiter.guard == timedelta(milliseconds=20)  # 2 % of the period, at least 10 ms
    trace = Trace()
    tasks = [asyncio.create_task(timed_request(clock, limiter, trace, 0, 0)) for _ in range(7)]
    await run_until_done(clock, tasks)
    offsets = [round((s - t0).total_seconds(), 3) for s in trace.starts]
    assert offsets == [0, 0, 0, 1.02, 1.02, 1.02, 2.04]
    # a provider whose window is a little longer than ours still sees at most 3
    assert max_starts_in_any_window(trace.starts, timedelta(seconds=1) + limiter.guard) <= 3


async def test_a_429_halves_the_rate_once_per_period_then_it_recovers_step_by_step() -> None:
    clock = FakeClock()
    limiter = ApiLimiter("api", Rate(20, timedelta(seconds=1)), None, clock, guard=timedelta(0))
    limiter.throttled(clock.now())
    limiter.throttled(clock.now())  # the answers to requests already in flight: one signal
    assert limiter.allowed == 10
    assert limiter.backoffs == 1
    await clock.advance(0.5)
    limiter.throttled(clock.now())  # still within the period of the last change
    assert limiter.allowed == 10

    seen = []
    for _ in range(8):
        await clock.advance(1)
        limiter.available_at(clock.now())  # recovery is applied when the limiter is asked
        seen.append(limiter.allowed)
    assert seen == [12, 14, 16, 18, 20, 20, 20, 20]  # +2 (a tenth of 20) a period, capped


async def test_after_a_backoff_starts_keep_to_the_lower_rate() -> None:
    clock = FakeClock()
    period = timedelta(seconds=1)
    limiter = ApiLimiter("api", Rate(8, period), None, clock, guard=timedelta(0))
    limiter.throttled(clock.now())  # no pause (until now), rate 8 -> 4
    trace = Trace()
    tasks = [asyncio.create_task(timed_request(clock, limiter, trace, 0, 0)) for _ in range(4)]
    await run_until_done(clock, tasks)
    more = [asyncio.create_task(timed_request(clock, limiter, trace, 0, 0)) for _ in range(4)]
    await _settle()
    assert len(trace.starts) == 4  # the lower rate holds the next four back
    await run_until_done(clock, more)
    first = trace.starts[0]
    assert all((start - first) >= period for start in trace.starts[4:])


async def test_a_burst_of_server_errors_slows_down_scattered_ones_do_not() -> None:
    clock = FakeClock()
    limiter = ApiLimiter("api", Rate(10, timedelta(seconds=1)), None, clock)
    for status in (503, 404, 500):
        limiter.observe(status)
        await clock.advance(0.6)  # three errors, never three within one period
    limiter.observe(502)
    assert limiter.allowed == 10
    limiter.observe(504)
    limiter.observe(500)  # 502, 504, 500 within 0.0 s: a burst
    assert limiter.allowed == 5
    assert limiter.http_429 == 0


def test_without_a_rate_there_is_nothing_to_slow_down() -> None:
    limiter = ApiLimiter("api", None, 2, FakeClock())
    for _ in range(5):
        limiter.observe(503)
    limiter.throttled(limiter.clock.now())
    assert limiter.backoffs == 0


@settings(max_examples=60, deadline=None)
@given(
    signals=st.lists(
        st.tuples(st.integers(0, 3000), st.sampled_from([429, 500, 503, 200])), max_size=20
    ),
    requests=st.integers(1, 12),
)
def test_backoff_never_exceeds_the_configured_rate_nor_drops_below_one(
    signals: list[tuple[int, int]], requests: int
) -> None:
    period = timedelta(seconds=1)
    clock = FakeClock()
    limiter = ApiLimiter("api", Rate(requests, period), None, clock)
    trace = Trace()

    async def signal(at_ms: int, status: int) -> None:
        await clock.sleep(at_ms / 1000)
        if status == 429:
            limiter.throttled(clock.now())
        else:
            limiter.observe(status)
        assert 1 <= limiter.allowed <= requests

    async def scenario() -> None:
        tasks = [
            asyncio.create_task(timed_request(clock, limiter, trace, i / 20, 0.01))
            for i in range(40)
        ]
        tasks += [asyncio.create_task(signal(at, status)) for at, status in signals]
        await run_until_done(clock, tasks)

    asyncio.run(scenario())
    assert len(trace.starts) == 40
    assert max_starts_in_any_window(trace.starts, period) <= requests


async def test_a_start_moves_to_when_the_request_really_left() -> None:
    """Opening a connection delays a request: the rate counts it from when it was sent."""
    clock = FakeClock()
    t0 = clock.now()
    limiter = ApiLimiter("api", Rate(2, timedelta(seconds=1)), None, clock, guard=timedelta(0))
    async with limiter.slot() as start:
        await clock.advance(0.3)  # connecting
        start.sent()
    assert start.at == t0 + timedelta(seconds=0.3)
    assert limiter.available_at(clock.now()) == clock.now()  # one of two in the window
    async with limiter.slot():
        pass
    assert limiter.available_at(clock.now()) == t0 + timedelta(seconds=1.3)  # from 0.3
    start.at = t0 + timedelta(seconds=2)
    start.sent()  # never earlier than recorded
    assert start.at == t0 + timedelta(seconds=2)
