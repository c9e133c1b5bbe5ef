"""Helpers shared by the store's tests (tests/integration/store): requests, claims, completions."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from synchestra.core.claims import ClaimLimits, Turn
from synchestra.core.models import Mode, Outcome, Run, RunRequest, RunState
from synchestra.core.records import RecordQuery, RecordScope
from synchestra.core.workers import WorkerInfo
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
    outcomes: Sequence[Outcome] = (),
) -> list[Run]:
    turn = await store.complete_and_claim(
        outcomes,
        now=now,
        capacity=capacity,
        limits=limits or ClaimLimits(),
        owner=owner,
    )
    return [c.run for c in turn.claimed]


async def complete(store: Store, *outcomes: Outcome) -> Turn:
    turn = await store.complete_and_claim(
        outcomes,
        now=outcomes[0].finished_at,
        capacity=0,
        limits=ClaimLimits(),
        owner=OWNER,
    )
    assert turn.claimed == []
    return turn


def worker(worker_id: str = OWNER, *, host_key: str = "test-host", pid: int = 1) -> WorkerInfo:
    return WorkerInfo(
        id=worker_id,
        host="test",
        pid=pid,
        host_key=host_key,
        roles=("worker",),
        capacity=4,
        version="test",
    )


async def register(store: Store, *worker_ids: str) -> None:
    for worker_id in worker_ids:
        await store.register_worker(worker(worker_id))


async def state_of(store: Store, run_id: int) -> RunState:
    (run,) = await store.get_runs([run_id])
    return run.state


def ids(runs: Sequence[Run]) -> list[int]:
    return [r.id for r in runs]


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
