"""ApiLimiter: sliding-window rate, concurrency, pauses, fairness and cancellation."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synchestra.clock import FakeClock
from synchestra.durations import Rate
from synchestra.ratelimit import ApiLimiter


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
    limiter = ApiLimiter("api", Rate(3, timedelta(seconds=1)), None, clock)
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
    limiter = ApiLimiter("api", Rate(2, timedelta(seconds=10)), None, clock)
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
    limiter = ApiLimiter("api", Rate(1, timedelta(seconds=1)), None, clock)
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
