"""The engine end to end: an Orchestrator on a real database, driven by a FakeClock.

Every test runs against SQLite and PostgreSQL (the ``database_url`` fixture).
No test sleeps: time moves only through ``clock.advance``, and what happens on
the event loop is awaited through bus events, asyncio events set by the source
functions, or short polls that only yield to the loop. Every wait is wrapped in
a 5-second ``asyncio.wait_for`` as a safety net against a hang.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import pytest

from engine_helpers import SAFETY, cfg, next_event, opened, until, within
from synchestra.config import Config
from synchestra.connectors.context import SyncContext
from synchestra.core.bus import Subscription
from synchestra.core.clock import FakeClock
from synchestra.core.durations import iso
from synchestra.core.errors import NotConfigured, RetryableError
from synchestra.core.events import Event
from synchestra.core.models import Mode, Run, RunState, Target
from synchestra.core.records import RecordQuery
from synchestra.engine import status as views
from synchestra.engine.orchestrator import Orchestrator
from synchestra.engine.retry import RetryPolicy
from synchestra.interfaces.documents import sync_status_document, target_status_document

TARGETS = [
    Target("dot:1", "Alpha Freight"),
    Target("dot:2", "Beta Logistics"),
    Target("dot:3", "Gamma Hauling"),
    Target("dot:4", "Delta Transport"),
]


# --- helpers -----------------------------------------------------------------


async def collect(sub: Subscription, types: set[str], count: int) -> list[Event]:
    """The next ``count`` events of these types (others are skipped)."""

    async def gather() -> list[Event]:
        found: list[Event] = []
        while len(found) < count:
            event = await sub.get()
            if event.type in types:
                found.append(event)
        return found

    try:
        return await asyncio.wait_for(gather(), SAFETY)
    except TimeoutError:
        raise AssertionError(f"fewer than {count} events of {sorted(types)}") from None


def drain(sub: Subscription) -> list[Event]:
    events = []
    while (event := sub.get_nowait()) is not None:
        events.append(event)
    return events


async def loop_sleeps_until(clock: FakeClock, instant: datetime) -> None:
    """Wait until the loop (the only sleeper left) sleeps until about ``instant``."""

    def idle() -> bool:
        deadline = clock.next_deadline
        return deadline is not None and abs(deadline - instant) < timedelta(milliseconds=1)

    await until(idle, f"the loop to sleep until {instant}")


async def get_run(orc: Orchestrator, run_id: int) -> Run:
    (run,) = await orc.store.get_runs([run_id])
    return run


def status_of(sync_status: Mapping[str, Any], source: str) -> dict[str, Any]:
    (entry,) = [s for s in sync_status["sources"] if s["source"] == source]
    return dict(entry)


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- 1. error isolation and true status ---------------------------------------


async def test_one_failing_and_one_hanging_source_fail_only_their_own_runs(
    database_url: str, clock: FakeClock
) -> None:
    t0 = clock.now()
    broken = {"violations": True, "inspections": True}
    hanging = asyncio.Event()  # never set
    entered_hang = asyncio.Event()

    def setup(orc: Orchestrator) -> None:
        @orc.source("violations", per_target=True)
        async def violations(ctx: SyncContext) -> None:
            assert ctx.target is not None
            if broken["violations"] and ctx.target.key == "dot:2":
                raise ValueError("unparseable violation row for dot:2")

        @orc.source("inspections", per_target=True, timeout="1m", retry=RetryPolicy(attempts=1))
        async def inspections(ctx: SyncContext) -> None:
            assert ctx.target is not None
            if broken["inspections"] and ctx.target.key == "dot:3":
                entered_hang.set()
                await hanging.wait()

        @orc.source("carrier", per_target=True)
        async def carrier(ctx: SyncContext) -> dict[str, int]:
            assert ctx.target is not None
            await ctx.upsert("carrier", [{"dot": ctx.target.key, "name": ctx.target.name}], "dot")
            return {"pages": 1}

    async with opened(database_url, clock, setup=setup) as orc:
        await orc.add_targets(TARGETS)
        with orc.bus.subscribe() as sub:
            syncing = asyncio.create_task(orc.sync())
            await next_event(sub, "run.started", source="inspections", target="dot:3")
            await within(entered_hang.wait())
            # every other run ends without the clock moving
            ended = await collect(sub, {"run.succeeded", "run.failed"}, 11)
            assert [e.data["source"] for e in ended if e.type == "run.failed"] == ["violations"]
            assert not syncing.done()
            await clock.advance(61)
            summary = await within(syncing)

        assert (summary.total, summary.succeeded, summary.failed, summary.skipped) == (4, 2, 2, 0)
        assert summary.exit_code == 1
        assert summary.errors == [
            {
                "target": "dot:2",
                "name": "Beta Logistics",
                "errors": [
                    {
                        "source": "violations",
                        "error": "ValueError: unparseable violation row for dot:2",
                    }
                ],
            },
            {
                "target": "dot:3",
                "name": "Gamma Hauling",
                "errors": [{"source": "inspections", "error": "timed out after 1m"}],
            },
        ]
        states = {(run.source, run.target): run.state for run in summary.runs}
        assert len(states) == 12
        assert states[("violations", "dot:2")] is RunState.FAILED
        assert states[("inspections", "dot:3")] is RunState.FAILED
        assert sum(state is RunState.SUCCEEDED for state in states.values()) == 10
        assert all(run.attempts == 1 for run in summary.runs)
        carrier_run = next(r for r in summary.runs if r.source == "carrier")
        assert carrier_run.result == {
            "created": 1,
            "updated": 0,
            "unchanged": 0,
            "deleted": 0,
            "pages": 1,
        }
        as_json = json.loads(json.dumps(summary.as_dict()))
        assert as_json["failed"] == 2 and len(as_json["runs"]) == 12

        # per-target status
        for key in ("dot:1", "dot:4"):
            status = target_status_document(await views.target_status(orc.store, orc.sources, key))
            assert status["success"] is True
            assert status["errors"] == []
            assert status["last_run"] == iso(t0)
            assert {n: s["state"] for n, s in status["sources"].items()} == {
                "carrier": "succeeded",
                "inspections": "succeeded",
                "violations": "succeeded",
            }
            assert all(s["last_success"] == iso(t0) for s in status["sources"].values())
        beta = target_status_document(await views.target_status(orc.store, orc.sources, "dot:2"))
        assert beta["target"] == "dot:2" and beta["name"] == "Beta Logistics"
        assert beta["success"] is False
        assert beta["errors"] == [
            {
                "source": "violations",
                "error": "ValueError: unparseable violation row for dot:2",
                "at": iso(t0),
            }
        ]
        assert beta["sources"]["violations"] == {
            "state": "failed",
            "last_attempt": iso(t0),
            "last_success": None,
            "error": "ValueError: unparseable violation row for dot:2",
        }
        assert beta["sources"]["carrier"]["state"] == "succeeded"
        assert beta["sources"]["inspections"]["error"] is None
        gamma = target_status_document(await views.target_status(orc.store, orc.sources, "dot:3"))
        assert gamma["success"] is False
        (gamma_error,) = gamma["errors"]
        assert gamma_error["source"] == "inspections"
        assert gamma_error["error"] == "timed out after 1m"
        timed_out_at = parse_iso(gamma_error["at"])
        assert t0 + timedelta(seconds=60) <= timed_out_at <= t0 + timedelta(seconds=61)
        assert gamma["last_run"] == gamma_error["at"]
        assert gamma["sources"]["inspections"]["state"] == "failed"
        assert gamma["sources"]["inspections"]["last_success"] is None
        assert gamma["sources"]["violations"]["state"] == "succeeded"

        # per-source status
        status = sync_status_document(
            await views.sync_status(orc.store, orc.sources, clock.now(), orc.config.engine.lease)
        )
        assert [s["source"] for s in status["sources"]] == ["carrier", "inspections", "violations"]
        assert status_of(status, "violations") | {"started_at": None, "completed_at": None} == {
            "source": "violations",
            "status": "error",
            "started_at": None,
            "completed_at": None,
            "error": "ValueError: unparseable violation row for dot:2",
            "next_run_at": None,
            "queued": 0,
            "running": 0,
        }
        inspections_status = status_of(status, "inspections")
        assert inspections_status["status"] == "error"
        assert inspections_status["error"] == "timed out after 1m"
        assert inspections_status["completed_at"] == gamma_error["at"]
        carrier_status = status_of(status, "carrier")
        assert carrier_status["status"] == "completed"
        assert carrier_status["error"] is None
        assert carrier_status["started_at"] == iso(t0)
        assert carrier_status["completed_at"] == iso(t0)
        for entry in status["sources"]:
            assert (entry["queued"], entry["running"]) == (0, 0)
        assert status["health"]["sources"]["carrier"]["healthy"] is True

        # the process goes on: the loop is alive and the next sync works
        assert orc.running
        broken.update(violations=False, inspections=False)
        again = await within(orc.sync())
        assert (again.total, again.succeeded, again.failed, again.skipped) == (4, 4, 0, 0)
        assert again.errors == []
        for target in TARGETS:
            status_after = target_status_document(
                await views.target_status(orc.store, orc.sources, target.key)
            )
            assert status_after["success"] is True and status_after["errors"] == []
        after = sync_status_document(
            await views.sync_status(orc.store, orc.sources, clock.now(), orc.config.engine.lease)
        )
        assert {s["status"] for s in after["sources"]} == {"completed"}


async def test_a_source_returning_garbage_does_not_break_other_runs_or_the_loop(
    database_url: str, clock: FakeClock
) -> None:
    class Opaque:
        def __str__(self) -> str:
            return "opaque"

    def setup(orc: Orchestrator) -> None:
        @orc.source("objects")
        async def objects(ctx: SyncContext) -> dict[str, Any]:
            return {"thing": Opaque(), "when": ctx.now(), "pages": 2}

        @orc.source("not_a_number")
        async def not_a_number(ctx: SyncContext) -> dict[str, float]:
            return {"ratio": float("nan")}

        @orc.source("text")
        async def text(ctx: SyncContext) -> str:
            return "no counts here"

        @orc.source("fine", per_target=True)
        async def fine(ctx: SyncContext) -> None:
            await ctx.upsert("row", [{"id": 1}])

    async with opened(database_url, clock, setup=setup) as orc:
        await orc.add_targets(TARGETS[:2])
        summary = await within(orc.sync())
        assert (summary.total, summary.succeeded, summary.failed) == (5, 5, 0)
        results = {run.source: dict(run.result) for run in summary.runs}
        assert results["objects"]["thing"] == "opaque"
        assert results["objects"]["when"] == str(clock.now())
        assert results["objects"]["pages"] == 2
        assert isinstance(results["not_a_number"]["ratio"], str)
        assert results["text"] == {"created": 0, "updated": 0, "unchanged": 0, "deleted": 0}
        assert results["fine"]["created"] == 1
        stored = await orc.store.get_runs([run.id for run in summary.runs])
        assert {run.state for run in stored} == {RunState.SUCCEEDED}
        assert orc.running
        again = await within(orc.sync(["fine"]))
        assert again.succeeded == 2


# --- 2. retries ----------------------------------------------------------------


async def test_retryable_errors_are_retried_after_backoff_until_success(
    database_url: str, clock: FakeClock
) -> None:
    calls: list[datetime] = []

    def setup(orc: Orchestrator) -> None:
        @orc.source("flaky", retry=RetryPolicy(attempts=3, backoff=timedelta(seconds=2)))
        async def flaky(ctx: SyncContext) -> None:
            calls.append(ctx.now())
            if len(calls) < 3:
                raise RetryableError(f"upstream hiccup {len(calls)}")

    async with opened(database_url, clock, setup=setup) as orc:
        with orc.bus.subscribe() as sub:
            syncing = asyncio.create_task(orc.sync(["flaky"]))
            for attempt in (1, 2):
                retrying = await next_event(sub, "run.retrying", source="flaky")
                assert retrying.data["attempts"] == attempt
                assert retrying.data["error"] == f"upstream hiccup {attempt}"
                retry_at = parse_iso(retrying.data["retry_at"])
                ceiling = timedelta(seconds=2 * 2 ** (attempt - 1))
                assert ceiling / 2 <= retry_at - clock.now() <= ceiling
                # back in the queue, not before retry_at, and the loop waits for it
                await loop_sleeps_until(clock, retry_at)
                run = await get_run(orc, int(retrying.data["id"]))
                assert run.state is RunState.QUEUED
                assert run.attempts == attempt
                assert run.not_before == retry_at
                assert run.error == f"upstream hiccup {attempt}"
                assert not [e for e in drain(sub) if e.type == "run.started"]
                assert len(calls) == attempt
                await clock.advance((retry_at - clock.now()).total_seconds() + 0.001)
                started = await next_event(sub, "run.started", source="flaky")
                assert started.data["id"] == retrying.data["id"]
            summary = await within(syncing)

    (run,) = summary.runs
    assert run.state is RunState.SUCCEEDED
    assert run.attempts == 3
    assert run.error is None
    assert len(calls) == 3
    assert calls[0] < calls[1] < calls[2]
    assert (summary.succeeded, summary.failed) == (1, 0)


async def test_non_retryable_errors_fail_at_once(database_url: str, clock: FakeClock) -> None:
    calls = 0

    def setup(orc: Orchestrator) -> None:
        @orc.source("buggy", retry=RetryPolicy(attempts=5))
        async def buggy(ctx: SyncContext) -> None:
            nonlocal calls
            calls += 1
            raise ValueError("bad row")

    async with opened(database_url, clock, setup=setup) as orc:
        with orc.bus.subscribe() as sub:
            summary = await within(orc.sync(["buggy"]))
            events = drain(sub)

    (run,) = summary.runs
    assert run.state is RunState.FAILED
    assert run.attempts == 1
    assert run.error == "ValueError: bad row"
    assert calls == 1
    assert "run.retrying" not in {e.type for e in events}
    assert [e.type for e in events if e.type.startswith("run.")] == [
        "run.queued",
        "run.started",
        "run.failed",
    ]
    assert summary.errors == [
        {
            "target": None,
            "name": "buggy",
            "errors": [{"source": "buggy", "error": "ValueError: bad row"}],
        }
    ]


async def test_retries_exhausted_fail_the_run(database_url: str, clock: FakeClock) -> None:
    calls = 0

    def setup(orc: Orchestrator) -> None:
        @orc.source("down", retry=RetryPolicy(attempts=3, backoff=timedelta(seconds=2)))
        async def down(ctx: SyncContext) -> None:
            nonlocal calls
            calls += 1
            raise RetryableError("service unavailable")

    async with opened(database_url, clock, setup=setup) as orc:
        with orc.bus.subscribe() as sub:
            syncing = asyncio.create_task(orc.sync(["down"]))
            for _ in range(2):
                retrying = await next_event(sub, "run.retrying", source="down")
                retry_at = parse_iso(retrying.data["retry_at"])
                await clock.advance((retry_at - clock.now()).total_seconds() + 0.001)
            failed = await next_event(sub, "run.failed", source="down")
            summary = await within(syncing)

    assert failed.data["attempts"] == 3
    assert failed.data["error"] == "service unavailable"
    (run,) = summary.runs
    assert run.state is RunState.FAILED
    assert run.attempts == 3
    assert calls == 3
    assert summary.exit_code == 1


# --- 3. not configured -----------------------------------------------------------


async def test_not_configured_skips_the_run(database_url: str, clock: FakeClock) -> None:
    def setup(orc: Orchestrator) -> None:
        @orc.source("unkeyed")
        async def unkeyed(ctx: SyncContext) -> None:
            raise NotConfigured("not configured: UNKEYED_TOKEN is not set")

        @orc.source("fine")
        async def fine(ctx: SyncContext) -> None:
            return None

    async with opened(database_url, clock, setup=setup) as orc:
        with orc.bus.subscribe() as sub:
            summary = await within(orc.sync())
            skipped = await next_event(sub, "run.skipped", source="unkeyed")
        assert skipped.data["error"] == "not configured: UNKEYED_TOKEN is not set"
        assert (summary.total, summary.succeeded, summary.failed, summary.skipped) == (2, 1, 0, 1)
        assert summary.exit_code == 0
        assert summary.errors == []
        run = next(r for r in summary.runs if r.source == "unkeyed")
        assert run.state is RunState.SKIPPED
        assert run.error == "not configured: UNKEYED_TOKEN is not set"
        status = sync_status_document(
            await views.sync_status(orc.store, orc.sources, clock.now(), orc.config.engine.lease)
        )
        assert status_of(status, "unkeyed")["status"] == "completed"
        assert status["health"]["sources"]["unkeyed"]["state"] == "skipped"
        assert status["health"]["sources"]["unkeyed"]["healthy"] is True
        assert status["health"]["all_healthy"] is True


async def test_required_api_credential_unset_skips_without_calling_the_source(
    database_url: str, clock: FakeClock
) -> None:
    config = secured_api({"env": "SECURED_KEY", "header": "X-Key", "required": True})
    called: list[str | None] = []

    def setup(orc: Orchestrator) -> None:
        @orc.source("guarded", api="secured", per_target=True)
        async def guarded(ctx: SyncContext) -> None:
            called.append(ctx.target.key if ctx.target else None)

    async with opened(database_url, clock, config, environ={}, setup=setup) as orc:
        await orc.add_targets(TARGETS[:2])
        summary = await within(orc.sync())
        assert called == []
        assert (summary.total, summary.succeeded, summary.failed, summary.skipped) == (2, 0, 0, 2)
        assert summary.exit_code == 0
        assert {run.state for run in summary.runs} == {RunState.SKIPPED}
        assert {run.error for run in summary.runs} == {"not configured: SECURED_KEY is not set"}
        status = target_status_document(await views.target_status(orc.store, orc.sources, "dot:1"))
        assert status["sources"]["guarded"]["state"] == "skipped"
        assert status["success"] is True
        assert status["errors"] == []


# --- 4. deduplication ------------------------------------------------------------


async def test_requests_deduplicate_while_queued_and_queue_one_follow_up_while_running(
    database_url: str, clock: FakeClock
) -> None:
    release = asyncio.Event()
    entered = asyncio.Event()
    calls = 0

    def setup(orc: Orchestrator) -> None:
        @orc.source("orders", per_target=True)
        async def orders(ctx: SyncContext) -> None:
            nonlocal calls
            calls += 1
            entered.set()
            await release.wait()

    async with opened(database_url, clock, setup=setup) as orc:
        await orc.add_targets(TARGETS[:1])
        (first,) = await orc.request(["orders"], targets=["dot:1"])
        (second,) = await orc.request(["orders"], targets=["dot:1"])
        assert first.deduplicated is False
        assert second.deduplicated is True
        assert second.run.id == first.run.id
        (other_mode,) = await orc.request(["orders"], targets=["dot:1"], mode=Mode.FULL)
        assert other_mode.deduplicated is False and other_mode.run.id != first.run.id
        await orc.cancel(other_mode.run.id)

        orc.start(schedule=False)
        await within(entered.wait())
        assert (await get_run(orc, first.run.id)).state is RunState.RUNNING
        during = [(await orc.request(["orders"], targets=["dot:1"]))[0] for _ in range(3)]
        assert [answer.deduplicated for answer in during] == [False, True, True]
        assert len({answer.run.id for answer in during}) == 1
        follow_up = during[0].run.id
        assert follow_up != first.run.id
        queued = await orc.store.list_runs(source="orders", state=RunState.QUEUED)
        assert [run.id for run in queued] == [follow_up]
        assert calls == 1

        release.set()
        finals = await within(orc.wait_for([first.run.id, follow_up]))
        runs = await orc.store.get_runs(finals)
        assert [run.state for run in runs] == [RunState.SUCCEEDED, RunState.SUCCEEDED]
        assert calls == 2


# --- 5. groups ---------------------------------------------------------------------


async def test_a_group_never_runs_more_than_max_running(
    database_url: str, clock: FakeClock
) -> None:
    config = cfg({"groups": [{"name": "erp", "max_running": 1}]})
    grouped = ("customers", "products", "prices")
    release = {name: asyncio.Event() for name in (*grouped, "solo")}
    entered = {name: asyncio.Event() for name in (*grouped, "solo")}
    running: set[str] = set()
    peak = {"erp": 0, "all": 0}

    def instrument(name: str) -> Callable[[SyncContext], Awaitable[None]]:
        async def run(ctx: SyncContext) -> None:
            running.add(name)
            peak["erp"] = max(peak["erp"], len(running & set(grouped)))
            peak["all"] = max(peak["all"], len(running))
            entered[name].set()
            try:
                await release[name].wait()
            finally:
                running.discard(name)

        return run

    def setup(orc: Orchestrator) -> None:
        for name in grouped:
            orc.source(name, group="erp")(instrument(name))
        orc.source("solo")(instrument("solo"))

    async with opened(database_url, clock, config, setup=setup) as orc:
        syncing = asyncio.create_task(orc.sync())
        await within(entered["solo"].wait())
        order = []
        for _ in grouped:
            await until(lambda: bool(running & set(grouped)), "a grouped source to run")
            (current,) = running & set(grouped)
            order.append(current)
            assert "solo" in running  # the ungrouped source runs alongside
            release[current].set()

            def ended(name: str = current) -> bool:
                return name not in running

            await until(ended, f"{current} to end")
        assert sorted(order) == sorted(grouped)
        release["solo"].set()
        summary = await within(syncing)

    assert peak["erp"] == 1
    assert peak["all"] == 2
    assert summary.succeeded == 4


# --- 6. priority -------------------------------------------------------------------


async def test_the_highest_priority_queued_run_starts_next(
    database_url: str, clock: FakeClock
) -> None:
    config = cfg({"engine": {"workers": 1}})
    release = asyncio.Event()
    entered = asyncio.Event()

    def setup(orc: Orchestrator) -> None:
        @orc.source("blocker")
        async def blocker(ctx: SyncContext) -> None:
            entered.set()
            await release.wait()

        for name, priority in (("low_a", 1), ("low_b", 1), ("middle", 3), ("high", 5)):
            orc.source(name, priority=priority)(_noop)

    async with opened(database_url, clock, config, setup=setup) as orc:
        with orc.bus.subscribe(["run.started"]) as sub:
            (block,) = await orc.request(["blocker"])
            orc.start(schedule=False)
            await within(entered.wait())
            queued = [
                *await orc.request(["low_a"]),
                *await orc.request(["low_b"]),
                *await orc.request(["middle"]),
                *await orc.request(["high"]),
            ]
            assert all(answer.run.state is RunState.QUEUED for answer in queued)
            release.set()
            await within(orc.wait_for([answer.run.id for answer in queued]))
            started = [event.data["source"] for event in drain(sub)]

    assert started == ["blocker", "high", "middle", "low_a", "low_b"]
    assert block.run.priority == 0


async def _noop(ctx: SyncContext) -> None:
    return None


# --- 7. cancellation ---------------------------------------------------------------


async def test_cancelling_a_queued_run_ends_it_at_once(database_url: str, clock: FakeClock) -> None:
    called = False

    def setup(orc: Orchestrator) -> None:
        @orc.source("slow")
        async def slow(ctx: SyncContext) -> None:
            nonlocal called
            called = True

    async with opened(database_url, clock, setup=setup) as orc:
        with orc.bus.subscribe() as sub:
            (answer,) = await orc.request(["slow"])
            cancelled = await orc.cancel(answer.run.id)
            assert cancelled is not None
            assert cancelled.state is RunState.CANCELLED
            event = await next_event(sub, "run.cancelled", id=str(answer.run.id))
            assert event.data["source"] == "slow"
        assert await within(orc.wait_for([answer.run.id])) == [answer.run.id]
        assert (await get_run(orc, answer.run.id)).state is RunState.CANCELLED
        orc.start(schedule=False)
        # the loop has nothing to run: the cancelled run never starts
        await loop_sleeps_until(clock, clock.now() + timedelta(seconds=10))
        assert called is False
        assert await orc.cancel(10_000) is None


async def test_cancelling_a_running_run_cancels_its_task(
    database_url: str, clock: FakeClock
) -> None:
    entered = asyncio.Event()
    saw_cancel = False

    def setup(orc: Orchestrator) -> None:
        @orc.source("stuck", per_target=True)
        async def stuck(ctx: SyncContext) -> None:
            nonlocal saw_cancel
            entered.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                saw_cancel = True
                raise

    async with opened(database_url, clock, setup=setup) as orc:
        await orc.add_targets(TARGETS[:1])
        with orc.bus.subscribe() as sub:
            syncing = asyncio.create_task(orc.sync(["stuck"]))
            started = await next_event(sub, "run.started", source="stuck")
            await within(entered.wait())
            run_id = int(started.data["id"])
            answer = await orc.cancel(run_id)
            assert answer is not None and answer.state is RunState.RUNNING
            event = await next_event(sub, "run.cancelled", id=str(run_id))
            summary = await within(syncing)
        assert saw_cancel is True
        assert event.data["error"] == "cancelled"
        run = await get_run(orc, run_id)
        assert run.state is RunState.CANCELLED
        assert run.error == "cancelled"
        assert summary.failed == 1
        status = target_status_document(await views.target_status(orc.store, orc.sources, "dot:1"))
        assert status["sources"]["stuck"]["state"] == "cancelled"
        assert await orc.store.list_runs(state=RunState.QUEUED) == []


# --- 8. graceful shutdown ------------------------------------------------------------


async def test_stop_lets_runs_finish_within_grace_and_interrupts_the_rest(
    database_url: str, clock: FakeClock
) -> None:
    entered = {"quick": asyncio.Event(), "hang": asyncio.Event()}
    release_quick = asyncio.Event()
    quick_done = asyncio.Event()

    def setup(orc: Orchestrator) -> None:
        @orc.source("quick")
        async def quick(ctx: SyncContext) -> None:
            entered["quick"].set()
            await release_quick.wait()
            await ctx.upsert("thing", [{"id": 1}])
            quick_done.set()

        @orc.source("hang")
        async def hang(ctx: SyncContext) -> None:
            entered["hang"].set()
            await asyncio.Event().wait()

    async with opened(database_url, clock, setup=setup) as orc:
        with orc.bus.subscribe() as sub:
            answers = {a.run.source: a.run.id for a in await orc.request(["quick", "hang"])}
            orc.start(schedule=False)
            await within(entered["quick"].wait())
            await within(entered["hang"].wait())
            grace_ends = clock.now() + timedelta(seconds=5)
            stopping = asyncio.create_task(orc.stop(grace=timedelta(seconds=5)))
            await loop_sleeps_until(clock, grace_ends)  # stop() waits out the grace
            release_quick.set()  # this run ends within the grace
            await within(quick_done.wait())
            assert not stopping.done()
            await clock.advance(6)
            await within(stopping)
            events = drain(sub)

        quick_run = await get_run(orc, answers["quick"])
        assert quick_run.state is RunState.SUCCEEDED
        assert quick_run.result["created"] == 1
        hang_run = await get_run(orc, answers["hang"])
        assert hang_run.state is RunState.INTERRUPTED
        assert hang_run.error == "interrupted: shutting down"
        by_type = {(e.type, e.data.get("source")) for e in events}
        assert ("run.succeeded", "quick") in by_type
        assert ("run.interrupted", "hang") in by_type
        queued = await orc.store.list_runs(source="hang", state=RunState.QUEUED)
        assert len(queued) == 1
        assert queued[0].trigger == "recovery"
        assert queued[0].id != hang_run.id
        assert await orc.store.list_runs(state=RunState.RUNNING) == []
        assert await orc.store.list_runs(source="quick", state=RunState.QUEUED) == []


# --- 9. records ----------------------------------------------------------------------


async def test_upsert_counts_changes_events_and_delete_missing_only_on_success(
    database_url: str, clock: FakeClock
) -> None:
    rows: list[dict[str, Any]] = []
    plan = {"delete_missing": False, "fail": False}

    def setup(orc: Orchestrator) -> None:
        @orc.source("items")
        async def items(ctx: SyncContext) -> dict[str, str]:
            await ctx.upsert("item", rows, key="id")
            if plan["delete_missing"]:
                ctx.delete_missing("item")
            if plan["fail"]:
                raise RuntimeError("connection dropped after the last page")
            return {"mode": ctx.mode.value}

    async def sync_once(orc: Orchestrator, mode: Mode = Mode.AUTO) -> tuple[Run, list[Event]]:
        with orc.bus.subscribe(["records.changed"]) as sub:
            summary = await within(orc.sync(["items"], mode=mode))
            (run,) = summary.runs
            return run, drain(sub)

    async def stored(include_deleted: bool = False) -> dict[str, Any]:
        page, _ = await orc.store.list_records(
            RecordQuery(kind="item", include_deleted=include_deleted)
        )
        return {row.key: row for row in page}

    async with opened(database_url, clock, setup=setup) as orc:
        rows[:] = [{"id": "a", "v": 1}, {"id": "b", "v": 1}]
        run, changed = await sync_once(orc)
        assert run.state is RunState.SUCCEEDED
        assert run.result == {
            "created": 2,
            "updated": 0,
            "unchanged": 0,
            "deleted": 0,
            "mode": "full",
        }
        (event,) = changed
        assert event.data["source"] == "items" and event.data["target"] is None
        assert event.data["kind"] == "item"
        assert (event.data["created"], event.data["updated"], event.data["deleted"]) == (2, 0, 0)
        assert sorted(event.data["keys"]) == ["a", "b"]

        await clock.advance(60)
        rows[:] = [{"id": "a", "v": 1}, {"id": "b", "v": 2}, {"id": "c", "v": 1}]
        run, changed = await sync_once(orc)
        assert run.result["created"] == 1
        assert run.result["updated"] == 1
        assert run.result["unchanged"] == 1
        assert run.result["deleted"] == 0
        (event,) = changed
        assert sorted(event.data["keys"]) == ["b", "c"]
        assert event.data["unchanged"] == 1

        # unchanged rows only: no records.changed event
        run, changed = await sync_once(orc)
        assert (run.result["created"], run.result["updated"], run.result["unchanged"]) == (0, 0, 3)
        assert changed == []

        # a full run that fails after delete_missing deletes nothing
        await clock.advance(60)
        rows[:] = [{"id": "a", "v": 1}]
        plan.update(delete_missing=True, fail=True)
        run, changed = await sync_once(orc, Mode.FULL)
        assert run.state is RunState.FAILED
        assert run.error == "RuntimeError: connection dropped after the last page"
        assert run.result["deleted"] == 0
        assert changed == []
        assert sorted(await stored()) == ["a", "b", "c"]

        # the same full run succeeding deletes what it did not see
        await clock.advance(60)
        plan.update(fail=False)
        run, changed = await sync_once(orc, Mode.FULL)
        assert run.state is RunState.SUCCEEDED
        assert run.result["deleted"] == 2
        assert run.result["unchanged"] == 1
        (event,) = changed
        assert event.data["deleted"] == 2
        assert sorted(await stored()) == ["a"]
        everything = await stored(include_deleted=True)
        assert sorted(everything) == ["a", "b", "c"]
        assert everything["b"].deleted_at == clock.now()
        assert everything["a"].deleted_at is None

        # an incremental run deletes nothing even when asked to
        rows[:] = []
        run, changed = await sync_once(orc, Mode.INCREMENTAL)
        assert run.state is RunState.SUCCEEDED
        assert run.result["deleted"] == 0
        assert sorted(await stored()) == ["a"]


# --- 10. secrets -----------------------------------------------------------------------

SECRET = "s3cr3t-Token-9f8e7d"


def secured_api(auth: dict[str, Any]) -> Config:
    """A config with the API "secured" (never reached: nothing listens on port 9)."""
    return cfg({"apis": [{"name": "secured", "base_url": "http://127.0.0.1:9", "auth": auth}]})


@pytest.mark.parametrize("uses_client", [True, False], ids=["client-built", "no-client"])
async def test_a_credential_in_an_error_never_reaches_runs_status_or_events(
    database_url: str, clock: FakeClock, uses_client: bool, caplog: pytest.LogCaptureFixture
) -> None:
    config = secured_api({"env": "SECURED_KEY", "query": "apiKey", "required": True})

    def setup(orc: Orchestrator) -> None:
        @orc.source("leaky", api="secured", per_target=True, retry=RetryPolicy(attempts=1))
        async def leaky(ctx: SyncContext) -> None:
            if uses_client:
                assert ctx.http is not None
            ctx.log.warning(f"calling with key {SECRET}")
            raise ValueError(f"upstream rejected key {SECRET} for {ctx.target}")

    caplog.set_level(logging.DEBUG, logger="synchestra")
    environ = {"SECURED_KEY": SECRET}
    async with opened(database_url, clock, config, environ=environ, setup=setup) as orc:
        await orc.add_targets(TARGETS[:1])
        with orc.bus.subscribe() as sub:
            summary = await within(orc.sync())
            events = drain(sub)
        (run,) = summary.runs
        assert run.state is RunState.FAILED
        assert run.error is not None and "***" in run.error
        documents = {
            "run": (await get_run(orc, run.id)).error,
            "summary": summary.as_dict(),
            "target": target_status_document(
                await views.target_status(orc.store, orc.sources, "dot:1")
            ),
            "sources": sync_status_document(
                await views.sync_status(
                    orc.store, orc.sources, clock.now(), orc.config.engine.lease
                )
            ),
            "events": [event.to_dict() for event in events],
        }
    for name, document in documents.items():
        text = json.dumps(document, default=str)
        assert SECRET not in text, name
    assert "***" in json.dumps(documents["events"])
    assert "***" in json.dumps(documents["target"])
    assert SECRET not in caplog.text


async def test_a_credential_passed_as_a_log_argument_is_masked(
    database_url: str, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    config = secured_api({"env": "SECURED_KEY", "header": "X-Key", "required": True})

    def setup(orc: Orchestrator) -> None:
        @orc.source("chatty", api="secured")
        async def chatty(ctx: SyncContext) -> None:
            assert ctx.http is not None
            ctx.log.warning("calling with key %s", SECRET)

    caplog.set_level(logging.DEBUG, logger="synchestra")
    environ = {"SECURED_KEY": SECRET}
    async with opened(database_url, clock, config, environ=environ, setup=setup) as orc:
        summary = await within(orc.sync())
    assert summary.succeeded == 1
    assert "calling with key ***" in caplog.text
    assert SECRET not in caplog.text
