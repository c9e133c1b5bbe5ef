"""The run queue in the database: enqueue with deduplication, the claim, leaving and leases.

These are the statements that change a run's state; :mod:`.completion` decides which
an ending attempt needs, :mod:`.runs` reads runs.

The claim is the heart of the engine. One transaction, serialised across
processes (SQLite's writer lock, PostgreSQL's advisory lock), picks the runs
that may start now, best first:

* only ``queued`` runs whose ``not_before`` has come (``due``: the claim first
  promotes the runs whose time came, so it never walks past delayed ones);
* never a (source, target) that is already running;
* never more than ``max_running`` runs of one group, nor more runs of one API
  than its concurrency cap, nor runs of an API the caller reports saturated;
* order: ``rank`` descending, then id (FIFO). ``rank`` is
  ``priority * aging_ms - queued_at_ms``: a run gains one priority level for
  every ``aging`` interval it has waited, so a low priority cannot starve.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, and_, bindparam, false, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncConnection

from synchestra.core.claims import ClaimLimits
from synchestra.core.models import NO_TARGET, Enqueued, Mode, Outcome, Run, RunRequest, RunState
from synchestra.core.workers import Fence
from synchestra.store.dialect import insert_for
from synchestra.store.runs import run_from_row
from synchestra.store.schema import ONLY_QUEUED, runs

_PAGE = 200
_CHUNK = 500


def rank_for(priority: int, queued_at: datetime, aging: timedelta) -> int:
    aging_ms = max(int(aging.total_seconds() * 1000), 1)
    return priority * aging_ms - int(queued_at.timestamp() * 1000)


# --- enqueue ---------------------------------------------------------------


async def enqueue(
    conn: AsyncConnection, requests: Sequence[RunRequest], now: datetime, aging: timedelta
) -> list[Enqueued]:
    """Queue each request unless an identical one (source, target, mode) is queued.

    A duplicate returns the queued run (raising its priority if the new request
    asks for more). The partial unique index ``uq_runs_queued`` makes this safe
    against concurrent enqueues from other processes.
    """
    answers: dict[tuple[str, str, str], Enqueued] = {}
    by_kind: dict[tuple[str, Mode], list[RunRequest]] = {}
    for request in requests:
        by_kind.setdefault((request.source, request.mode), []).append(request)
    for (source, mode), group in by_kind.items():
        for start in range(0, len(group), _CHUNK):
            chunk = _unique_targets(group[start : start + _CHUNK])
            for enqueued in await _enqueue_chunk(conn, source, mode, chunk, now, aging):
                key = (source, enqueued.run.target or NO_TARGET, mode.value)
                answers[key] = enqueued
    return [answers[(r.source, r.target or NO_TARGET, r.mode.value)] for r in requests]


def _unique_targets(requests: Sequence[RunRequest]) -> list[RunRequest]:
    best: dict[str, RunRequest] = {}
    for request in requests:
        key = request.target or NO_TARGET
        if key not in best or request.priority > best[key].priority:
            best[key] = request
    return list(best.values())


async def _enqueue_chunk(
    conn: AsyncConnection,
    source: str,
    mode: Mode,
    chunk: list[RunRequest],
    now: datetime,
    aging: timedelta,
) -> list[Enqueued]:
    wanted = {r.target or NO_TARGET: r for r in chunk}
    existing = await _queued_runs(conn, source, mode, list(wanted))
    fresh = [r for key, r in wanted.items() if key not in existing]
    inserted: dict[str, Run] = {}
    if fresh:
        statement = (
            insert_for(conn, runs)
            .on_conflict_do_nothing(
                index_elements=[runs.c.source, runs.c.target, runs.c.mode],
                index_where=ONLY_QUEUED,
            )
            .returning(*runs.c)
        )
        rows = await conn.execute(statement, [_new_row(r, now, aging) for r in fresh])
        inserted = {row.target: run_from_row(row) for row in rows}
    lost_races = [key for key in wanted if key not in existing and key not in inserted]
    if lost_races:  # queued meanwhile by another process: deduplicate against it
        existing |= await _queued_runs(conn, source, mode, lost_races)
    results = [Enqueued(run, deduplicated=False) for run in inserted.values()]
    for key, run in existing.items():
        results.append(Enqueued(await _merge_request(conn, run, wanted[key], now, aging), True))
    return results


async def _queued_runs(
    conn: AsyncConnection, source: str, mode: Mode, targets: list[str]
) -> dict[str, Run]:
    rows = await conn.execute(
        select(runs).where(
            runs.c.state == RunState.QUEUED.value,
            runs.c.source == source,
            runs.c.mode == mode.value,
            runs.c.target.in_(targets),
        )
    )
    return {row.target: run_from_row(row) for row in rows}


def _new_row(request: RunRequest, now: datetime, aging: timedelta) -> dict[str, Any]:
    return {
        "source": request.source,
        "target": request.target or NO_TARGET,
        "mode": request.mode.value,
        "priority": request.priority,
        "rank": rank_for(request.priority, now, aging),
        "state": RunState.QUEUED.value,
        "attempts": 0,
        "group_name": request.group,
        "api": request.api,
        "trigger": request.trigger,
        "queued_at": now,
        "not_before": request.not_before or now,
        "due": (request.not_before or now) <= now,
        "result": {},
        "cancel_requested": False,
    }


async def _merge_request(
    conn: AsyncConnection, run: Run, request: RunRequest, now: datetime, aging: timedelta
) -> Run:
    """Let a duplicate request raise the queued run's priority and bring it forward.

    A request for "now" that matches a run delayed by ``spread`` should not
    wait for that delay; a run waiting out a retry backoff keeps waiting, so
    that asking again cannot hammer a failing API.
    """
    priority = max(run.priority, request.priority)
    not_before = run.not_before
    if run.attempts == 0:
        not_before = min(not_before, request.not_before or now)
    if (priority, not_before) == (run.priority, run.not_before):
        return run
    await conn.execute(
        update(runs)
        .where(runs.c.id == run.id)
        .values(
            priority=priority,
            rank=rank_for(priority, run.queued_at, aging),
            not_before=not_before,
            due=not_before <= now,
        )
    )
    return replace(run, priority=priority, not_before=not_before)


# --- claim -----------------------------------------------------------------


@dataclass
class _Room:
    """Running counts during one claim; eligibility only shrinks as runs are picked."""

    limits: ClaimLimits
    groups: Counter[str]
    apis: Counter[str]
    pairs: set[tuple[str, str]]

    def full_groups(self) -> set[str]:
        return {g for g, n in self.groups.items() if n >= self.limits.group_limit(g)}

    def full_apis(self) -> set[str]:
        capped = {a for a, n in self.apis.items() if n >= self.limits.api_cap.get(a, n + 1)}
        return capped | set(self.limits.saturated_apis)

    def admits(self, row: Any) -> bool:
        if self.limits.only is not None and row.id not in self.limits.only:
            return False
        if (row.source, row.target) in self.pairs:
            return False
        if row.group_name is not None and row.group_name in self.full_groups():
            return False
        return row.api is None or row.api not in self.full_apis()

    def take(self, row: Any) -> bool:
        """Count ``row`` as running; True when that filled a group or an API."""
        self.pairs.add((row.source, row.target))
        filled = False
        if row.group_name is not None:
            self.groups[row.group_name] += 1
            filled |= self.groups[row.group_name] >= self.limits.group_limit(row.group_name)
        if row.api is not None:
            self.apis[row.api] += 1
            filled |= self.apis[row.api] >= self.limits.api_cap.get(row.api, self.apis[row.api] + 1)
        return filled


async def claim(
    conn: AsyncConnection,
    *,
    now: datetime,
    capacity: int,
    limits: ClaimLimits,
    owner: str,
) -> list[Run]:
    """Mark up to ``capacity`` best eligible runs ``running`` and return them.

    The caller holds the claim lock (see ``database.lock_for_claim``).
    """
    if capacity <= 0:
        return []
    await _promote_due(conn, now)
    room = await _current_room(conn, limits)
    picked: list[Row[Any]] = []
    after: tuple[int, int] | None = None
    while len(picked) < capacity:
        rows = (await conn.execute(_candidates(conn, now, room, after))).all()
        refresh = False
        for row in rows:
            after = (row.rank, row.id)
            if not room.admits(row):
                continue
            picked.append(row)
            refresh = room.take(row)
            if len(picked) >= capacity or refresh:
                break
        if not refresh and len(rows) < _PAGE:
            break
    return await _mark_running(conn, picked, now, owner)


async def _promote_due(conn: AsyncConnection, now: datetime) -> None:
    await conn.execute(
        update(runs)
        .where(
            runs.c.state == RunState.QUEUED.value,
            runs.c.due == false(),
            runs.c.not_before <= now,
        )
        .values(due=True)
    )


async def _current_room(conn: AsyncConnection, limits: ClaimLimits) -> _Room:
    rows = await conn.execute(
        select(runs.c.source, runs.c.target, runs.c.group_name, runs.c.api).where(
            runs.c.state == RunState.RUNNING.value
        )
    )
    room = _Room(limits, Counter(), Counter(), set())
    for row in rows:
        room.take(row)
    return room


def _candidates(
    conn: AsyncConnection, now: datetime, room: _Room, after: tuple[int, int] | None
) -> Any:
    query = select(runs).where(runs.c.state == RunState.QUEUED.value, runs.c.due == true())
    only = room.limits.only
    if only is not None and len(only) <= _ONLY_IN_SQL:
        query = query.where(runs.c.id.in_(sorted(only)))  # else filtered as rows come
    if full_groups := room.full_groups():
        query = query.where(or_(runs.c.group_name.is_(None), runs.c.group_name.not_in(full_groups)))
    if full_apis := room.full_apis():
        query = query.where(or_(runs.c.api.is_(None), runs.c.api.not_in(full_apis)))
    if after is not None:
        rank, run_id = after
        query = query.where(or_(runs.c.rank < rank, and_(runs.c.rank == rank, runs.c.id > run_id)))
    query = query.order_by(runs.c.rank.desc(), runs.c.id).limit(_PAGE)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return query


_ONLY_IN_SQL = 5_000
"""Up to this many runs a restricted claim names in its query (parameters are bounded)."""


async def _mark_running(
    conn: AsyncConnection, picked: list[Row[Any]], now: datetime, owner: str
) -> list[Run]:
    if not picked:
        return []
    ids = [row.id for row in picked]
    await conn.execute(
        update(runs)
        .where(runs.c.id.in_(ids), runs.c.state == RunState.QUEUED.value)
        .values(
            state=RunState.RUNNING.value,
            started_at=now,
            finished_at=None,
            attempts=runs.c.attempts + 1,
            owner=owner,
        )
    )
    rows = await conn.execute(select(runs).where(runs.c.id.in_(ids)))
    by_id = {row.id: run_from_row(row) for row in rows}
    return [by_id[i] for i in ids]


# --- leaving the running state ----------------------------------------------


async def requeue(
    conn: AsyncConnection,
    run: Run,
    *,
    not_before: datetime,
    error: str | None,
    now: datetime,
    aging: timedelta,
) -> list[int] | None:
    """Put a running run back in the queue for a retry.

    A follow-up already queued for the same sync is folded into this run: it is
    cancelled (this run starts later than it was asked for anyway) and its
    higher priority, if any, passes to this run. Returns the ids of the runs so
    cancelled, or None when the run was asked to cancel: it then ends
    ``cancelled`` instead of retrying.
    """
    if await cancel_requested(conn, run.id):
        await finish(conn, run.id, RunState.CANCELLED, at=now, error="cancelled", result={})
        return None
    duplicates = list(
        await conn.execute(
            select(runs.c.id, runs.c.priority).where(
                runs.c.state == RunState.QUEUED.value,
                runs.c.source == run.source,
                runs.c.target == (run.target or NO_TARGET),
                runs.c.mode == run.mode.value,
            )
        )
    )
    merged = [row.id for row in duplicates]
    if merged:
        await conn.execute(
            update(runs)
            .where(runs.c.id.in_(merged))
            .values(
                state=RunState.CANCELLED.value,
                finished_at=now,
                error=f"merged into run {run.id}",
                continued_by=run.id,
            )
        )
    priority = max([run.priority, *(row.priority for row in duplicates)])
    await conn.execute(
        update(runs)
        .where(runs.c.id == run.id)
        .values(
            state=RunState.QUEUED.value,
            not_before=not_before,
            due=not_before <= now,
            error=error,
            owner=None,
            priority=priority,
            rank=rank_for(priority, run.queued_at, aging),
        )
    )
    return merged


async def continue_with(conn: AsyncConnection, run_id: int, successor: int) -> None:
    """Record which run carries on ``run_id``'s sync, for whoever waits on it."""
    await conn.execute(update(runs).where(runs.c.id == run_id).values(continued_by=successor))


