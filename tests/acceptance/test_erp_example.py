"""``examples/erp.toml`` run for a simulated day against the simulated ERP.

The example file itself is loaded (only the ERP's base URL is replaced by the
simulator's), the orchestrator runs with its scheduler on a FakeClock, and the
test moves time a quarter of an hour at a time over 24 hours, waiting after
each step until every run queued so far has ended and the loop is parked on
the clock again. Nothing sleeps: the runs are real HTTP requests to the
simulator on loopback, and time stands still while they run, so a run starts
and ends at the instant it was queued. Meanwhile the test changes the ERP
every hour, so the incremental runs have something to find.

The expected fire times are computed from the config's ``every`` / ``offset``
as docs/engine.md defines them (an epoch-anchored grid shifted by the offset),
not by the engine's own code, and compared with the runs in the store exactly.
The order in which runs started, and that they never overlap, comes from the
event bus (the clock cannot tell runs of one instant apart) and from the
simulator's own count of concurrent requests.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest

from engine_helpers import SAFETY, opened
from paths import EXAMPLES
from synchestra.cli import main
from synchestra.config import Config, SourceConfig, load_config
from synchestra.connectors.collection import parse_instant
from synchestra.core.bus import Subscription
from synchestra.core.clock import FakeClock
from synchestra.core.events import Event
from synchestra.core.models import Run, RunState
from synchestra.core.records import RecordQuery
from synchestra.engine.orchestrator import Orchestrator
from synchestra.engine.sources import spec_from_config
from synchestra.simulator import Simulator, SimulatorConfig, run_simulator

EXAMPLE = EXAMPLES / "erp.toml"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
START = datetime(2026, 9, 1, tzinfo=UTC)
DAY = timedelta(days=1)
STEP = timedelta(minutes=15)
"""Every fire of the example is on the quarter-hour grid. Each step costs the loop
a few turns (housekeeping, claim, next wake: 10-25 ms of database work each on
SQLite), so minute steps would make the day last over a minute. A fire off the
grid would still be caught: queued at the next step, after its ``not_before``."""

COLLECTIONS = ("customers", "products", "prices", "orders")
TERMINAL = frozenset(
    {"run.succeeded", "run.failed", "run.skipped", "run.cancelled", "run.interrupted"}
)


# --- the example, and what it implies --------------------------------------------


def example_config(erp_url: str) -> Config:
    """examples/erp.toml as ``synchestra`` loads it, with the ERP at ``erp_url``."""
    config = load_config(EXAMPLE)
    apis = [
        api.model_copy(update={"base_url": erp_url}) if api.name == "erp" else api
        for api in config.apis
    ]
    return config.model_copy(update={"apis": apis})


def fire_times(source: SourceConfig, after: datetime, last: datetime) -> list[datetime]:
    """The fires in ``(after, last]``: the grid of ``every`` from the epoch, moved by ``offset``."""
    every, offset = source.every, source.offset
    assert every is not None and source.schedule is None
    fire = EPOCH + offset + ((after - EPOCH - offset) // every + 1) * every
    fires = []
    while fire <= last:
        fires.append(fire)
        fire += every
    return fires


def priority_order(config: Config, due: Sequence[str]) -> list[str]:
    """The sources due at one instant in the order the claim must start them."""
    priority = {source.name: source.priority for source in config.sources}
    return sorted(due, key=lambda name: -priority[name])


# --- driving the day ---------------------------------------------------------------


class ParkingClock(FakeClock):
    """A FakeClock that says when someone starts waiting on it (the loop parking)."""

    def __init__(self, start: datetime) -> None:
        super().__init__(start)
        self.parked = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.parked.set()
        await super().sleep(seconds)


class Day:
    """The events of the day, and whether every queued run has ended."""

    def __init__(self, sub: Subscription, clock: ParkingClock) -> None:
        self.sub = sub
        self.clock = clock
        self.events: list[Event] = []
        self.open: set[str] = set()

    def drain(self) -> None:
        while (event := self.sub.get_nowait()) is not None:
            self.events.append(event)
            if event.type == "run.queued":
                self.open.add(event.data["id"])
            elif event.type in TERMINAL:
                self.open.discard(event.data["id"])

    async def settle(self) -> None:
        """Until no run is queued or running and the loop sleeps on the clock.

        The loop parks after every turn, so this waits for the next park
        instead of polling. With no run left the loop is the only sleeper, and
        it sleeps on the clock only when nothing is due before its deadline.
        """
        while True:
            self.drain()
            if not self.open and self.clock.next_deadline is not None:
                return
            self.clock.parked.clear()
            try:
                await asyncio.wait_for(self.clock.parked.wait(), SAFETY)
            except TimeoutError:
                raise AssertionError(f"runs {self.open} still open at {self.clock.now()}") from None


class Changes:
    """What the test changed in the ERP, per collection."""

    def __init__(self) -> None:
        self.created = dict.fromkeys(COLLECTIONS, 0)
        self.updated = dict.fromkeys(COLLECTIONS, 0)

    def apply(self, sim: Simulator, hour: int) -> None:
        """Every hour a new order and a changed one; every 4 hours the other collections."""
        sim.erp.create(
            "orders",
            {"customer_id": 1, "status": "new", "total": "10.00", "currency": "USD"},
        )
        sim.erp.update("orders", hour + 1, {"status": "shipped"})
        self._count("orders", created=1, updated=1)
        if hour % 4 == 0:
            n = hour // 4
            sim.erp.create("customers", {"name": f"New {n}", "city": "Gary", "country": "US"})
            sim.erp.update("customers", n, {"city": "Boise"})
            sim.erp.update("products", n, {"active": n % 2 == 0})
            sim.erp.update("prices", n, {"amount": f"{n}.99"})
            self._count("customers", created=1, updated=1)
            self._count("products", created=0, updated=1)
            self._count("prices", created=0, updated=1)

    def _count(self, collection: str, *, created: int, updated: int) -> None:
        self.created[collection] += created
        self.updated[collection] += updated


async def run_day(orc: Orchestrator, clock: ParkingClock, sim: Simulator) -> tuple[Day, Changes]:
    """Start the scheduler at START and step a quarter at a time to START + DAY."""
    changes = Changes()
    with orc.bus.subscribe() as sub:
        day = Day(sub, clock)
        orc.start(schedule=True)
        await day.settle()  # the first fires are persisted, nothing fired
        while clock.now() < START + DAY:
            await clock.advance(STEP.total_seconds())
            await day.settle()
            now = clock.now()
            if now.minute == 0 and now.hour >= 1:  # after every source's first run
                changes.apply(sim, now.hour)
        day.drain()
    return day, changes


# --- checks ---------------------------------------------------------------------------


async def runs_by_source(orc: Orchestrator) -> dict[str, list[Run]]:
    runs = await orc.store.list_runs(limit=10_000)
    found: dict[str, list[Run]] = {}
    for run in sorted(runs, key=lambda r: r.id):
        found.setdefault(run.source, []).append(run)
    return found


def start_order(day: Day) -> dict[datetime, list[str]]:
    """Per instant, the sources in the order their runs started (the bus's order)."""
    order: dict[datetime, list[str]] = {}
    for event in day.events:
        if event.type == "run.started":
            order.setdefault(event.at, []).append(event.data["source"])
    return order


def assert_one_at_a_time(day: Day, runs: Mapping[int, Run]) -> None:
    """Every run ends before the next one starts, by the bus and by the stored times."""
    running: set[str] = set()
    started: list[int] = []
    for event in day.events:
        if event.type == "run.started":
            assert not running, f"run {event.data['id']} started while {running} ran"
            running.add(event.data["id"])
            started.append(int(event.data["id"]))
        elif event.type in TERMINAL:
            running.discard(event.data["id"])
    assert not running
    assert sorted(started) == sorted(runs)
    for before, after in itertools.pairwise(started):
        earlier, later = runs[before], runs[after]
        assert earlier.started_at is not None and earlier.finished_at is not None
        assert later.started_at is not None and later.finished_at is not None
        assert earlier.started_at <= earlier.finished_at <= later.started_at <= later.finished_at


def expected_modes(source: SourceConfig, runs: Sequence[Run]) -> list[str]:
    """auto: full without a full run younger than ``full_every``, else incremental."""
    modes: list[str] = []
    last_full: datetime | None = None
    for run in runs:
        assert run.started_at is not None
        if last_full is None or run.started_at - last_full >= source.full_every:
            modes.append("full")
            last_full = run.started_at
        else:
            modes.append("incremental")
    return modes


async def stored(orc: Orchestrator, kind: str) -> dict[str, Any]:
    rows, cursor = await orc.store.list_records(RecordQuery(kind, limit=100_000))
    assert cursor is None
    return {row.key: row.data for row in rows}


# --- tests ------------------------------------------------------------------------


def test_example_passes_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["synchestra", "check", "-c", str(EXAMPLE)])
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code in (0, None)


