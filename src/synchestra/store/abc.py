"""The store's contract: what the engine, a source and the interfaces may ask of a database.

Two abstract classes, in the manner of APScheduler's ``abc.py``. A source's
:class:`~synchestra.connectors.context.SyncContext` sees only
:class:`RecordStore`; the engine and the interfaces see :class:`DataStore`.
Both take and return :mod:`synchestra.core` values, never database rows.

Every method is one transaction: it commits before it returns, or changes
nothing when it raises. Times are aware UTC datetimes passed in by the caller
(the store never reads a process's clock; liveness is judged on the database's own
time, :meth:`DataStore.database_now`). Text the databases cannot both store (a NUL, a
lone surrogate) is refused with :class:`~synchestra.core.errors.InputError`;
looking up such text finds nothing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence, Set
from datetime import datetime, timedelta
from typing import Any, Self

from synchestra.core.claims import ClaimLimits, Turn
from synchestra.core.models import Backlog, Enqueued, Outcome, Run, RunRequest, RunState, Target
from synchestra.core.records import ChangeCounts, Record, RecordQuery, RecordScope
from synchestra.core.status import GridPage, PairStatus, SourceRow
from synchestra.core.workers import Beat, Fence, SchedulerTerm, WorkerInfo, WorkerStatus
from synchestra.store.wakeups import Listener


class RecordStore(ABC):
    """Where a source's records live: what a run writes and reads of them."""

    @abstractmethod
    async def upsert_records(
        self,
        scope: RecordScope,
        rows: Sequence[tuple[str, Mapping[str, Any]]],
        now: datetime,
        *,
        fence: Fence | None = None,
    ) -> ChangeCounts:
        """Store (key, data) rows as records of ``scope``, idempotently.

        With a ``fence``, the rows are written only while that run is still
        running in that attempt for that owner, checked in the same transaction;
        otherwise nothing is written and :class:`~synchestra.core.errors.LeaseLost`
        is raised.

        A new key is created; a stored one whose data hash differs, or that was
        marked deleted, is updated (its previous data kept as a version); an
        identical one is only touched (``last_seen``, the scope's run and
        attempt). A key repeated in one call keeps its last data. Committed at
        once, whatever becomes of the run. Returns the counts and the first
        :data:`~synchestra.core.records.MAX_CHANGED_KEYS` changes; raises
        ``InputError`` for a kind or key the databases cannot store.
        """

    @abstractmethod
    async def all_records(self, kind: str, target: str, *, limit: int = 100_000) -> list[Record]:
        """The live (not deleted) records of one kind for one target (``""``: none).

        At most ``limit``, in id order (the order they were first stored).
        """


