"""Schedules driven end to end: an Orchestrator started with ``schedule=True`` on a FakeClock.

Every test runs against SQLite and PostgreSQL. Time moves only through
``clock.advance`` (or ``clock.set`` while no orchestrator is open); what
happens on the event loop is awaited through bus events, events set by the
source functions, or polls that only yield to the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from engine_helpers import SAFETY, next_event, opened, until
from synchestra.connectors.context import SyncContext
from synchestra.core.clock import FakeClock
from synchestra.core.durations import iso
from synchestra.core.models import Run, RunState, Target
from synchestra.engine import status as views
from synchestra.engine.orchestrator import Orchestrator
from synchestra.interfaces.documents import sync_status_document

START = datetime(2026, 1, 5, 12, 3, tzinfo=UTC)
TARGETS = [Target(f"dot:{n}", f"Carrier {n}") for n in range(1, 5)]


# --- helpers -----------------------------------------------------------------


async def advance_to(clock: FakeClock, instant: datetime) -> None:
    await clock.advance((instant - clock.now()).total_seconds())


async def next_fires(orc: Orchestrator) -> dict[str, datetime | None]:
    return {name: row.next_fire_at for name, row in (await orc.store.source_rows()).items()}


async def fires_become(orc: Orchestrator, expected: Mapping[str, datetime]) -> None:
    async def reached() -> bool:
        fires = await next_fires(orc)
        return all(fires.get(name) == at for name, at in expected.items())

    await until(reached, f"next fires {dict(expected)}")


async def runs_of(orc: Orchestrator, source: str) -> list[Run]:
    return sorted(await orc.store.list_runs(source=source, limit=1000), key=lambda r: r.id)


def at(hour: int, minute: int, second: int = 0) -> datetime:
    return START.replace(hour=hour, minute=minute, second=second)


# --- fire times, firing, next_run_at ----------------------------------------------------


async def test_first_start_persists_next_fires_and_due_fires_queue_and_run(
    database_url: str, clock: FakeClock
) -> None:
    clock.set(START)

    def setup(orc: Orchestrator) -> None:
        orc.source("every15", every="15m")(_noop)
        orc.source("hourly", schedule="0 * * * *")(_noop)

    async with opened(database_url, clock, setup=setup) as orc:
        with orc.bus.subscribe() as sub:
            orc.start(schedule=True)
            await fires_become(orc, {"every15": at(12, 15), "hourly": at(13, 0)})
            assert await orc.store.list_runs() == []  # starting does not fire
            status = sync_status_document(
                await views.sync_status(
                    orc.store, orc.sources, clock.now(), orc.config.engine.lease
                )
            )
            assert {s["source"]: s["next_run_at"] for s in status["sources"]} == {
                "every15": iso(at(12, 15)),
                "hourly": iso(at(13, 0)),
            }

            await advance_to(clock, at(12, 15, 1))
            done = await next_event(sub, "run.succeeded", source="every15")
            await fires_become(orc, {"every15": at(12, 30), "hourly": at(13, 0)})
            (run,) = await runs_of(orc, "every15")
            assert str(run.id) == done.data["id"]
            assert run.trigger == "schedule"
            assert run.not_before == at(12, 15)
            assert run.state is RunState.SUCCEEDED
            assert await runs_of(orc, "hourly") == []

            for minute in (30, 45):
                await advance_to(clock, at(12, minute, 1))
                await next_event(sub, "run.succeeded", source="every15")
            await advance_to(clock, at(13, 0, 1))
            await next_event(sub, "run.succeeded", source="hourly")
            await fires_become(orc, {"every15": at(13, 15), "hourly": at(14, 0)})
            await until(lambda: _all_ended(orc, "every15", 4), "the 13:00 run of every15 to finish")

        every15 = await runs_of(orc, "every15")
        assert [r.not_before for r in every15] == [at(12, 15), at(12, 30), at(12, 45), at(13, 0)]
        (hourly,) = await runs_of(orc, "hourly")
        assert hourly.not_before == at(13, 0)
        assert hourly.state is RunState.SUCCEEDED


async def _all_ended(orc: Orchestrator, source: str, count: int) -> bool:
    runs = await runs_of(orc, source)
    return len(runs) == count and all(r.state.terminal for r in runs)


async def _noop(ctx: SyncContext) -> None:
    return None


# --- downtime ----------------------------------------------------------------------------


async def test_fires_missed_during_downtime_run_once(database_url: str, clock: FakeClock) -> None:
    clock.set(START)

    def setup(orc: Orchestrator) -> None:
        orc.source("every15", every="15m")(_noop)
        orc.source("hourly", schedule="0 * * * *")(_noop)

    async with opened(database_url, clock, setup=setup) as orc:
        with orc.bus.subscribe() as sub:
            orc.start(schedule=True)
            await fires_become(orc, {"every15": at(12, 15), "hourly": at(13, 0)})
            await advance_to(clock, at(12, 15, 1))
            await next_event(sub, "run.succeeded", source="every15")
            await fires_become(orc, {"every15": at(12, 30)})

    # three hours down: 12 ticks of every15 and 3 of hourly are missed
    clock.set(at(15, 15, 1))
    async with opened(database_url, clock, setup=setup) as orc:
        assert await next_fires(orc) == {"every15": at(12, 30), "hourly": at(13, 0)}
        with orc.bus.subscribe() as sub:
            orc.start(schedule=True)
            done = {
                (await next_event(sub, "run.succeeded")).data["source"],
                (await next_event(sub, "run.succeeded")).data["source"],
            }
            assert done == {"every15", "hourly"}
            await fires_become(orc, {"every15": at(15, 30), "hourly": at(16, 0)})

        every15 = await runs_of(orc, "every15")
        assert [r.not_before for r in every15] == [at(12, 15), at(12, 30)]
        assert all(r.state is RunState.SUCCEEDED for r in every15)
        (hourly,) = await runs_of(orc, "hourly")
        assert hourly.not_before == at(13, 0)
        assert hourly.started_at == at(15, 15, 1)
        assert await orc.store.list_runs(state=RunState.QUEUED) == []


# --- spread ------------------------------------------------------------------------------


async def test_spread_spaces_per_target_runs_evenly(database_url: str, clock: FakeClock) -> None:
    clock.set(START)
    started: list[tuple[str, datetime]] = []

    def setup(orc: Orchestrator) -> None:
        @orc.source("fleet", per_target=True, every="1h", spread="1h")
        async def fleet(ctx: SyncContext) -> None:
            assert ctx.target is not None
            started.append((ctx.target.key, ctx.now()))

    async with opened(database_url, clock, setup=setup) as orc:
        await orc.add_targets(list(reversed(TARGETS)))
        with orc.bus.subscribe() as sub:
            orc.start(schedule=True)
            await fires_become(orc, {"fleet": at(13, 0)})
            await advance_to(clock, at(13, 0, 1))
            await next_event(sub, "run.succeeded", target="dot:1")

            runs = {r.target: r for r in await runs_of(orc, "fleet")}
            assert {key: run.not_before for key, run in runs.items()} == {
                "dot:1": at(13, 0),
                "dot:2": at(13, 15),
                "dot:3": at(13, 30),
                "dot:4": at(13, 45),
            }
            assert [runs[f"dot:{n}"].state for n in (2, 3, 4)] == [RunState.QUEUED] * 3

            await advance_to(clock, at(13, 15, 1))
            await next_event(sub, "run.succeeded", target="dot:2")
            runs = {r.target: r for r in await runs_of(orc, "fleet")}
            assert (runs["dot:3"].state, runs["dot:4"].state) == (RunState.QUEUED,) * 2
            for minute, key in ((30, "dot:3"), (45, "dot:4")):
                await advance_to(clock, at(13, minute, 1))
                await next_event(sub, "run.succeeded", target=key)

    assert [key for key, _ in started] == ["dot:1", "dot:2", "dot:3", "dot:4"]
    for (_, when), minute in zip(started, (0, 15, 30, 45), strict=True):
        assert at(13, minute) <= when <= at(13, minute, 1)


# --- no pile-up --------------------------------------------------------------------------


async def test_fires_during_a_long_run_queue_at_most_one_follow_up(
    database_url: str, clock: FakeClock
) -> None:
    clock.set(START)
    release = asyncio.Event()
    entered = asyncio.Event()
    calls = 0

    def setup(orc: Orchestrator) -> None:
        @orc.source("slow", every="15m", timeout="2h")
        async def slow(ctx: SyncContext) -> None:
            nonlocal calls
            calls += 1
            entered.set()
            await release.wait()

    async with opened(database_url, clock, setup=setup) as orc:
        with orc.bus.subscribe() as sub:
            orc.start(schedule=True)
            await fires_become(orc, {"slow": at(12, 15)})
            await advance_to(clock, at(12, 15, 1))
            await asyncio.wait_for(entered.wait(), SAFETY)

            await advance_to(clock, at(12, 30, 1))
            follow_up = await next_event(sub, "run.queued", not_before=iso(at(12, 30)))
            assert follow_up.data["source"] == "slow"
            await fires_become(orc, {"slow": at(12, 45)})
            for minute in (45, 0):
                hour = 12 if minute else 13
                await advance_to(clock, at(hour, minute, 1))
                await fires_become(orc, {"slow": at(hour, minute) + timedelta(minutes=15)})

            runs = await runs_of(orc, "slow")
            assert [r.state for r in runs] == [RunState.RUNNING, RunState.QUEUED]
            assert str(runs[1].id) == follow_up.data["id"]
            status = sync_status_document(
                await views.sync_status(
                    orc.store, orc.sources, clock.now(), orc.config.engine.lease
                )
            )
            (entry,) = status["sources"]
            assert (entry["status"], entry["queued"], entry["running"]) == ("running", 1, 1)

            release.set()
            await next_event(sub, "run.succeeded", id=str(runs[0].id))
            await next_event(sub, "run.succeeded", id=str(runs[1].id))

        assert calls == 2
        assert [r.state for r in await runs_of(orc, "slow")] == [RunState.SUCCEEDED] * 2


# --- offset ------------------------------------------------------------------------------


async def test_offset_shifts_fire_times(database_url: str, clock: FakeClock) -> None:
    clock.set(at(12, 20))

    def setup(orc: Orchestrator) -> None:
        orc.source("hourly_10", every="1h", offset="10m")(_noop)
        orc.source("six_hourly_15", schedule="0 */6 * * *", offset="15m")(_noop)
        orc.source("plain", every="1h")(_noop)

    async with opened(database_url, clock, setup=setup) as orc:
        with orc.bus.subscribe() as sub:
            orc.start(schedule=True)
            await fires_become(
                orc, {"hourly_10": at(13, 10), "six_hourly_15": at(18, 15), "plain": at(13, 0)}
            )
            await advance_to(clock, at(13, 0, 1))
            await next_event(sub, "run.succeeded", source="plain")
            assert await runs_of(orc, "hourly_10") == []
            await advance_to(clock, at(13, 10, 1))
            await next_event(sub, "run.succeeded", source="hourly_10")
            await fires_become(orc, {"hourly_10": at(14, 10), "six_hourly_15": at(18, 15)})

        (run,) = await runs_of(orc, "hourly_10")
        assert run.not_before == at(13, 10)
        assert await runs_of(orc, "six_hourly_15") == []