async def cancel_requested(conn: AsyncConnection, run_id: int) -> bool:
    flag = await conn.scalar(select(runs.c.cancel_requested).where(runs.c.id == run_id))
    return bool(flag)


async def cancel_queued(conn: AsyncConnection, run_id: int, now: datetime) -> bool:
    """End a run ``cancelled`` if it is still queued (not claimed meanwhile)."""
    result = await conn.execute(
        update(runs)
        .where(runs.c.id == run_id, runs.c.state == RunState.QUEUED.value)
        .values(state=RunState.CANCELLED.value, finished_at=now, error="cancelled", result={})
    )
    return bool(result.rowcount)


async def finish(
    conn: AsyncConnection,
    run_id: int,
    state: RunState,
    *,
    at: datetime,
    error: str | None,
    result: Mapping[str, Any],
) -> None:
    await conn.execute(
        update(runs)
        .where(runs.c.id == run_id)
        .values(
            state=state.value,
            finished_at=at,
            error=error,
            result=dict(result),
        )
    )


async def finish_many(conn: AsyncConnection, outcomes: Sequence[Outcome]) -> None:
    """Record how these attempts ended, in one executemany."""
    if not outcomes:
        return
    await conn.execute(
        update(runs)
        .where(runs.c.id == bindparam("b_id"))
        .values(
            state=bindparam("b_state"),
            finished_at=bindparam("b_at"),
            error=bindparam("b_error"),
            result=bindparam("b_result"),
        ),
        [
            {
                "b_id": o.run.id,
                "b_state": o.state.value,
                "b_at": o.finished_at,
                "b_error": o.error,
                "b_result": dict(o.result),
            }
            for o in outcomes
        ],
    )


