"""The store on SQLite and PostgreSQL: queue, claim, completion, recovery, records, targets."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest

from synchestra.core.claims import ClaimLimits, Turn
from synchestra.core.clock import FakeClock
from synchestra.core.errors import InputError
from synchestra.core.models import Mode, Outcome, Run, RunRequest, RunState, Target
from synchestra.core.records import RecordQuery, RecordScope
from synchestra.store import Store

LEASE = timedelta(minutes=5)
OWNER = "worker-1"


def request(
    source: str = "s",
    target: str | None = "t1",
    *,
    mode: Mode = Mode.FULL,
    priority: int = 0,
    group: str | None = None,
    api: str | None = None,
    not_before: datetime | None = None,
) -> RunRequest:
    return RunRequest(
        source=source,
        target=target,
        mode=mode,
        priority=priority,
        group=group,
        api=api,
        not_before=not_before,
    )


async def enqueue_one(store: Store, req: RunRequest, now: datetime) -> Run:
    (enqueued,) = await store.enqueue([req], now)
    return enqueued.run


async def claim(
    store: Store,
    now: datetime,
    *,
    capacity: int = 10,
    limits: ClaimLimits | None = None,
    owner: str = OWNER,
    lease: timedelta = LEASE,
    outcomes: Sequence[Outcome] = (),
) -> list[Run]:
    turn = await store.complete_and_claim(
        outcomes,
        now=now,
        capacity=capacity,
        limits=limits or ClaimLimits(),
        owner=owner,
        lease=lease,
    )
    return [c.run for c in turn.claimed]


async def complete(store: Store, *outcomes: Outcome) -> Turn:
    turn = await store.complete_and_claim(
        outcomes,
        now=outcomes[0].finished_at,
        capacity=0,
        limits=ClaimLimits(),
        owner=OWNER,
        lease=LEASE,
    )
    assert turn.claimed == []
    return turn


async def state_of(store: Store, run_id: int) -> RunState:
    (run,) = await store.get_runs([run_id])
    return run.state


def ids(runs: Sequence[Run]) -> list[int]:
    return [r.id for r in runs]


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


# --- completion and status ----------------------------------------------------


async def test_success_and_failure_show_in_pair_and_source_status(
    store: Store, clock: FakeClock
) -> None:
    await store.ensure_sources(["violations", "idle"], clock.now())
    queued = await enqueue_one(store, request("violations", "dot:1"), clock.now())
    rows = await store.source_rows()
    assert rows["violations"].queued == 1
    assert rows["idle"].consecutive_failures == 0
    (run,) = await claim(store, clock.now())
    started = clock.now()
    rows = await store.source_rows()
    assert (rows["violations"].queued, rows["violations"].running) == (0, 1)
    assert rows["violations"].last_started == started

    await clock.advance(10)
    await complete(
        store,
        Outcome(
            run=run,
            state=RunState.SUCCEEDED,
            finished_at=clock.now(),
            result={"created": 2},
            watermark={"since": "2026-01-01"},
            watermark_set=True,
            full_run=True,
        ),
    )
    (done,) = await store.get_runs([queued.id])
    assert done.state is RunState.SUCCEEDED
    assert done.finished_at == clock.now()
    assert dict(done.result) == {"created": 2}
    success_at = clock.now()
    pair = await store.pair_status("violations", "dot:1")
    assert pair is not None
    assert pair.state == "succeeded"
    assert pair.last_attempt == pair.last_success == pair.last_full_run == success_at
    assert pair.error is None
    assert pair.watermark == {"since": "2026-01-01"}
    source = (await store.source_rows())["violations"]
    assert source.last_success == source.last_finished == success_at
    assert source.last_state == "succeeded"
    assert (source.consecutive_failures, source.running, source.failing_targets) == (0, 0, 0)

    for attempt in (1, 2):
        await clock.advance(60)
        await enqueue_one(store, request("violations", "dot:1"), clock.now())
        (run,) = await claim(store, clock.now())
        await complete(
            store,
            Outcome(
                run=run,
                state=RunState.FAILED,
                finished_at=clock.now(),
                error=f"HTTP 503 #{attempt}",
            ),
        )
        source = (await store.source_rows())["violations"]
        assert source.consecutive_failures == attempt
        assert source.last_state == "failed"
        assert source.last_error == f"HTTP 503 #{attempt}"
        assert source.last_success == success_at
        assert source.failing_targets == 1
    (pair_row,) = await store.pair_statuses("dot:1")
    assert pair_row.state == "failed"
    assert pair_row.error == "HTTP 503 #2"
    assert pair_row.error_at == pair_row.last_attempt == clock.now()
    assert pair_row.last_success == success_at
    assert pair_row.watermark == {"since": "2026-01-01"}  # a failure keeps the watermark

    await clock.advance(60)
    await enqueue_one(store, request("violations", "dot:1"), clock.now())
    (run,) = await claim(store, clock.now())
    await complete(store, Outcome(run=run, state=RunState.SUCCEEDED, finished_at=clock.now()))
    source = (await store.source_rows())["violations"]
    assert (source.consecutive_failures, source.failing_targets) == (0, 0)
    pair = await store.pair_status("violations", "dot:1")
    assert pair is not None
    assert (pair.state, pair.error, pair.error_at) == ("succeeded", None, None)
    assert pair.last_success == clock.now()
    assert pair.last_full_run == success_at  # not a full run this time


async def test_skipped_run_keeps_failure_count(store: Store, clock: FakeClock) -> None:
    await store.ensure_sources(["s"], clock.now())
    for state in (RunState.FAILED, RunState.SKIPPED):
        await enqueue_one(store, request(), clock.now())
        (run,) = await claim(store, clock.now())
        await complete(
            store, Outcome(run=run, state=state, finished_at=clock.now(), error=state.value)
        )
    source = (await store.source_rows())["s"]
    assert source.consecutive_failures == 1
    assert source.last_state == "skipped"
    pair = await store.pair_status("s", "t1")
    assert pair is not None
    assert (pair.state, pair.error) == ("skipped", "skipped")


async def test_status_of_a_source_without_target(store: Store, clock: FakeClock) -> None:
    await enqueue_one(store, request("orders", None), clock.now())
    (run,) = await claim(store, clock.now())
    await complete(store, Outcome(run=run, state=RunState.SUCCEEDED, finished_at=clock.now()))
    (pair,) = await store.pair_statuses(None)
    assert (pair.source, pair.target, pair.state) == ("orders", None, "succeeded")
    assert await store.pair_status("orders", None) == pair
    assert await store.pair_statuses("t1") == []


async def test_retry_requeues_and_merges_a_queued_follow_up(store: Store, clock: FakeClock) -> None:
    now = clock.now()
    first = await enqueue_one(store, request(priority=2), now)
    (running,) = await claim(store, now)
    follow_up = await enqueue_one(store, request(priority=2), now)
    other_mode = await enqueue_one(store, request(mode=Mode.INCREMENTAL), now)
    retry_at = now + timedelta(seconds=30)
    turn = await complete(
        store,
        Outcome(
            run=running, state=RunState.FAILED, finished_at=now, error="HTTP 503", retry_at=retry_at
        ),
    )
    assert turn.merged == [(follow_up.id, first.id)]
    (again, gone, untouched) = await store.get_runs([first.id, follow_up.id, other_mode.id])
    assert gone.state is RunState.CANCELLED
    assert untouched.state is RunState.QUEUED
    assert again.state is RunState.QUEUED
    assert again.not_before == retry_at
    assert again.error == "HTTP 503"
    assert again.attempts == 1
    assert ids(await store.list_runs(state=RunState.QUEUED)) == [other_mode.id, first.id]
    # A new request for the same sync now deduplicates against the retried run.
    (dedup,) = await store.enqueue([request()], now)
    assert dedup.deduplicated
    assert dedup.run.id == first.id

    # The retry waits for its time; meanwhile the pair is free for the other mode.
    assert ids(await claim(store, now)) == [other_mode.id]
    (other_running,) = await store.get_runs([other_mode.id])
    await complete(store, Outcome(run=other_running, state=RunState.SUCCEEDED, finished_at=now))
    assert await claim(store, retry_at - timedelta(seconds=1)) == []
    (second,) = await claim(store, retry_at)
    assert second.id == first.id
    assert second.attempts == 2
    assert second.started_at == retry_at


async def test_retry_without_follow_up_merges_nothing(store: Store, clock: FakeClock) -> None:
    now = clock.now()
    await enqueue_one(store, request(), now)
    (running,) = await claim(store, now)
    turn = await complete(
        store,
        Outcome(
            run=running,
            state=RunState.FAILED,
            finished_at=now,
            retry_at=now + timedelta(seconds=5),
        ),
    )
    assert turn.merged == []
    pair = await store.pair_status("s", "t1")
    assert pair is None  # a retry is not an outcome yet


async def test_one_completion_of_many_outcomes_counts_in_order(
    store: Store, clock: FakeClock
) -> None:
    now = clock.now()
    await store.ensure_sources(["s", "other"], now)
    await store.enqueue([request(target=f"t{i}") for i in range(4)], now)
    await enqueue_one(store, request("other", "t1"), now)
    running = await claim(store, now)
    assert len(running) == 5
    by_target = {(r.source, r.target): r for r in running}

    def ended(target: str, state: RunState, source: str = "s") -> Outcome:
        error = None if state is RunState.SUCCEEDED else f"{state.value} {target}"
        run = by_target[(source, target)]
        return Outcome(run=run, state=state, finished_at=now, error=error)

    await complete(
        store,
        ended("t0", RunState.FAILED),
        ended("t1", RunState.SUCCEEDED),
        ended("t2", RunState.FAILED),
        ended("t3", RunState.FAILED),
        ended("t1", RunState.FAILED, source="other"),
    )
    rows = await store.source_rows()
    assert (rows["s"].consecutive_failures, rows["s"].last_state) == (2, "failed")
    assert rows["s"].last_error == "failed t3"
    assert rows["s"].last_success == now
    assert (rows["s"].failing_targets, rows["s"].running) == (3, 0)
    assert (rows["other"].consecutive_failures, rows["other"].last_state) == (1, "failed")
    states = {
        (p.source, p.target): p.state for t in ("t0", "t1") for p in await store.pair_statuses(t)
    }
    assert states == {("s", "t0"): "failed", ("s", "t1"): "succeeded", ("other", "t1"): "failed"}
    finished = await store.get_runs(ids(running))
    assert all(r.finished_at == now and r.state.terminal for r in finished)

    # Two more failures in one call add up; a success last resets to zero.
    for target in ("t0", "t1"):
        await enqueue_one(store, request(target=target), now)
    first, second = await claim(store, now)
    by_target.update({(r.source, r.target): r for r in (first, second)})
    await complete(store, ended("t0", RunState.FAILED), ended("t1", RunState.FAILED))
    assert (await store.source_rows())["s"].consecutive_failures == 4
    for target in ("t0", "t1"):
        await enqueue_one(store, request(target=target), now)
    first, second = await claim(store, now)
    by_target.update({(r.source, r.target): r for r in (first, second)})
    await complete(store, ended("t0", RunState.FAILED), ended("t1", RunState.SUCCEEDED))
    assert (await store.source_rows())["s"].consecutive_failures == 0


async def test_claim_hands_over_target_and_pair_status(store: Store, clock: FakeClock) -> None:
    now = clock.now()
    await store.put_targets([Target("dot:1", "ACME", {"state": "TX"})], now)
    await enqueue_one(store, request("a", "dot:1"), now)
    (run,) = await claim(store, now)
    await complete(
        store,
        Outcome(
            run=run, state=RunState.SUCCEEDED, finished_at=now, watermark=7, watermark_set=True
        ),
    )
    await store.enqueue(
        [request("a", "dot:1"), request("b", "dot:1"), request("c", "missing"), request("d", None)],
        now,
    )
    turn = await store.complete_and_claim(
        [], now=now, capacity=10, limits=ClaimLimits(), owner=OWNER, lease=LEASE
    )
    by_source = {c.run.source: c for c in turn.claimed}
    assert sorted(by_source) == ["a", "b", "c", "d"]
    assert by_source["a"].target == Target("dot:1", "ACME", {"state": "TX"})
    assert by_source["a"].pair is not None
    assert (by_source["a"].pair.watermark, by_source["a"].pair.last_success) == (7, now)
    assert by_source["b"].target == by_source["a"].target
    assert by_source["b"].pair is None
    assert (by_source["c"].target, by_source["c"].pair) == (None, None)
    assert (by_source["d"].target, by_source["d"].pair) == (None, None)


async def test_interrupted_outcome_queues_the_sync_again(store: Store, clock: FakeClock) -> None:
    now = clock.now()
    await enqueue_one(store, request(priority=3, group="g"), now)
    (run,) = await claim(store, now)
    turn = await complete(
        store, Outcome(run=run, state=RunState.INTERRUPTED, finished_at=now, error="shutdown")
    )
    assert turn.merged == []
    assert await state_of(store, run.id) is RunState.INTERRUPTED
    (requeued,) = turn.requeued
    assert not requeued.deduplicated
    (again,) = await store.list_runs(state=RunState.QUEUED)
    assert again == requeued.run
    assert again.id != run.id
    assert (again.source, again.target, again.mode, again.priority, again.group) == (
        "s",
        "t1",
        Mode.FULL,
        3,
        "g",
    )
    assert again.trigger == "recovery"


async def test_retry_merge_keeps_the_follow_ups_higher_priority(
    store: Store, clock: FakeClock
) -> None:
    now = clock.now()
    first = await enqueue_one(store, request(priority=0), now)
    (running,) = await claim(store, now)
    follow_up = await enqueue_one(store, request(priority=9), now)
    retry_at = now + timedelta(seconds=30)
    turn = await complete(
        store, Outcome(run=running, state=RunState.FAILED, finished_at=now, retry_at=retry_at)
    )
    assert turn.merged == [(follow_up.id, first.id)]
    (again,) = await store.get_runs([first.id])
    # The same request made after the retry would have raised the priority to 9.
    assert again.priority == 9


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


# --- records --------------------------------------------------------------------


def scope(
    run_id: int = 1, *, kind: str = "violation", target: str | None = "dot:1", attempt: int = 1
) -> RecordScope:
    return RecordScope(
        kind=kind, target=target, source="violations", run_id=run_id, attempt=attempt
    )


def rows(*items: tuple[str, int]) -> list[tuple[str, dict[str, Any]]]:
    return [(key, {"key": key, "value": value}) for key, value in items]


async def record_map(store: Store, query: RecordQuery) -> dict[str, dict[str, Any]]:
    found, cursor = await store.list_records(query)
    assert cursor is None
    return {row.key: dataclasses.asdict(row) for row in found}


async def test_upsert_counts_created_updated_unchanged(store: Store, clock: FakeClock) -> None:
    t0 = clock.now()
    counts = await store.upsert_records(scope(1), rows(("a", 1), ("b", 1), ("c", 1)), t0)
    assert counts.as_dict() == {"created": 3, "updated": 0, "unchanged": 0, "deleted": 0}

    await clock.advance(60)
    t1 = clock.now()
    counts = await store.upsert_records(scope(2), rows(("a", 1), ("b", 2), ("d", 1)), t1)
    assert (counts.created, counts.updated, counts.unchanged) == (1, 1, 1)

    found = await record_map(store, RecordQuery("violation"))
    assert sorted(found) == ["a", "b", "c", "d"]
    assert found["a"]["data"] == {"key": "a", "value": 1}
    assert (found["a"]["first_seen"], found["a"]["last_seen"], found["a"]["changed_at"]) == (
        t0,
        t1,
        t0,
    )
    assert found["b"]["data"] == {"key": "b", "value": 2}
    assert (found["b"]["first_seen"], found["b"]["changed_at"]) == (t0, t1)
    assert found["c"]["last_seen"] == t0
    assert found["d"]["first_seen"] == t1
    assert all(r["deleted_at"] is None for r in found.values())
    assert all(r["target"] == "dot:1" and r["source"] == "violations" for r in found.values())


async def test_upsert_is_idempotent(store: Store, clock: FakeClock) -> None:
    batch = rows(("a", 1), ("b", 1))
    await store.upsert_records(scope(1), batch, clock.now())
    for _ in range(3):
        counts = await store.upsert_records(scope(1), batch, clock.now())
        assert (counts.created, counts.updated, counts.unchanged) == (0, 0, 2)
    found, _ = await store.list_records(RecordQuery("violation", include_deleted=True))
    assert len(found) == 2


async def test_upsert_repeated_key_keeps_the_last(store: Store, clock: FakeClock) -> None:
    counts = await store.upsert_records(scope(1), rows(("a", 1), ("a", 2)), clock.now())
    assert (counts.created, counts.updated, counts.unchanged) == (1, 0, 0)
    found = await record_map(store, RecordQuery("violation"))
    assert found["a"]["data"] == {"key": "a", "value": 2}


async def test_same_key_in_other_kind_or_target_is_another_record(
    store: Store, clock: FakeClock
) -> None:
    now = clock.now()
    await store.upsert_records(scope(1), rows(("a", 1)), now)
    other_kind = await store.upsert_records(scope(1, kind="basic"), rows(("a", 1)), now)
    other_target = await store.upsert_records(scope(1, target="dot:2"), rows(("a", 1)), now)
    no_target = await store.upsert_records(scope(1, target=None), rows(("a", 1)), now)
    assert other_kind.created == other_target.created == no_target.created == 1
    found, _ = await store.list_records(RecordQuery("violation"))
    assert len(found) == 3
    assert list(await record_map(store, RecordQuery("violation", target="dot:2"))) == ["a"]


async def test_mark_missing_deleted_and_reappearing(store: Store, clock: FakeClock) -> None:
    t0 = clock.now()
    await store.upsert_records(scope(1), rows(("a", 1), ("b", 1), ("c", 1), ("d", 1)), t0)
    await store.upsert_records(scope(1, target="dot:2"), rows(("a", 1)), t0)
    await store.upsert_records(scope(1, kind="basic"), rows(("a", 1)), t0)

    await clock.advance(60)
    t1 = clock.now()
    counts = await store.upsert_records(scope(2), rows(("a", 1), ("b", 5)), t1)
    assert (counts.updated, counts.unchanged) == (1, 1)
    assert await store.mark_missing_deleted(scope(2), t1) == 2
    assert await store.mark_missing_deleted(scope(2), t1) == 0  # already deleted

    live = await record_map(store, RecordQuery("violation", target="dot:1"))
    assert sorted(live) == ["a", "b"]
    every = await record_map(store, RecordQuery("violation", target="dot:1", include_deleted=True))
    assert sorted(every) == ["a", "b", "c", "d"]
    assert every["c"]["deleted_at"] == every["c"]["changed_at"] == t1
    # Other targets and kinds are out of scope.
    assert list(await record_map(store, RecordQuery("violation", target="dot:2"))) == ["a"]
    assert list(await record_map(store, RecordQuery("basic"))) == ["a"]

    await clock.advance(60)
    t2 = clock.now()
    counts = await store.upsert_records(scope(3), rows(("a", 1), ("b", 5), ("c", 1)), t2)
    assert (counts.created, counts.updated, counts.unchanged) == (0, 1, 2)
    found = await record_map(store, RecordQuery("violation", target="dot:1"))
    assert sorted(found) == ["a", "b", "c"]
    assert found["c"]["deleted_at"] is None
    assert found["c"]["changed_at"] == t2
    assert found["c"]["first_seen"] == t0
    assert await store.mark_missing_deleted(scope(3), t2) == 0  # d is deleted already


async def test_mark_missing_deleted_after_a_full_pass(store: Store, clock: FakeClock) -> None:
    """The engine's flow: a run upserts what the source has, then deletes what it did not see."""
    now = clock.now()
    await enqueue_one(store, request("violations", "dot:1"), now)
    (run,) = await claim(store, now)
    await store.upsert_records(scope(run.id), rows(("a", 1), ("b", 1)), now)
    assert await store.mark_missing_deleted(scope(run.id), now) == 0
    await enqueue_one(store, request("violations", "dot:1"), now)
    (second,) = await claim(
        store, now, outcomes=[Outcome(run=run, state=RunState.SUCCEEDED, finished_at=now)]
    )
    await store.upsert_records(scope(second.id), rows(("a", 1)), now)
    assert await store.mark_missing_deleted(scope(second.id), now) == 1


