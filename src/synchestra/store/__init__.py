"""The database behind synchestra: one :class:`Store` over SQLite or PostgreSQL.

:class:`Store` implements the contract of :mod:`.abc` (the behaviour of each
method is stated there) and only composes: it opens each method's transaction
and hands the connection to the modules beside it, which hold the statements,
grouped by what they touch: :mod:`.queue` (enqueue, claim, leases),
:mod:`.runs` (reading runs), :mod:`.completion` (how attempts end),
:mod:`.status`, :mod:`.records`, :mod:`.versions`, :mod:`.targets`,
:mod:`.overview` (what the dashboard reads); :mod:`.database` holds the
dialect set-up. It takes and returns :mod:`synchestra.core` values only.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence, Set
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any, Self

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from synchestra.core.claims import ClaimLimits, Turn
from synchestra.core.clock import Clock
from synchestra.core.errors import LeaseLost
from synchestra.core.models import Backlog, Enqueued, Outcome, Run, RunRequest, RunState, Target
from synchestra.core.records import ChangeCounts, Record, RecordQuery, RecordScope
from synchestra.core.status import GridPage, PairStatus, SourceRow
from synchestra.core.workers import Beat, Fence, SchedulerTerm, WorkerInfo, WorkerStatus
from synchestra.store import (
    completion,
    overview,
    queue,
    records,
    runs,
    status,
    targets,
    versions,
    wakeups,
    workers,
)
from synchestra.store.abc import DataStore, RecordStore
from synchestra.store.database import (
    create_engine,
    for_writing,
    is_current,
    lock_for_claim,
    migrate,
    presence_engine,
)
from synchestra.store.failures import retry_conflicts
from synchestra.store.wakeups import Listener

__all__ = ["DataStore", "RecordStore", "Store"]

_PAGE = 2_000
"""Records per read when :meth:`Store.all_records` gathers many."""


class Store(DataStore):
    """Runs, status, targets and records in one database."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        aging: timedelta = timedelta(minutes=10),
        database_clock: Clock | None = None,
    ) -> None:
        self.engine = engine
        self.aging = aging
        # Tests stand in for the database's time; production asks the database.
        self.database_clock = database_clock
        # SQLite has one writer: queue this process's writers here, in order, instead
        # of letting them poll SQLite's lock with its sleeping busy handler.
        self._one_writer = asyncio.Lock() if engine.dialect.name == "sqlite" else None
        self._write_engine = for_writing(engine)
        self._presence_engine = presence_engine(engine)

    @asynccontextmanager
    async def _renewing(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction for a renewal: its own connection on PostgreSQL."""
        if self._presence_engine is self.engine:
            async with self._writing() as conn:
                yield conn
            return
        async with self._presence_engine.begin() as conn:
            yield conn

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
    async def open(
        cls,
        url: str,
        *,
        aging: timedelta = timedelta(minutes=10),
        database_clock: Clock | None = None,
        read_only: bool = False,
    ) -> Self:
        """Connect and migrate the schema to the newest revision.

        ``read_only``: migrate only a database whose schema is not current (a
        new one, or an older release's): one already current is not written to.
        """
        engine = create_engine(url)
        try:
            if not (read_only and await is_current(engine)):
                await migrate(engine)
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine, aging=aging, database_clock=database_clock)

    async def _now(self, conn: AsyncConnection) -> datetime:
        if self.database_clock is not None:
            return self.database_clock.now()
        return await workers.database_now(conn)

    async def close(self) -> None:
        if self._presence_engine is not self.engine:
            await self._presence_engine.dispose()
        await self.engine.dispose()

    async def listen(self, on_notice: Callable[[], None]) -> Listener:
        """Call ``on_notice`` when another process queued, cancelled or ended runs.

        A hint on PostgreSQL (``LISTEN`` on a connection of its own); nothing on
        SQLite. Close the listener before the store.
        """
        listener = Listener(self.engine, on_notice)
        await listener.open()
        return listener

    # --- queue -------------------------------------------------------------

    @retry_conflicts
    async def enqueue(self, requests: Sequence[RunRequest], now: datetime) -> list[Enqueued]:
        async with self._writing() as conn:
            await wakeups.announce(conn)
            return await queue.enqueue(conn, requests, now, self.aging)

    @retry_conflicts
    async def complete_and_claim(
        self,
        outcomes: Sequence[Outcome],
        *,
        now: datetime,
        capacity: int,
        limits: ClaimLimits,
        owner: str,
    ) -> Turn:
        async with self._writing() as conn:
            if outcomes or capacity > 0:
                await lock_for_claim(conn)  # first: the lock order (see .database)
            turn = await completion.complete(conn, outcomes, self.aging)
            if capacity > 0:
                turn.claimed = await completion.claim_with_inputs(
                    conn, now=now, capacity=capacity, limits=limits, owner=owner
                )
            if outcomes:  # a waiter elsewhere may be waiting for one of them
                await wakeups.announce(conn)
            return turn

    @retry_conflicts
    async def cancel(self, run_id: int, now: datetime) -> Run | None:
        async with self._writing() as conn:
            await wakeups.announce(conn)
            return await completion.cancel(conn, run_id, now)

    # --- the processes -------------------------------------------------------

    async def database_now(self) -> datetime:
        async with self.engine.connect() as conn:
            return await self._now(conn)

    @retry_conflicts
    async def register_worker(self, info: WorkerInfo) -> None:
        async with self._writing() as conn:
            await workers.register(conn, info, await self._now(conn))

    @retry_conflicts
    async def heartbeat(
        self, worker_id: str, *, running: int, lease: timedelta, roles: Sequence[str]
    ) -> Beat:
        async with self._renewing() as conn:
            now = await self._now(conn)
            if not await workers.renew(conn, worker_id, running, roles, now):
                return Beat(alive=False)
            scheduler = "scheduler" in roles
            term = await workers.hold_scheduler(conn, worker_id, now, lease) if scheduler else None
            return Beat(
                alive=True, cancel=await workers.cancel_requests(conn, worker_id), term=term
            )

    @retry_conflicts
    async def unregister_worker(self, worker_id: str) -> None:
        async with self._writing() as conn:
            await workers.unregister(conn, worker_id)
            await wakeups.announce(conn)  # a scheduler that stops is replaced at once

    async def workers(self, lease: timedelta) -> list[WorkerStatus]:
        async with self.engine.connect() as conn:
            return await workers.listing(conn, await self._now(conn), lease)

    @retry_conflicts
    async def recover(
        self,
        me: str,
        *,
        lease: timedelta,
        gone: Callable[[WorkerInfo], bool],
        running_here: Set[int] | None = None,
    ) -> list[tuple[Run, Enqueued | None]]:
        async with self._writing() as conn:
            await lock_for_claim(conn)
            now = await self._now(conn)
            return await completion.recover(
                conn,
                me=me,
                now=now,
                lease=lease,
                gone=gone,
                running_here=running_here,
                aging=self.aging,
            )

    async def get_runs(self, ids: Sequence[int]) -> list[Run]:
        async with self.engine.connect() as conn:
            return await runs.fetch_runs(conn, ids)

    async def list_runs(
        self,
        *,
        source: str | None = None,
        target: str | None = None,
        state: RunState | None = None,
        limit: int = 50,
    ) -> list[Run]:
        async with self.engine.connect() as conn:
            return await runs.list_runs(
                conn, source=source, target=target, state=state, limit=limit
            )

    async def active_runs(self, target: str) -> list[Run]:
        async with self.engine.connect() as conn:
            return await runs.active_runs(conn, target)

    async def run_counts(self) -> dict[tuple[str, str], int]:
        async with self.engine.connect() as conn:
            return await runs.run_counts(conn)

    async def backlog(self) -> dict[str | None, Backlog]:
        async with self.engine.connect() as conn:
            return await runs.backlog(conn)

    async def next_due(self) -> datetime | None:
        async with self.engine.connect() as conn:
            return await runs.next_due(conn)

    # --- the dashboard -----------------------------------------------------

    async def grid_page(self, *, search: str = "", limit: int = 50, offset: int = 0) -> GridPage:
        async with self.engine.connect() as conn:
            return await overview.grid_page(conn, search=search, limit=limit, offset=offset)

    async def runs_started_since(self, since: datetime, *, limit: int = 500) -> list[Run]:
        async with self.engine.connect() as conn:
            return await overview.runs_started_since(conn, since, limit)

    # --- status ------------------------------------------------------------

    @retry_conflicts
    async def ensure_sources(self, names: Sequence[str], now: datetime) -> None:
        async with self._writing() as conn:
            await status.ensure_sources(conn, names, now)

    async def source_rows(self) -> dict[str, SourceRow]:
        async with self.engine.connect() as conn:
            return await status.source_rows(conn)

    @retry_conflicts
    async def set_next_fire(self, source: str, next_fire_at: datetime | None) -> None:
        async with self._writing() as conn:
            await status.set_next_fire(conn, source, next_fire_at, None)

    @retry_conflicts
    async def set_first_fire(
        self, source: str, next_fire_at: datetime, term: SchedulerTerm
    ) -> None:
        async with self._writing() as conn:
            if await workers.holds(conn, term, await self._now(conn)):
                await status.set_first_fire(conn, source, next_fire_at)

    @retry_conflicts
    async def fire(
        self,
        source: str,
        *,
        due: datetime,
        following: datetime | None,
        requests: Sequence[RunRequest],
        now: datetime,
        term: SchedulerTerm | None = None,
    ) -> list[Enqueued] | None:
        async with self._writing() as conn:
            await lock_for_claim(conn)  # it writes source_state, then runs: one order
            if term is not None and not await workers.holds(conn, term, await self._now(conn)):
                return None
            if not await status.advance_fire(conn, source, due, following):
                return None
            await wakeups.announce(conn)
            return await queue.enqueue(conn, requests, now, self.aging)

    async def run_inputs(
        self, source: str, target: str | None
    ) -> tuple[Target | None, PairStatus | None]:
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

    @retry_conflicts
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
        async with self.engine.connect() as conn:
            return set(await targets.get_many(conn, set(keys)))

    async def target_keys(self) -> list[str]:
        async with self.engine.connect() as conn:
            return await targets.keys(conn)

    @retry_conflicts
    async def remove_target(self, key: str, now: datetime) -> bool:
        async with self._writing() as conn:
            return await targets.remove(conn, key, now)

    # --- records -----------------------------------------------------------

    @retry_conflicts
    async def upsert_records(
        self,
        scope: RecordScope,
        rows: Sequence[tuple[str, Mapping[str, Any]]],
        now: datetime,
        *,
        fence: Fence | None = None,
    ) -> ChangeCounts:
        async with self._writing() as conn:
            if fence is not None and fence.run_id not in await queue.still_owned(conn, [fence]):
                raise LeaseLost(fence.run_id)
            return await records.upsert(conn, scope, rows, now)

    @retry_conflicts
    async def mark_missing_deleted(self, scope: RecordScope, now: datetime) -> int:
        async with self._writing() as conn:
            return await records.mark_missing_deleted(conn, scope, now)

    async def all_records(self, kind: str, target: str, *, limit: int = 100_000) -> list[Record]:
        """Gathered page by page, each page its own read (writers run between them)."""
        found: list[Record] = []
        cursor: str | None = None
        while len(found) < limit:
            query = RecordQuery(kind, target, limit=min(_PAGE, limit - len(found)), cursor=cursor)
            page, cursor = await self.list_records(query)
            found.extend(page)
            if cursor is None:
                break
        return found

    async def versions_at(self, ids: Sequence[int], moment: datetime) -> dict[int, dict[str, Any]]:
        async with self.engine.connect() as conn:
            return await versions.as_of(conn, ids, moment)

    async def list_records(self, query: RecordQuery) -> tuple[list[Record], str | None]:
        async with self.engine.connect() as conn:
            return await records.list_records(conn, query)
