"""The store's queue on SQLite and PostgreSQL: enqueue, deduplication, claim order and limits."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from store_helpers import claim, complete, enqueue_one, ids, request, state_of
from synchestra.core.claims import ClaimLimits
from synchestra.core.clock import FakeClock
from synchestra.core.models import Mode, Outcome, RunState
from synchestra.store import Store

# --- enqueue and deduplication ------------------------------------------------


async def test_enqueue_queues_a_new_run(store: Store, clock: FakeClock) -> None:
    now = clock.now()
    (enqueued,) = await store.enqueue(
        [request("violations", "dot:1", priority=3, group="g", api="a")], now
    )
    assert not enqueued.deduplicated
    run = enqueued.run
    assert (run.source, run.target, run.mode) == ("violations", "dot:1", Mode.FULL)
    assert (run.priority, run.group, run.api, run.trigger) == (3, "g", "a", "manual")
    assert run.state is RunState.QUEUED
    assert run.attempts == 0
    assert run.queued_at == now
    assert run.not_before == now
    assert await store.get_runs([run.id]) == [run]


async def test_enqueue_without_target_keeps_none(store: Store, clock: FakeClock) -> None:
    run = await enqueue_one(store, request("orders", None), clock.now())
    assert run.target is None
    (stored,) = await store.get_runs([run.id])
    assert stored.target is None
    assert stored.pair == ("orders", None)


async def test_same_sync_is_deduplicated(store: Store, clock: FakeClock) -> None:
    first = await enqueue_one(store, request(), clock.now())
    await clock.advance(5)
    (again,) = await store.enqueue([request()], clock.now())
    assert again.deduplicated
    assert again.run.id == first.id
    assert again.run.queued_at == first.queued_at
    assert ids(await store.list_runs(state=RunState.QUEUED)) == [first.id]


async def test_other_mode_target_or_source_is_a_new_run(store: Store, clock: FakeClock) -> None:
    now = clock.now()
    base = await enqueue_one(store, request(), now)
    answers = await store.enqueue(
        [
            request(mode=Mode.INCREMENTAL),
            request(target="t2"),
            request(target=None),
            request(source="other"),
        ],
        now,
    )
    assert not any(a.deduplicated for a in answers)
    assert len({base.id, *(a.run.id for a in answers)}) == 5


async def test_dedup_raises_priority_and_never_lowers_it(store: Store, clock: FakeClock) -> None:
    now = clock.now()
    low = await enqueue_one(store, request("a", priority=1), now)
    mid = await enqueue_one(store, request("b", priority=3), now)
    (raised,) = await store.enqueue([request("a", priority=5)], now)
    assert raised.deduplicated
    assert raised.run.id == low.id
    assert raised.run.priority == 5
    (lowered,) = await store.enqueue([request("a", priority=0)], now)
    assert lowered.deduplicated
    assert lowered.run.priority == 5
    (stored,) = await store.get_runs([low.id])
    assert stored.priority == 5
    # The raised priority also decides the claim order.
    assert ids(await claim(store, now, capacity=1)) == [low.id]
    assert ids(await claim(store, now, capacity=1)) == [mid.id]


async def test_duplicates_in_one_call_become_one_run(store: Store, clock: FakeClock) -> None:
    answers = await store.enqueue(
        [request(priority=1), request(priority=4), request(priority=2)], clock.now()
    )
    assert len({a.run.id for a in answers}) == 1
    assert all(a.run.priority == 4 for a in answers)
    assert len(await store.list_runs()) == 1


async def test_request_while_running_queues_one_follow_up(store: Store, clock: FakeClock) -> None:
    now = clock.now()
    first = await enqueue_one(store, request(), now)
    assert ids(await claim(store, now)) == [first.id]
    (follow_up,) = await store.enqueue([request()], now)
    assert not follow_up.deduplicated
    assert follow_up.run.id != first.id
    (again,) = await store.enqueue([request()], now)
    assert again.deduplicated
    assert again.run.id == follow_up.run.id
    assert ids(await store.list_runs(state=RunState.QUEUED)) == [follow_up.run.id]


async def test_concurrent_enqueues_from_two_stores_queue_one_run(
    database_url: str, store: Store, clock: FakeClock
) -> None:
    other = await Store.open(database_url)
    try:
        now = clock.now()
        reqs = [request(target=f"t{i}") for i in range(20)]
        results = await asyncio.gather(
            *(s.enqueue(reqs, now) for s in (store, other, store, other))
        )
        for answers in results:
            assert [a.run.id for a in answers] == [a.run.id for a in results[0]]
        assert len(await store.list_runs(state=RunState.QUEUED, limit=100)) == 20
    finally:
        await other.close()


# --- claim order ------------------------------------------------------------


async def test_claim_takes_highest_priority_first(store: Store, clock: FakeClock) -> None:
    now = clock.now()
    by_priority = {
        p: await enqueue_one(store, request(f"s{p}", priority=p), now) for p in (1, 5, -2, 3)
    }
    claimed = await claim(store, now, capacity=10)
    assert ids(claimed) == [by_priority[p].id for p in (5, 3, 1, -2)]
    assert all(r.state is RunState.RUNNING for r in claimed)


async def test_claim_is_fifo_within_a_priority(store: Store, clock: FakeClock) -> None:
    queued = []
    for name in ("c", "a", "b"):
        queued.append(await enqueue_one(store, request(name, priority=2), clock.now()))
        await clock.advance(1)
    # Same instant: the order of queueing (id) decides.
    same = await store.enqueue([request("z", priority=2), request("y", priority=2)], clock.now())
    expected = ids(queued) + [a.run.id for a in same]
    assert sorted(expected[3:]) == expected[3:]
    got = []
    for _ in expected:
        got += ids(await claim(store, clock.now(), capacity=1))
    assert got == expected


async def test_aging_lets_a_long_waiting_low_priority_run_win(
    store: Store, clock: FakeClock
) -> None:
    old = await enqueue_one(store, request("low", priority=0), clock.now())
    await clock.advance((store.aging + timedelta(seconds=1)).total_seconds())
    await enqueue_one(store, request("high", priority=1), clock.now())
    assert ids(await claim(store, clock.now(), capacity=1)) == [old.id]


async def test_aging_needs_the_full_interval(store: Store, clock: FakeClock) -> None:
    await enqueue_one(store, request("low", priority=0), clock.now())
    await clock.advance((store.aging - timedelta(seconds=1)).total_seconds())
    fresh = await enqueue_one(store, request("high", priority=1), clock.now())
    assert ids(await claim(store, clock.now(), capacity=1)) == [fresh.id]


async def test_aging_counts_several_levels(store: Store, clock: FakeClock) -> None:
    old = await enqueue_one(store, request("low", priority=-2), clock.now())
    await clock.advance((store.aging * 3 + timedelta(seconds=1)).total_seconds())
    await enqueue_one(store, request("high", priority=1), clock.now())
    assert ids(await claim(store, clock.now(), capacity=1)) == [old.id]


async def test_claim_respects_capacity(store: Store, clock: FakeClock) -> None:
    now = clock.now()
    await store.enqueue([request(target=f"t{i}") for i in range(5)], now)
    assert len(await claim(store, now, capacity=2)) == 2
    assert len(await claim(store, now, capacity=0)) == 0
    assert len(await claim(store, now, capacity=10)) == 3
    assert await claim(store, now) == []


async def test_claim_marks_running_with_owner_and_attempt(store: Store, clock: FakeClock) -> None:
    now = clock.now()
    queued = await enqueue_one(store, request(), now)
    await clock.advance(30)
    (run,) = await claim(store, clock.now())
    assert run.id == queued.id
    assert run.state is RunState.RUNNING
    assert run.attempts == 1
    assert run.started_at == clock.now()
    assert run.finished_at is None
    assert await store.get_runs([run.id]) == [run]


# --- claim limits -------------------------------------------------------------


async def test_group_allows_one_by_default(store: Store, clock: FakeClock) -> None:
    now = clock.now()
    answers = await store.enqueue(
        [request(f"s{i}", group="erp", priority=-i) for i in range(3)], now
    )
    first = await claim(store, now)
    assert ids(first) == [answers[0].run.id]
    assert await claim(store, now) == []
    await complete(store, Outcome(run=first[0], state=RunState.SUCCEEDED, finished_at=now))
    assert ids(await claim(store, now)) == [answers[1].run.id]


async def test_group_max_running(store: Store, clock: FakeClock) -> None:
    now = clock.now()
    await store.enqueue([request(f"s{i}", group="g") for i in range(4)], now)
    await store.enqueue([request("free")], now)
    limits = ClaimLimits(group_max={"g": 2})
    claimed = await claim(store, now, limits=limits)
    assert sorted(r.group or "-" for r in claimed) == ["-", "g", "g"]
    assert await claim(store, now, limits=limits) == []
    # A wider limit lets more in; the running ones still count.
    assert len(await claim(store, now, limits=ClaimLimits(group_max={"g": 3}))) == 1


async def test_api_cap(store: Store, clock: FakeClock) -> None:
    now = clock.now()
    await store.enqueue([request(f"s{i}", api="datahub") for i in range(4)], now)
    await store.enqueue([request(f"u{i}", api="unbounded") for i in range(4)], now)
    limits = ClaimLimits(api_cap={"datahub": 2})
    claimed = await claim(store, now, limits=limits)
    assert sorted(r.api or "" for r in claimed) == ["datahub"] * 2 + ["unbounded"] * 4
    assert await claim(store, now, limits=limits) == []


async def test_saturated_api_waits(store: Store, clock: FakeClock) -> None:
    now = clock.now()
    hot = await enqueue_one(store, request("hot", api="a", priority=9), now)
    cold = await enqueue_one(store, request("cold", api="b"), now)
    plain = await enqueue_one(store, request("plain"), now)
    limits = ClaimLimits(saturated_apis=frozenset({"a"}))
    assert ids(await claim(store, now, limits=limits)) == [cold.id, plain.id]
    assert await claim(store, now, limits=limits) == []
    assert ids(await claim(store, now)) == [hot.id]


async def test_blocked_high_priority_lets_a_lower_one_start(store: Store, clock: FakeClock) -> None:
    now = clock.now()
    busy = await enqueue_one(store, request("busy", group="g", priority=1), now)
    assert ids(await claim(store, now)) == [busy.id]
    await enqueue_one(store, request("blocked", group="g", priority=9), now)
    low = await enqueue_one(store, request("low", group="h", priority=0), now)
    assert ids(await claim(store, now, capacity=1)) == [low.id]


async def test_no_overlap_of_a_source_and_target(store: Store, clock: FakeClock) -> None:
    now = clock.now()
    full = await enqueue_one(store, request(mode=Mode.FULL, priority=2), now)
    incremental = await enqueue_one(store, request(mode=Mode.INCREMENTAL, priority=1), now)
    other_target = await enqueue_one(store, request(target="t2"), now)
    assert ids(await claim(store, now)) == [full.id, other_target.id]
    follow_up = await enqueue_one(store, request(mode=Mode.FULL, priority=5), now)
    assert await claim(store, now) == []
    (running,) = await store.get_runs([full.id])
    claimed = await claim(
        store, now, outcomes=[Outcome(run=running, state=RunState.SUCCEEDED, finished_at=now)]
    )
    # Completing and claiming in one transaction frees the pair at once.
    assert ids(claimed) == [follow_up.id]
    assert await state_of(store, incremental.id) is RunState.QUEUED


async def test_no_target_runs_do_not_overlap(store: Store, clock: FakeClock) -> None:
    now = clock.now()
    await store.enqueue([request("orders", None, mode=m) for m in Mode], now)
    assert len(await claim(store, now)) == 1
    assert await claim(store, now) == []


async def test_not_before_is_respected(store: Store, clock: FakeClock) -> None:
    now = clock.now()
    later = now + timedelta(seconds=60)
    run = await enqueue_one(store, request(not_before=later), now)
    assert run.not_before == later
    assert await store.next_due() == later
    assert await claim(store, now + timedelta(seconds=59)) == []
    assert ids(await claim(store, later)) == [run.id]
    assert await store.next_due() is None


async def test_next_due_is_the_earliest(store: Store, clock: FakeClock) -> None:
    now = clock.now()
    assert await store.next_due() is None
    await enqueue_one(store, request("a", not_before=now + timedelta(hours=1)), now)
    await enqueue_one(store, request("b", not_before=now + timedelta(minutes=5)), now)
    assert await store.next_due() == now + timedelta(minutes=5)


async def test_blocked_candidates_beyond_one_page_do_not_hide_a_run(
    store: Store, clock: FakeClock
) -> None:
    """More than a page of high-ranked runs whose pair runs: the low one behind them starts."""
    now = clock.now()
    targets = [f"t{i}" for i in range(80)]
    await store.enqueue([request(target=t, mode=Mode.FULL) for t in targets], now)
    assert len(await claim(store, now, capacity=100)) == 80
    blocked = [request(target=t, mode=m, priority=9) for t in targets for m in Mode]
    await store.enqueue(blocked, now)
    low = await enqueue_one(store, request("lonely", priority=-5), now)
    assert ids(await claim(store, now, capacity=5)) == [low.id]


async def test_concurrent_claims_never_overlap(
    database_url: str, store: Store, clock: FakeClock
) -> None:
    """Two stores (as two processes would) claiming at once respect pairs and groups."""
    now = clock.now()
    reqs = [
        request(f"s{i % 3}", f"t{i % 4}", mode=m, group="g" if i % 2 else None)
        for i in range(12)
        for m in (Mode.FULL, Mode.INCREMENTAL)
    ]
    await store.enqueue(reqs, now)
    other = await Store.open(database_url)
    limits = ClaimLimits(group_max={"g": 2})
    try:
        batches = await asyncio.gather(
            *(
                claim(s, now, capacity=2, limits=limits, owner=f"w{n}")
                for n, s in enumerate([store, other] * 4)
            )
        )
    finally:
        await other.close()
    claimed = [r for batch in batches for r in batch]
    assert len({r.id for r in claimed}) == len(claimed)
    assert len({r.pair for r in claimed}) == len(claimed)
    assert sum(r.group == "g" for r in claimed) <= 2
    running = await store.list_runs(state=RunState.RUNNING, limit=100)
    assert sorted(ids(running)) == sorted(ids(claimed))
    # Every free pair got claimed: 12 pairs, 2 of them limited by the group.
    assert len(claimed) == len({(r.source, r.target) for r in reqs if r.group is None}) + 2


async def test_a_claim_restricted_to_some_runs_leaves_the_others(
    store: Store, clock: FakeClock
) -> None:
    """``sync`` claims the runs it asked for, never another process's queued work."""
    now = clock.now()
    mine = await enqueue_one(store, request(target="t1", priority=0), now)
    theirs = await enqueue_one(store, request(target="t2", priority=9), now)
    picked = await claim(store, now, limits=ClaimLimits(only=frozenset({mine.id})))
    assert ids(picked) == [mine.id]
    assert await state_of(store, theirs.id) is RunState.QUEUED
