"""The store cancelling runs and recovering those of dead processes or lapsed leases."""

from __future__ import annotations

from datetime import timedelta

from store_helpers import LEASE, OWNER, claim, complete, enqueue_one, ids, request, state_of
from synchestra.core.claims import ClaimLimits
from synchestra.core.clock import FakeClock
from synchestra.core.models import Mode, Outcome, RunState
from synchestra.store import Store

# --- cancel -------------------------------------------------------------------


async def test_cancel_a_queued_run(store: Store, clock: FakeClock) -> None:
    now = clock.now()
    run = await enqueue_one(store, request(), now)
    cancelled = await store.cancel(run.id, now)
    assert cancelled is not None
    assert cancelled.state is RunState.CANCELLED
    assert cancelled.finished_at == now
    assert await claim(store, now) == []
    # A cancelled run no longer absorbs requests.
    (fresh,) = await store.enqueue([request()], now)
    assert not fresh.deduplicated


async def test_cancel_a_running_run_asks_its_worker(store: Store, clock: FakeClock) -> None:
    now = clock.now()
    await store.enqueue([request(target="t1"), request(target="t2")], now)
    first, second = await claim(store, now)
    assert await store.renew_leases(OWNER, now + LEASE) == []
    answer = await store.cancel(first.id, now)
    assert answer is not None
    assert answer.state is RunState.RUNNING
    assert await store.renew_leases(OWNER, now + LEASE) == [first.id]
    assert await store.renew_leases("someone-else", now + LEASE) == []
    assert await state_of(store, second.id) is RunState.RUNNING
    await complete(
        store, Outcome(run=first, state=RunState.CANCELLED, finished_at=now, error="cancelled")
    )
    assert await store.renew_leases(OWNER, now + LEASE) == []


async def test_cancel_requested_run_is_not_retried(store: Store, clock: FakeClock) -> None:
    now = clock.now()
    await enqueue_one(store, request(), now)
    (running,) = await claim(store, now)
    await store.cancel(running.id, now)
    retry_at = now + timedelta(seconds=30)
    await complete(
        store, Outcome(run=running, state=RunState.FAILED, finished_at=now, retry_at=retry_at)
    )
    assert await state_of(store, running.id) is RunState.CANCELLED
    assert await claim(store, retry_at) == []


async def test_recover_does_not_requeue_a_cancelled_run(store: Store, clock: FakeClock) -> None:
    now = clock.now()
    await enqueue_one(store, request(), now)
    (running,) = await claim(store, now)
    await store.cancel(running.id, now)
    await store.recover(now, lambda _: True)
    assert await store.list_runs(state=RunState.QUEUED) == []


async def test_cancel_unknown_or_finished_run(store: Store, clock: FakeClock) -> None:
    now = clock.now()
    assert await store.cancel(12345, now) is None
    await enqueue_one(store, request(), now)
    (run,) = await claim(store, now)
    await complete(store, Outcome(run=run, state=RunState.SUCCEEDED, finished_at=now))
    answer = await store.cancel(run.id, now)
    assert answer is not None
    assert answer.state is RunState.SUCCEEDED


# --- recovery -------------------------------------------------------------------


async def test_recover_runs_of_dead_owners(store: Store, clock: FakeClock) -> None:
    now = clock.now()
    await store.ensure_sources(["s"], now)
    await enqueue_one(store, request(target="t1", priority=4, group="g", api="a"), now)
    await enqueue_one(store, request(target="t2"), now)
    (dead,) = await claim(store, now, capacity=1, owner="dead-worker")
    (alive,) = await claim(store, now, capacity=1, owner="live-worker")

    recovered = await store.recover(now, lambda owner: owner == "dead-worker")
    assert len(recovered) == 1
    old, again = recovered[0]
    assert old.id == dead.id
    assert again is not None
    assert not again.deduplicated
    assert again.run.id != dead.id
    assert again.run.state is RunState.QUEUED
    assert again.run.trigger == "recovery"
    assert (again.run.source, again.run.target, again.run.mode) == ("s", "t1", Mode.FULL)
    assert (again.run.priority, again.run.group, again.run.api) == (4, "g", "a")

    (interrupted,) = await store.get_runs([dead.id])
    assert interrupted.state is RunState.INTERRUPTED
    assert interrupted.finished_at == now
    assert interrupted.error is not None
    assert await state_of(store, alive.id) is RunState.RUNNING
    pair = await store.pair_status("s", "t1")
    assert pair is not None
    assert pair.state == "interrupted"
    assert (await store.source_rows())["s"].last_state == "interrupted"
    # The queued again run is claimable at once.
    assert ids(await claim(store, now, limits=ClaimLimits(api_cap={"a": 1}))) == [again.run.id]


async def test_recover_lapsed_leases(store: Store, clock: FakeClock) -> None:
    now = clock.now()
    await store.enqueue([request(target="t1"), request(target="t2")], now)
    (renewed,) = await claim(store, now, capacity=1, owner="renewing")
    (lapsing,) = await claim(store, now, capacity=1, owner="silent")
    assert await store.recover(now + LEASE, lambda _: False) == []  # ends now: not lapsed yet
    renewed_until = now + LEASE * 3
    assert await store.renew_leases("renewing", renewed_until) == []

    recovered = await store.recover(now + LEASE + timedelta(seconds=1), lambda _: False)
    assert [old.id for old, _ in recovered] == [lapsing.id]
    assert await state_of(store, lapsing.id) is RunState.INTERRUPTED
    assert await state_of(store, renewed.id) is RunState.RUNNING

    assert await store.recover(renewed_until, lambda _: False) == []
    recovered = await store.recover(renewed_until + timedelta(seconds=1), lambda _: False)
    assert [old.id for old, _ in recovered] == [renewed.id]
    assert await state_of(store, renewed.id) is RunState.INTERRUPTED


async def test_recover_joins_a_queued_follow_up(store: Store, clock: FakeClock) -> None:
    now = clock.now()
    await enqueue_one(store, request(priority=1), now)
    (running,) = await claim(store, now)
    follow_up = await enqueue_one(store, request(priority=0), now)
    ((old, again),) = await store.recover(now, lambda _: True)
    assert again is not None
    assert old.id == running.id
    assert again.deduplicated
    assert again.run.id == follow_up.id
    assert again.run.priority == 1
    assert ids(await store.list_runs(state=RunState.QUEUED)) == [follow_up.id]


async def test_recover_with_nothing_to_do(store: Store, clock: FakeClock) -> None:
    await enqueue_one(store, request(), clock.now())
    assert await store.recover(clock.now(), lambda _: True) == []
    assert len(await store.list_runs(state=RunState.QUEUED)) == 1
