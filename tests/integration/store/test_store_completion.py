"""The store completing attempts: pair and source status, retries, follow-ups, interruption."""

from __future__ import annotations

from datetime import timedelta

from store_helpers import OWNER, claim, complete, enqueue_one, ids, request, state_of
from synchestra.core.claims import ClaimLimits
from synchestra.core.clock import FakeClock
from synchestra.core.models import Mode, Outcome, RunState, Target
from synchestra.store import Store

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
        [], now=now, capacity=10, limits=ClaimLimits(), owner=OWNER
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
