"""The database behind synchestra: one :class:`Store` over SQLite or PostgreSQL.

Each method is one transaction. The modules beside this one hold the
statements, grouped by what they touch: :mod:`.queue` (runs), :mod:`.status`,
:mod:`.records`, :mod:`.targets`, :mod:`.overview` (what the dashboard reads);
:mod:`.database` holds the dialect set-up.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Self

from sqlalchemy import Row, false, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from synchestra.core.models import (
    Backlog,
    Enqueued,
    Outcome,
    Run,
    RunRequest,
    RunState,
    Target,
)
from synchestra.store import overview, queue, records, status, targets, versions
from synchestra.store.database import create_engine, for_writing, lock_for_claim, migrate
from synchestra.store.overview import GridPage
from synchestra.store.queue import ClaimLimits
from synchestra.store.records import ChangeCounts, RecordQuery, RecordScope
from synchestra.store.schema import runs
from synchestra.store.status import PairStatus, SourceRow

__all__ = [
    "ChangeCounts",
    "ClaimLimits",
    "Claimed",
    "GridPage",
    "PairStatus",
    "RecordQuery",
    "RecordScope",
    "SourceRow",
    "Store",
    "Turn",
]


class Store:
    """Runs, status, targets and records in one database."""

    def __init__(self, engine: AsyncEngine, *, aging: timedelta = timedelta(minutes=10)) -> None:
        self.engine = engine
        self.aging = aging
        # SQLite has one writer: queue this process's writers here, in order, instead
        # of letting them poll SQLite's lock with its sleeping busy handler.
        self._one_writer = asyncio.Lock() if engine.dialect.name == "sqlite" else None
        self._write_engine = for_writing(engine)

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction."""
        if self._one_writer is None:
            async with self._write_engine.begin() as conn:
                yield conn
            return
        async with self._one_writer, self._write_engine.begin() as conn:
            yield conn

    @classmethod
    async def open(cls, url: str, *, aging: timedelta = timedelta(minutes=10)) -> Self:
        """Connect and migrate the schema to the newest revision."""
        engine = create_engine(url)
        try:
            await migrate(engine)
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine, aging=aging)

    async def close(self) -> None:
        await self.engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- queue -------------------------------------------------------------

    async def enqueue(self, requests: Sequence[RunRequest], now: datetime) -> list[Enqueued]:
        async with self._writing() as conn:
            return await queue.enqueue(conn, requests, now, self.aging)

    async def complete_and_claim(
        self,
        outcomes: Sequence[Outcome],
        *,
        now: datetime,
        capacity: int,
        limits: ClaimLimits,
        owner: str,
        lease: timedelta,
    ) -> Turn:
        """Record finished attempts, then claim up to ``capacity`` runs: one transaction.

        The claimed runs come with what they need to start, read in the same
        transaction (a few statements per batch rather than per run).
        """
        async with self._writing() as conn:
            turn = await _complete(conn, outcomes, self.aging)
            if capacity <= 0:
                return turn
            await lock_for_claim(conn)
            claimed = await queue.claim(
                conn, now=now, capacity=capacity, limits=limits, owner=owner, lease=lease
            )
            if claimed:
                await status.record_start(conn, {r.source for r in claimed}, now)
                turn.claimed = await _with_inputs(conn, claimed)
            return turn

    async def cancel(self, run_id: int, now: datetime) -> Run | None:
        """Cancel a queued run at once; flag a running one for its worker to stop.

        Returns the run as it now stands, or None when there is no such run.
        """
        async with self._writing() as conn:
            found = await queue.fetch_runs(conn, [run_id])
            if not found:
                return None
            run = found[0]
            if run.state is RunState.QUEUED:
                await queue.finish(
                    conn, run.id, RunState.CANCELLED, at=now, error="cancelled", result={}
                )
            elif run.state is RunState.RUNNING:
                await conn.execute(
                    update(runs).where(runs.c.id == run_id).values(cancel_requested=True)
                )
            return (await queue.fetch_runs(conn, [run_id]))[0]

    async def renew_leases(self, owner: str, until: datetime) -> list[int]:
        """Extend the leases of ``owner``'s running runs; return those asked to cancel."""
        async with self._writing() as conn:
            await conn.execute(
                update(runs)
                .where(runs.c.owner == owner, runs.c.state == RunState.RUNNING.value)
                .values(lease_until=until)
            )
            rows = await conn.execute(
                select(runs.c.id).where(
                    runs.c.owner == owner,
                    runs.c.state == RunState.RUNNING.value,
                    runs.c.cancel_requested.is_(True),
                )
            )
            return [row.id for row in rows]

    async def recover(
        self, now: datetime, owner_is_dead: Callable[[str], bool]
    ) -> list[tuple[Run, Enqueued | None]]:
        """Mark ``interrupted`` the runs of dead owners or lapsed leases; queue them again."""
        async with self._writing() as conn:
            await lock_for_claim(conn)
            rows = await conn.execute(select(runs).where(runs.c.state == RunState.RUNNING.value))
            orphans = [
                queue.run_from_row(row)
                for row in rows
                if (row.lease_until is not None and row.lease_until < now)
                or owner_is_dead(row.owner or "")
            ]
            recovered = []
            for run in orphans:
                error = "interrupted: the process running it stopped"
                outcome = Outcome(run=run, state=RunState.INTERRUPTED, finished_at=now, error=error)
                again = await _interrupt(conn, outcome, self.aging)
                recovered.append((run, again))
            return recovered

    async def get_runs(self, ids: Sequence[int]) -> list[Run]:
        async with self.engine.connect() as conn:
            return await queue.fetch_runs(conn, ids)

    async def list_runs(
        self,
        *,
        source: str | None = None,
        target: str | None = None,
        state: RunState | None = None,
        limit: int = 50,
    ) -> list[Run]:
        statement = select(runs).order_by(runs.c.id.desc()).limit(limit)
        if source is not None:
            statement = statement.where(runs.c.source == source)
        if target is not None:
            statement = statement.where(runs.c.target == target)
        if state is not None:
            statement = statement.where(runs.c.state == state.value)
        async with self.engine.connect() as conn:
            return [queue.run_from_row(row) for row in await conn.execute(statement)]

    async def active_runs(self, target: str) -> list[Run]:
        """The queued and running runs of one target."""
        statement = select(runs).where(
            runs.c.target == target,
            runs.c.state.in_([RunState.QUEUED.value, RunState.RUNNING.value]),
        )
        async with self.engine.connect() as conn:
            return [queue.run_from_row(row) for row in await conn.execute(statement)]

    async def run_counts(self) -> dict[tuple[str, str], int]:
        """How many runs each (source, state) has."""
        statement = select(runs.c.source, runs.c.state, func.count().label("n")).group_by(
            runs.c.source, runs.c.state
        )
        async with self.engine.connect() as conn:
            return {(row.source, row.state): int(row.n) for row in await conn.execute(statement)}

    async def backlog(self) -> dict[str | None, Backlog]:
        """Queued and running runs per API (None: sources without an API)."""
        statement = (
            select(runs.c.api, runs.c.state, func.count().label("n"))
            .where(runs.c.state.in_([RunState.QUEUED.value, RunState.RUNNING.value]))
            .group_by(runs.c.api, runs.c.state)
        )
        counts: dict[str | None, dict[str, int]] = {}
        async with self.engine.connect() as conn:
            for row in await conn.execute(statement):
                counts.setdefault(row.api, {})[row.state] = int(row.n)
        return {
            api: Backlog(queued=states.get("queued", 0), running=states.get("running", 0))
            for api, states in counts.items()
        }

    async def next_due(self) -> datetime | None:
        """The earliest ``not_before`` among queued runs that are not due yet."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(runs.c.not_before)
                    .where(runs.c.state == RunState.QUEUED.value, runs.c.due == false())
                    .order_by(runs.c.not_before)
                    .limit(1)
                )
            ).first()
        return row.not_before if row else None

    # --- the dashboard -----------------------------------------------------

    async def grid_page(self, *, search: str = "", limit: int = 50, offset: int = 0) -> GridPage:
        """Targets whose key or name contains ``search``, with their statuses and active runs."""
        async with self.engine.connect() as conn:
            return await overview.grid_page(conn, search=search, limit=limit, offset=offset)

    async def runs_started_since(self, since: datetime, *, limit: int = 500) -> list[Run]:
        async with self.engine.connect() as conn:
            return await overview.runs_started_since(conn, since, limit)

    # --- status ------------------------------------------------------------

    async def ensure_sources(self, names: Sequence[str], now: datetime) -> None:
        async with self._writing() as conn:
            await status.ensure_sources(conn, names, now)

    async def source_rows(self) -> dict[str, SourceRow]:
        async with self.engine.connect() as conn:
            return await status.source_rows(conn)

    async def set_next_fire(self, source: str, next_fire_at: datetime | None) -> None:
        async with self._writing() as conn:
            await status.set_next_fire(conn, source, next_fire_at, None)

    async def fire(
        self,
        source: str,
        *,
        due: datetime,
        following: datetime | None,
        requests: Sequence[RunRequest],
        now: datetime,
    ) -> list[Enqueued] | None:
        """Queue one fire of ``source`` if it is still due at ``due``; None if not.

        The compare-and-set on ``next_fire_at`` makes a fire happen once even
        when several processes share the database.
        """
        async with self._writing() as conn:
            if not await status.advance_fire(conn, source, due, following):
                return None
            return await queue.enqueue(conn, requests, now, self.aging)

    async def run_inputs(
        self, source: str, target: str | None
    ) -> tuple[Target | None, PairStatus | None]:
        """What a run needs before it starts: its target and its pair status."""
        async with self.engine.connect() as conn:
            found = await targets.get(conn, target) if target is not None else None
            return found, await status.pair(conn, source, target)

    async def pair_statuses(self, target: str | None) -> list[PairStatus]:
        async with self.engine.connect() as conn:
            return await status.pair_statuses(conn, target)

    async def pair_status(self, source: str, target: str | None) -> PairStatus | None:
        async with self.engine.connect() as conn:
            return await status.pair(conn, source, target)

    # --- targets -----------------------------------------------------------

    async def put_targets(self, items: Sequence[Target], now: datetime) -> None:
        async with self._writing() as conn:
            await targets.put(conn, items, now)

    async def get_target(self, key: str) -> Target | None:
        async with self.engine.connect() as conn:
            return await targets.get(conn, key)

    async def list_targets(self, *, limit: int = 100, after: str | None = None) -> list[Target]:
        async with self.engine.connect() as conn:
            return await targets.page(conn, limit=limit, after=after)

    async def known_targets(self, keys: Sequence[str]) -> set[str]:
        """Which of ``keys`` are targets."""
        async with self.engine.connect() as conn:
            return set(await targets.get_many(conn, set(keys)))

    async def target_keys(self) -> list[str]:
        async with self.engine.connect() as conn:
            return await targets.keys(conn)

    async def remove_target(self, key: str, now: datetime) -> bool:
        async with self._writing() as conn:
            return await targets.remove(conn, key, now)

    # --- records -----------------------------------------------------------

    async def upsert_records(
        self, scope: RecordScope, rows: Sequence[tuple[str, dict[str, Any]]], now: datetime
    ) -> ChangeCounts:
        async with self._writing() as conn:
            return await records.upsert(conn, scope, rows, now)

    async def mark_missing_deleted(self, scope: RecordScope, now: datetime) -> int:
        async with self._writing() as conn:
            return await records.mark_missing_deleted(conn, scope, now)

    async def all_records(self, kind: str, target: str, *, limit: int = 100_000) -> list[Row[Any]]:
        """The live records of one kind for one target (``""``: none), up to ``limit``."""
        found: list[Row[Any]] = []
        cursor: str | None = None
        while len(found) < limit:
            page = min(2_000, limit - len(found))
            query = RecordQuery(kind=kind, target=target, limit=page, cursor=cursor)
            rows, cursor = await self.list_records(query)
            found.extend(rows)
            if cursor is None:
                break
        return found

    async def versions_at(self, ids: Sequence[int], moment: datetime) -> dict[int, dict[str, Any]]:
        """The data these records had at ``moment``, for those that changed since."""
        async with self.engine.connect() as conn:
            return await versions.as_of(conn, ids, moment)

    async def list_records(self, query: RecordQuery) -> tuple[list[Row[Any]], str | None]:
        async with self.engine.connect() as conn:
            return await records.list_records(conn, query)


@dataclass(frozen=True)
class Claimed:
    """A claimed run with what it needs to start: its target and its pair status."""

    run: Run
    target: Target | None
    pair: PairStatus | None


async def _with_inputs(conn: AsyncConnection, claimed: list[Run]) -> list[Claimed]:
    keys = {run.target for run in claimed if run.target is not None}
    found = await targets.get_many(conn, keys)
    pairs = await status.pairs_for(conn, [run.pair for run in claimed])
    return [
        Claimed(run, found.get(run.target) if run.target else None, pairs.get(run.pair))
        for run in claimed
    ]


@dataclass
class Turn:
    """What one ``complete_and_claim`` did."""

    claimed: list[Claimed] = field(default_factory=list)
    merged: list[tuple[int, int]] = field(default_factory=list)
    """(queued run absorbed by a retry, the retrying run)"""
    requeued: list[Enqueued] = field(default_factory=list)
    """Runs queued again for interrupted ones."""
    cancelled: list[int] = field(default_factory=list)
    """Runs that would have retried but were asked to cancel: they ended ``cancelled``."""
    deleted: dict[int, dict[str, int]] = field(default_factory=dict)
    """Records marked deleted by a run's success: run id -> kind -> how many."""
    recorded: dict[int, Outcome] = field(default_factory=dict)
    """Outcomes recorded with a changed result (the deletions counted), by run id."""


