"""The store's schedules (one fire per due time) and its run listings."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from store_helpers import claim, complete, enqueue_one, ids, request
from synchestra.core.clock import FakeClock
from synchestra.core.models import Outcome, RunState
from synchestra.store import Store

# --- scheduling ----------------------------------------------------------------


async def test_fire_happens_once_per_due_time(
    database_url: str, store: Store, clock: FakeClock
) -> None:
    now = clock.now()
    await store.ensure_sources(["s"], now)
    await store.set_next_fire("s", now)
    following = now + timedelta(hours=1)
    reqs = [request(target="t1"), request(target="t2")]
    other = await Store.open(database_url)
    try:
        answers = await asyncio.gather(
            *(
                s.fire("s", due=now, following=following, requests=reqs, now=now)
                for s in (store, other, store, other)
            )
        )
    finally:
        await other.close()
    fired = [a for a in answers if a is not None]
    assert len(fired) == 1
    assert [e.run.target for e in fired[0]] == ["t1", "t2"]
    assert (await store.source_rows())["s"].next_fire_at == following
    assert len(await store.list_runs()) == 2
    # A stale due time fires nothing.
    assert await store.fire("s", due=now, following=following, requests=reqs, now=now) is None


async def test_active_runs_of_a_target(store: Store, clock: FakeClock) -> None:
    now = clock.now()
    await enqueue_one(store, request("done"), now)
    (done,) = await claim(store, now)
    await complete(store, Outcome(run=done, state=RunState.SUCCEEDED, finished_at=now))
    await store.enqueue([request("a", priority=1), request("b"), request("a", "t2")], now)
    assert [r.source for r in await claim(store, now, capacity=1)] == ["a"]
    active = await store.active_runs("t1")
    assert sorted((r.source, r.state) for r in active) == [
        ("a", RunState.RUNNING),
        ("b", RunState.QUEUED),
    ]
    assert await store.active_runs("t9") == []


# --- run listings ---------------------------------------------------------------


async def test_list_runs_filters_and_orders_newest_first(store: Store, clock: FakeClock) -> None:
    now = clock.now()
    answers = await store.enqueue(
        [request("a", "t1"), request("a", "t2"), request("b", "t1"), request("b", None)], now
    )
    made = [a.run.id for a in answers]
    assert ids(await store.list_runs()) == sorted(made, reverse=True)
    assert ids(await store.list_runs(limit=2)) == sorted(made, reverse=True)[:2]
    assert ids(await store.list_runs(source="a")) == [made[1], made[0]]
    assert ids(await store.list_runs(target="t1")) == [made[2], made[0]]
    assert ids(await store.list_runs(source="b", target="t1")) == [made[2]]
    await claim(store, now, capacity=1)
    assert len(await store.list_runs(state=RunState.RUNNING)) == 1
    assert len(await store.list_runs(state=RunState.QUEUED)) == 3
    assert await store.list_runs(state=RunState.FAILED) == []


async def test_get_runs_keeps_the_asked_order(store: Store, clock: FakeClock) -> None:
    answers = await store.enqueue([request(target=f"t{i}") for i in range(3)], clock.now())
    a, b, c = (x.run.id for x in answers)
    assert ids(await store.get_runs([c, a, 999_999, b])) == [c, a, b]
    assert await store.get_runs([]) == []