class DataStore(RecordStore):
    """Runs, status, targets and records in one database, shared by many processes."""

    # --- lifecycle -----------------------------------------------------------

    @abstractmethod
    async def close(self) -> None:
        """Release the connections; the store is not used afterwards."""

    @abstractmethod
    async def listen(self, on_notice: Callable[[], None]) -> Listener:
        """Call ``on_notice`` when another process queued, cancelled or ended runs.

        A hint, never a guarantee (callers still poll): PostgreSQL ``LISTEN`` on
        a connection of its own, the writes' ``NOTIFY`` delivered at their
        commit; nothing on SQLite. Close the listener before the store.
        """

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- the queue -----------------------------------------------------------

    @abstractmethod
    async def enqueue(self, requests: Sequence[RunRequest], now: datetime) -> list[Enqueued]:
        """Queue each request, one answer per request in order, deduplicated.

        A request identical (source, target, mode) to a queued run returns that
        run with ``deduplicated=True``, raising its priority if the request asks
        for more and bringing it forward unless it waits out a retry backoff.
        Safe against concurrent enqueues from other processes.
        """

    @abstractmethod
    async def complete_and_claim(
        self,
        outcomes: Sequence[Outcome],
        *,
        now: datetime,
        capacity: int,
        limits: ClaimLimits,
        owner: str,
    ) -> Turn:
        """Record finished attempts, then claim up to ``capacity`` runs: one transaction.

        Fenced: an outcome is recorded only while its run is still running in
        that attempt for its worker (``Run.worker``); otherwise it writes
        nothing (``Turn.lost``). An outcome with ``retry_at`` goes back to the
        queue (absorbing a queued duplicate, see ``Turn.merged``), an
        ``interrupted`` one ends and is queued again, any other ends; a success
        applies its ``deletes``. A run asked to cancel ends ``cancelled``
        instead of retrying or requeueing. A run's ``continued_by`` names the
        run that carries its sync on (the retry that absorbed it, the re-run
        of an interrupted one).

        The claim is atomic across processes: it marks ``running`` (its
        ``worker`` = ``owner``, a registered process) the best due queued runs
        (``rank`` then id) that respect one running run per (source, target),
        the group and API caps of ``limits`` and its saturated APIs; two
        processes never claim the same run. Each comes with its target and
        pair status.
        """

    @abstractmethod
    async def cancel(self, run_id: int, now: datetime) -> Run | None:
        """Cancel a queued run at once; flag a running one for its worker to stop.

        Returns the run as it now stands (a finished run unchanged), or None
        when there is no such run.
        """

    # --- the processes ---------------------------------------------------------

    @abstractmethod
    async def database_now(self) -> datetime:
        """The database's time, which every process's liveness is judged by."""

    @abstractmethod
    async def register_worker(self, info: WorkerInfo) -> None:
        """List this process, alive as of the database's time."""

    @abstractmethod
    async def heartbeat(
        self, worker_id: str, *, running: int, lease: timedelta, roles: Sequence[str]
    ) -> Beat:
        """Renew this process's liveness (database time) and tell it what it must know.

        ``alive`` is False when another process declared it dead meanwhile (it
        was silent for ``lease``): its runs are no longer its own. ``cancel``
        lists its running runs someone asked to cancel. ``roles`` are recorded;
        with ``"scheduler"`` among them the process also takes or keeps the
        scheduler role (``term``) unless another live process holds it.
        """

    @abstractmethod
    async def unregister_worker(self, worker_id: str) -> None:
        """A clean stop: unlist this process and give up the scheduler role if held."""

    @abstractmethod
    async def workers(self, lease: timedelta) -> list[WorkerStatus]:
        """Every listed process (live ones first); ``live`` judged by ``lease``."""

    @abstractmethod
    async def recover(
        self,
        me: str,
        *,
        lease: timedelta,
        gone: Callable[[WorkerInfo], bool],
        running_here: Set[int] | None = None,
    ) -> list[tuple[Run, Enqueued | None]]:
        """Declare dead the processes silent for ``lease`` (or ``gone``), never ``me``,
        and end ``interrupted`` the running runs no live process owns, and those of
        ``me`` it does not run when ``running_here`` lists what it runs (a claim it
        never started, say when the claim's commit failed ambiguously).

        Each is queued again (its new run returned beside it) unless it was
        asked to cancel (None: it ended ``cancelled``).
        """

    @abstractmethod
    async def get_runs(self, ids: Sequence[int]) -> list[Run]:
        """The runs with these ids that exist, in the order asked."""

    @abstractmethod
    async def list_runs(
        self,
        *,
        source: str | None = None,
        target: str | None = None,
        state: RunState | None = None,
        limit: int = 50,
    ) -> list[Run]:
        """The latest ``limit`` runs, newest first, filtered by what is given."""

    @abstractmethod
    async def active_runs(self, target: str) -> list[Run]:
        """The queued and running runs of one target."""

    @abstractmethod
    async def run_counts(self) -> dict[tuple[str, str], int]:
        """How many runs each (source, state) has."""

    @abstractmethod
    async def backlog(self) -> dict[str | None, Backlog]:
        """Queued and running runs per API (None: sources without an API)."""

    @abstractmethod
    async def next_due(self) -> datetime | None:
        """The earliest ``not_before`` among queued runs that are not due yet."""

    # --- the dashboard -------------------------------------------------------

    @abstractmethod
    async def grid_page(self, *, search: str = "", limit: int = 50, offset: int = 0) -> GridPage:
        """Targets whose key or name contains ``search`` (any case), in key order.

        With the pair statuses and active runs of that page's targets only.
        """

    @abstractmethod
    async def runs_started_since(self, since: datetime, *, limit: int = 500) -> list[Run]:
        """The runs started at or after ``since`` (the latest ``limit``), oldest first."""

    # --- status and schedules --------------------------------------------------

    @abstractmethod
    async def ensure_sources(self, names: Sequence[str], now: datetime) -> None:
        """Create the state of these sources if missing (existing state is kept)."""

    @abstractmethod
    async def source_rows(self) -> dict[str, SourceRow]:
        """Every source's state with its queue counts, by source name."""

    @abstractmethod
    async def set_next_fire(self, source: str, next_fire_at: datetime | None) -> None:
        """When ``source`` fires next (None: never)."""

    @abstractmethod
    async def set_first_fire(
        self, source: str, next_fire_at: datetime, term: SchedulerTerm
    ) -> None:
        """A new source's first fire time: written only if none is set yet, and only
        while ``term`` still holds the scheduler role (a paused leader cannot move
        a fire back)."""

    @abstractmethod
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
        """Queue one fire of ``source`` if it is still due at ``due``; None if not.

        A compare-and-set moves ``next_fire_at`` from ``due`` to ``following``,
        so a fire happens once even when several processes share the database.
        With a ``term``, the fire is written only while that term still holds
        the scheduler role (database time).
        """

    @abstractmethod
    async def run_inputs(
        self, source: str, target: str | None
    ) -> tuple[Target | None, PairStatus | None]:
        """What a run needs before it starts: its target and its pair status."""

    @abstractmethod
    async def pair_statuses(self, target: str | None) -> list[PairStatus]:
        """The statuses of every source for one target (None: no target), by source."""

    @abstractmethod
    async def pair_status(self, source: str, target: str | None) -> PairStatus | None:
        """The status of one (source, target) pair; None before its first ending."""

    # --- targets -------------------------------------------------------------

    @abstractmethod
    async def put_targets(self, items: Sequence[Target], now: datetime) -> None:
        """Add targets, or update the name and attrs of existing ones.

        ``InputError`` for a key, name or attr the databases cannot store, or attrs
        that do not map text to text.
        """

    @abstractmethod
    async def get_target(self, key: str) -> Target | None:
        """One target; None when there is none with that key."""

    @abstractmethod
    async def list_targets(self, *, limit: int = 100, after: str | None = None) -> list[Target]:
        """Up to ``limit`` targets in key order, those after ``after`` when given."""

    @abstractmethod
    async def known_targets(self, keys: Sequence[str]) -> set[str]:
        """Which of ``keys`` are targets."""

    @abstractmethod
    async def target_keys(self) -> list[str]:
        """Every target's key, in order."""

    @abstractmethod
    async def remove_target(self, key: str, now: datetime) -> bool:
        """Remove a target and its statuses, cancel its queued runs; its records stay.

        False when there was no such target.
        """

    # --- records -------------------------------------------------------------

    @abstractmethod
    async def mark_missing_deleted(self, scope: RecordScope, now: datetime) -> int:
        """Mark deleted the live records of ``scope`` this attempt of its run did not see.

        "Seen" is per attempt: a record only a failed earlier attempt fetched is
        gone. Returns how many were marked.
        """

    @abstractmethod
    async def list_records(self, query: RecordQuery) -> tuple[list[Record], str | None]:
        """One page of records in id order, and the cursor of the next page (None: last).

        ``changed_since`` keeps those changed after it (with ``include_deleted``,
        deleted after it too). ``InputError`` for a limit below 1 or a cursor
        this store did not hand out.
        """

    @abstractmethod
    async def versions_at(self, ids: Sequence[int], moment: datetime) -> dict[int, dict[str, Any]]:
        """The data these records had at ``moment``, for those that changed since."""