def test_example_says_what_the_issue_asks() -> None:
    config = load_config(EXAMPLE)
    (erp,) = config.apis
    assert urlsplit(erp.base_url)[:2] == ("http", "127.0.0.1:8100")
    assert [(g.name, g.max_running) for g in config.groups] == [("erp", 1)]
    wanted = {"orders": (15, 4), "customers": (30, 3), "products": (30, 2), "prices": (60, 1)}
    for source in config.sources:
        every, priority = wanted.pop(source.name)
        assert source.every == timedelta(minutes=every)
        assert (source.priority, source.group, source.api) == (priority, "erp", "erp")
        assert (source.connector, source.per_target) == ("http.collection", False)
        assert source.offset % timedelta(minutes=15) == timedelta(0)
        assert source.params["watermark"]["param"] == "updated_since"
    assert not wanted
    styles = {source.params["paging"]["style"] for source in config.sources}
    assert styles == {"page", "offset", "cursor", "link"}


@pytest.mark.slow  # 216 runs and ~400 turns of the loop: 10-15 s per database
async def test_a_day_of_erp_mirroring(database_url: str) -> None:
    clock = ParkingClock(START)
    async with run_simulator(SimulatorConfig()) as sim:
        example = load_config(EXAMPLE).api("erp").base_url
        assert urlsplit(example).path == urlsplit(sim.base_url("erp")).path == "/erp"
        config = example_config(sim.base_url("erp"))

        def setup(orc: Orchestrator) -> None:
            for source in config.sources:
                orc.add_source(spec_from_config(source, config.timezone))

        async with opened(database_url, clock, config, setup=setup) as orc:
            day, changes = await run_day(orc, clock, sim)
            by_source = await runs_by_source(orc)
            records = {s.name: await stored(orc, s.params["kind"]) for s in config.sources}
            watermarks: dict[str, Any] = {}
            for source in config.sources:
                pair = await orc.store.pair_status(source.name, None)
                assert pair is not None
                watermarks[source.name] = pair.watermark

        # Runs at the scheduled, staggered times: queued and started at the fire, exactly.
        expected = {s.name: fire_times(s, START, START + DAY) for s in config.sources}
        assert {name: len(fires) for name, fires in expected.items()} == {
            "customers": 48,
            "products": 48,
            "prices": 24,
            "orders": 96,
        }
        assert set(by_source) == set(expected)
        for name, fires in expected.items():
            runs = by_source[name]
            assert [r.not_before for r in runs] == fires, name
            assert [r.queued_at for r in runs] == fires, name
            assert [r.started_at for r in runs] == fires, name
            assert {(r.state, r.trigger, r.attempts) for r in runs} == {
                (RunState.SUCCEEDED, "schedule", 1)
            }, name
        assert {fire.minute for fire in expected["customers"]} == {0, 30}
        assert {fire.minute for fire in expected["products"]} == {15, 45}
        assert {fire.minute for fire in expected["prices"]} == {45}

        # Several due at once: they start in priority order, whatever order they were queued.
        due: dict[datetime, list[str]] = {}
        for name, fires in expected.items():
            for fire in fires:
                due.setdefault(fire, []).append(name)
        started = start_order(day)
        assert started == {at: priority_order(config, names) for at, names in sorted(due.items())}
        assert {(at.minute, tuple(names)) for at, names in started.items()} == {
            (0, ("orders", "customers")),
            (15, ("orders", "products")),
            (30, ("orders", "customers")),
            (45, ("orders", "products", "prices")),
        }
        # Fired in the file's order (so queued in it), started by priority: not first come.
        at_0045 = START.replace(minute=45)
        queued = sorted(
            (r for runs in by_source.values() for r in runs if r.not_before == at_0045),
            key=lambda r: r.id,
        )
        assert [r.source for r in queued] == ["products", "prices", "orders"]
        assert started[at_0045] == ["orders", "products", "prices"]

        # Never two ERP runs at once.
        all_runs = {r.id: r for runs in by_source.values() for r in runs}
        assert_one_at_a_time(day, all_runs)
        counters = sim.counters()["erp"]
        assert counters.peak_concurrency == 1
        assert set(counters.responses) == {200}

        for source in config.sources:
            runs = by_source[source.name]
            collection = source.params["path"].rsplit("/", 1)[-1]
            rows = sim.erp.records(collection)
            results = [dict(r.result) for r in runs]

            # The first run reads everything (in its paging style), the later ones what changed.
            modes = [result["mode"] for result in results]
            assert (
                modes
                == expected_modes(source, runs)
                == ["full"] + ["incremental"] * (len(runs) - 1)
            )
            first, later = results[0], results[1:]
            size = len(rows) - changes.created[collection]
            assert (first["since"], first["records"], first["created"]) == (None, size, size)
            assert first["pages"] == math.ceil(size / 100)  # no size is a multiple of 100
            assert all(result["since"] is not None for result in later)
            assert all(result["deleted"] == 0 for result in results)
            assert sum(r["created"] for r in later) == changes.created[collection]
            assert sum(r["updated"] for r in later) == changes.updated[collection]
            assert max(r["records"] for r in later) < size

            # After the day, the local copy is the ERP's collection, record for record.
            local = records[source.name]
            assert len(local) == len(rows)
            assert local == {str(row["id"]): row for row in rows}
            newest = max(parse_instant(row["updated_at"]) or EPOCH for row in rows)
            assert parse_instant(watermarks[source.name]) == newest