async def test_mark_missing_deleted_after_a_retried_attempt(store: Store, clock: FakeClock) -> None:
    now = clock.now()
    await enqueue_one(store, request("violations", "dot:1"), now)
    (first_attempt,) = await claim(store, now)
    await store.upsert_records(scope(first_attempt.id), rows(("a", 1), ("gone", 1)), now)
    retry_at = now + timedelta(seconds=10)
    await complete(
        store,
        Outcome(run=first_attempt, state=RunState.FAILED, finished_at=now, retry_at=retry_at),
    )
    (second_attempt,) = await claim(store, retry_at)
    assert (second_attempt.id, second_attempt.attempts) == (first_attempt.id, 2)
    # The complete, successful pass: the source no longer has "gone".
    second = scope(second_attempt.id, attempt=second_attempt.attempts)
    await store.upsert_records(second, rows(("a", 1)), retry_at)
    assert await store.mark_missing_deleted(second, retry_at) == 1


async def test_list_records_pages_with_a_cursor(store: Store, clock: FakeClock) -> None:
    now = clock.now()
    for target in ("dot:1", "dot:2"):
        await store.upsert_records(
            scope(1, target=target), rows(*((f"k{i:02}", i) for i in range(13))), now
        )
    for limit in (1, 5, 7, 13, 26, 100):
        seen: list[tuple[str | None, str]] = []
        cursor: str | None = None
        pages = 0
        while True:
            page, cursor = await store.list_records(
                RecordQuery("violation", limit=limit, cursor=cursor)
            )
            pages += 1
            assert len(page) <= limit
            seen += [(row.target, row.key) for row in page]
            if cursor is None:
                break
            assert len(page) == limit
        assert len(seen) == len(set(seen)) == 26
        assert pages == -(-26 // limit)
    page, cursor = await store.list_records(RecordQuery("violation", target="dot:2", limit=10))
    assert {row.target for row in page} == {"dot:2"}
    assert cursor is not None
    rest, end = await store.list_records(
        RecordQuery("violation", target="dot:2", limit=10, cursor=cursor)
    )
    assert end is None
    assert sorted(row.key for row in page + rest) == [f"k{i:02}" for i in range(13)]


async def test_list_records_rejects_bad_input(store: Store) -> None:
    with pytest.raises(InputError, match="cursor"):
        await store.list_records(RecordQuery("violation", cursor="not-a-cursor"))
    with pytest.raises(InputError, match="limit"):
        await store.list_records(RecordQuery("violation", limit=0))


async def test_list_records_changed_since(store: Store, clock: FakeClock) -> None:
    t0 = clock.now()
    await store.upsert_records(scope(1), rows(("a", 1), ("b", 1), ("c", 1)), t0)
    await clock.advance(60)
    t1 = clock.now()
    await store.upsert_records(scope(2), rows(("a", 1), ("b", 2)), t1)  # b changes
    await store.mark_missing_deleted(scope(2), t1)  # c deleted
    changed = await record_map(store, RecordQuery("violation", changed_since=t0))
    assert sorted(changed) == ["b"]
    changed = await record_map(
        store, RecordQuery("violation", changed_since=t0, include_deleted=True)
    )
    assert sorted(changed) == ["b", "c"]
    assert await record_map(store, RecordQuery("violation", changed_since=t1)) == {}
    earlier = await record_map(
        store, RecordQuery("violation", changed_since=t0 - timedelta(seconds=1))
    )
    assert sorted(earlier) == ["a", "b"]


# --- targets --------------------------------------------------------------------


async def test_targets_put_get_update(store: Store, clock: FakeClock) -> None:
    now = clock.now()
    assert await store.get_target("dot:1") is None
    await store.put_targets(
        [Target("dot:1", "ACME", {"state": "TX"}), Target("dot:2", "Beta")], now
    )
    assert await store.get_target("dot:1") == Target("dot:1", "ACME", {"state": "TX"})
    assert await store.get_target("dot:2") == Target("dot:2", "Beta", {})
    await store.put_targets([Target("dot:1", "ACME Freight", {"state": "OK", "x": "1"})], now)
    assert await store.get_target("dot:1") == Target(
        "dot:1", "ACME Freight", {"state": "OK", "x": "1"}
    )
    assert await store.target_keys() == ["dot:1", "dot:2"]


async def test_targets_page(store: Store, clock: FakeClock) -> None:
    keys = [f"dot:{i:03}" for i in range(25)]
    await store.put_targets([Target(k) for k in reversed(keys)], clock.now())
    seen: list[str] = []
    after: str | None = None
    while page := await store.list_targets(limit=10, after=after):
        assert len(page) <= 10
        seen += [t.key for t in page]
        after = page[-1].key
    assert seen == keys
    assert await store.target_keys() == keys


async def test_remove_target(store: Store, clock: FakeClock) -> None:
    now = clock.now()
    await store.put_targets([Target("dot:1"), Target("dot:2")], now)
    await enqueue_one(store, request("a", "dot:1"), now)
    (run,) = await claim(store, now)
    await complete(store, Outcome(run=run, state=RunState.SUCCEEDED, finished_at=now))
    queued = await enqueue_one(store, request("b", "dot:1"), now)
    kept = await enqueue_one(store, request("b", "dot:2"), now)
    await store.upsert_records(scope(run.id, target="dot:1"), rows(("r", 1)), now)

    assert await store.remove_target("dot:1", now)
    assert await store.get_target("dot:1") is None
    assert await store.target_keys() == ["dot:2"]
    assert await store.pair_statuses("dot:1") == []
    assert await state_of(store, queued.id) is RunState.CANCELLED
    assert await state_of(store, kept.id) is RunState.QUEUED
    assert list(await record_map(store, RecordQuery("violation", target="dot:1"))) == ["r"]
    assert not await store.remove_target("dot:1", now)
    assert not await store.remove_target("nope", now)