async def _complete(conn: AsyncConnection, outcomes: Sequence[Outcome], aging: timedelta) -> Turn:
    turn = Turn()
    ended: list[Outcome] = []
    for outcome in outcomes:
        if outcome.retry_at is not None:
            absorbed = await queue.requeue(
                conn,
                outcome.run,
                not_before=outcome.retry_at,
                error=outcome.error,
                now=outcome.finished_at,
                aging=aging,
            )
            if absorbed is None:
                turn.cancelled.append(outcome.run.id)
            else:
                turn.merged += [(run_id, outcome.run.id) for run_id in absorbed]
        elif outcome.state is RunState.INTERRUPTED:
            again = await _interrupt(conn, outcome, aging)
            if again is None:
                turn.cancelled.append(outcome.run.id)
            else:
                turn.requeued.append(again)
        else:
            ended.append(outcome)
    ended = [await _apply_deletes(conn, outcome, turn) for outcome in ended]
    await queue.finish_many(conn, ended)
    await status.record_outcomes(conn, ended)
    return turn


async def _apply_deletes(conn: AsyncConnection, outcome: Outcome, turn: Turn) -> Outcome:
    """Mark deleted what a successful full attempt did not see; count it in its result."""
    if outcome.state is not RunState.SUCCEEDED or not outcome.deletes:
        return outcome
    deleted = {
        scope.kind: await records.mark_missing_deleted(conn, scope, outcome.finished_at)
        for scope in outcome.deletes
    }
    result = dict(outcome.result)
    result["deleted"] = int(result.get("deleted", 0)) + sum(deleted.values())
    recorded = replace(outcome, result=result)
    turn.deleted[outcome.run.id] = deleted
    turn.recorded[outcome.run.id] = recorded
    return recorded


async def _finish(conn: AsyncConnection, outcome: Outcome) -> None:
    await queue.finish_many(conn, [outcome])
    await status.record_outcomes(conn, [outcome])


async def _interrupt(conn: AsyncConnection, outcome: Outcome, aging: timedelta) -> Enqueued | None:
    """End a run as ``interrupted`` and queue the same sync again, unless it was cancelled."""
    run = outcome.run
    if await queue.cancel_requested(conn, run.id):
        await _finish(conn, replace(outcome, state=RunState.CANCELLED, error="cancelled"))
        return None
    await _finish(conn, outcome)
    request = RunRequest(
        source=run.source,
        target=run.target,
        mode=run.mode,
        priority=run.priority,
        group=run.group,
        api=run.api,
        trigger="recovery",
    )
    (again,) = await queue.enqueue(conn, [request], outcome.finished_at, aging)
    return again
