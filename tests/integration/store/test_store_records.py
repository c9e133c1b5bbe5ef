"""The store's records: upserts with change detection, deletions, cursor listings."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from store_helpers import (
    claim,
    complete,
    enqueue_one,
    record_map,
    request,
    rows,
    scope,
)
from synchestra.core.clock import FakeClock
from synchestra.core.errors import InputError
from synchestra.core.models import Outcome, RunState
from synchestra.core.records import RecordQuery, RecordScope
from synchestra.store import Store

# --- records --------------------------------------------------------------------


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


async def test_concurrent_upserts_of_the_same_new_keys_create_each_once(
    database_url: str, clock: FakeClock
) -> None:
    """Two processes storing the same new records at once (two stores, two pools)."""
    first = await Store.open(database_url, database_clock=clock)
    second = await Store.open(database_url, database_clock=clock)
    scope = RecordScope("profile", "t1", "s", run_id=1, attempt=1)
    rows = [(str(key), {"v": key}) for key in range(1_200)]
    try:
        one, two = await asyncio.gather(
            first.upsert_records(scope, rows, clock.now()),
            second.upsert_records(scope, rows, clock.now()),
        )
        assert sorted([one.created, two.created]) == [0, 1_200]
        assert one.unchanged + two.unchanged == 1_200
        page, _ = await first.list_records(RecordQuery("profile", "t1", limit=10_000))
        assert len(page) == 1_200
    finally:
        await first.close()
        await second.close()


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
