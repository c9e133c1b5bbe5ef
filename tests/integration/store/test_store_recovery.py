"""The store cancelling runs and recovering those of dead processes (silent past their lease)."""

from __future__ import annotations

from datetime import timedelta

from store_helpers import (
    LEASE,
    OWNER,
    claim,
    complete,
    enqueue_one,
    ids,
    register,
    request,
    state_of,
)
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


async def beat(store: Store, worker_id: str = OWNER) -> tuple[bool, tuple[int, ...]]:
    answer = await store.heartbeat(worker_id, running=0, lease=LEASE, roles=("worker",))
    return answer.alive, answer.cancel


async def test_cancel_a_running_run_asks_its_worker(store: Store, clock: FakeClock) -> None:
    now = clock.now()
    await register(store, OWNER, "someone-else")
    await store.enqueue([request(target="t1"), request(target="t2")], now)
    first, second = await claim(store, now)
    assert await beat(store) == (True, ())
    answer = await store.cancel(first.id, now)
    assert answer is not None
    assert answer.state is RunState.RUNNING
    assert await beat(store) == (True, (first.id,))
    assert await beat(store, "someone-else") == (True, ())
    assert await state_of(store, second.id) is RunState.RUNNING
    await complete(
        store, Outcome(run=first, state=RunState.CANCELLED, finished_at=now, error="cancelled")
    )
    assert await beat(store) == (True, ())


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
    await store.recover("me", lease=LEASE, gone=lambda _: True)  # its owner never registered
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
    await register(store, "dead-worker", "live-worker")
    (dead,) = await claim(store, now, capacity=1, owner="dead-worker")
    (alive,) = await claim(store, now, capacity=1, owner="live-worker")

    recovered = await store.recover(
        "live-worker", lease=LEASE, gone=lambda info: info.id == "dead-worker"
    )
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


async def recover(store: Store, me: str) -> list[int]:
    """Recovery by liveness alone (no same-host check): the runs it interrupted."""
    return [old.id for old, _ in await store.recover(me, lease=LEASE, gone=lambda _: False)]


async def test_recover_the_runs_of_processes_silent_past_their_lease(
    store: Store, clock: FakeClock
) -> None:
    now = clock.now()
    await register(store, "renewing", "silent")
    await store.enqueue([request(target="t1"), request(target="t2")], now)
    (renewed,) = await claim(store, now, capacity=1, owner="renewing")
    (lapsing,) = await claim(store, now, capacity=1, owner="silent")
    clock.set(now + LEASE)
    assert await recover(store, "renewing") == []  # not past it yet
    assert await beat(store, "renewing") == (True, ())

    clock.set(now + LEASE + timedelta(seconds=1))
    assert await recover(store, "renewing") == [lapsing.id]
    assert await state_of(store, lapsing.id) is RunState.INTERRUPTED
    assert await state_of(store, renewed.id) is RunState.RUNNING
    assert await beat(store, "silent") == (False, ())  # it learns it lost its runs

    clock.set(now + LEASE * 2 + timedelta(seconds=1))
    assert await recover(store, "renewing") == []  # never itself
    assert await recover(store, "observer") == [renewed.id]
    listed = {w.info.id: w.live for w in await store.workers(LEASE)}
    assert listed == {"renewing": False, "silent": False}


async def test_an_outcome_of_a_run_taken_over_writes_nothing(
    store: Store, clock: FakeClock
) -> None:
    now = clock.now()
    await store.ensure_sources(["s"], now)
    await register(store, "paused")
    await enqueue_one(store, request(), now)
    (taken,) = await claim(store, now, owner="paused")
    clock.set(now + LEASE + timedelta(seconds=1))
    ((_, again),) = await store.recover("observer", lease=LEASE, gone=lambda _: False)
    assert again is not None
    (rerun,) = await claim(store, clock.now(), owner="observer")
    assert rerun.id == again.run.id

    late = Outcome(run=taken, state=RunState.SUCCEEDED, finished_at=clock.now())
    turn = await complete(store, late)
    assert turn.lost == [taken.id]
    (stored,) = await store.get_runs([taken.id])
    assert stored.state is RunState.INTERRUPTED
    assert stored.continued_by == rerun.id
    pair = await store.pair_status("s", "t1")
    assert pair is not None and pair.last_success is None


async def test_recover_joins_a_queued_follow_up(store: Store, clock: FakeClock) -> None:
    now = clock.now()
    await enqueue_one(store, request(priority=1), now)
    (running,) = await claim(store, now)
    follow_up = await enqueue_one(store, request(priority=0), now)
    ((old, again),) = await store.recover("me", lease=LEASE, gone=lambda _: True)
    assert again is not None
    assert old.id == running.id
    assert again.deduplicated
    assert again.run.id == follow_up.id
    assert again.run.priority == 1
    assert ids(await store.list_runs(state=RunState.QUEUED)) == [follow_up.id]


async def test_recover_with_nothing_to_do(store: Store, clock: FakeClock) -> None:
    await enqueue_one(store, request(), clock.now())
    assert await store.recover("me", lease=LEASE, gone=lambda _: True) == []
    assert len(await store.list_runs(state=RunState.QUEUED)) == 1


async def test_recover_a_claim_its_own_process_never_started(
    store: Store, clock: FakeClock
) -> None:
    """Say the claim's commit failed ambiguously: the run is ``running``, its task never was."""
    now = clock.now()
    await register(store, "me")
    await store.enqueue([request(target="t1"), request(target="t2")], now)
    started, forgotten = await claim(store, now, owner="me")
    recovered = await store.recover(
        "me", lease=LEASE, gone=lambda _: False, running_here={started.id}
    )
    assert [old.id for old, _ in recovered] == [forgotten.id]
    assert await state_of(store, started.id) is RunState.RUNNING
