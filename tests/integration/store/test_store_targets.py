"""The store's targets: put, get, page, remove."""

from __future__ import annotations

from store_helpers import (
    claim,
    complete,
    enqueue_one,
    record_map,
    request,
    rows,
    scope,
    state_of,
)
from synchestra.core.clock import FakeClock
from synchestra.core.models import Outcome, RunState, Target
from synchestra.core.records import RecordQuery
from synchestra.store import Store

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