# --- leases and cancellation -------------------------------------------------


async def request_cancel(conn: AsyncConnection, run_id: int) -> None:
    """Flag a running run: its worker sees the flag at its next renewal and stops."""
    await conn.execute(
        update(runs)
        .where(runs.c.id == run_id, runs.c.state == RunState.RUNNING.value)
        .values(cancel_requested=True)
    )


async def still_owned(conn: AsyncConnection, fences: Sequence[Fence]) -> set[int]:
    """The runs of ``fences`` that are still running in that attempt for that owner.

    On PostgreSQL the rows stay locked until the caller commits, so recovery
    cannot take a run over between this check and the writes it guards.
    """
    if not fences:
        return set()
    query = select(runs.c.id, runs.c.attempts, runs.c.owner).where(
        runs.c.id.in_([fence.run_id for fence in fences]),
        runs.c.state == RunState.RUNNING.value,
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    found = {row.id: (row.attempts, row.owner) for row in await conn.execute(query)}
    return {
        fence.run_id for fence in fences if found.get(fence.run_id) == (fence.attempt, fence.owner)
    }


async def running_of(conn: AsyncConnection, owner: str) -> list[Run]:
    rows = await conn.execute(
        select(runs).where(runs.c.state == RunState.RUNNING.value, runs.c.owner == owner)
    )
    return [run_from_row(row) for row in rows]


async def orphans(conn: AsyncConnection, live: set[str]) -> list[Run]:
    """The running runs whose owner is no live process."""
    rows = await conn.execute(select(runs).where(runs.c.state == RunState.RUNNING.value))
    return [run_from_row(row) for row in rows if row.owner not in live]
