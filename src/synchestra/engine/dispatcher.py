"""The dispatcher: the one loop per process that fires schedules and runs the queue.

Each turn it fires due schedules, then in one transaction records the attempts
that finished and claims as many runs as there are free workers (the claim
rules are in ``store.queue``); claimed runs execute as tasks and report back
through ``_finished``. Between turns it sleeps on the injected clock until the
next fire, the next due run, the next housekeeping tick, or a wake-up (a new
request, a finished run). Housekeeping renews this process's leases, stops
runs whose cancellation another process asked for, recovers runs of dead
processes and re-judges health.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from functools import partial

from synchestra.config import Config
from synchestra.connectors.context import Alert, SourceLogger, SyncContext
from synchestra.core.bus import EventBus
from synchestra.core.claims import Claimed, ClaimLimits, Turn
from synchestra.core.clock import Clock, first_of
from synchestra.core.errors import NotConfigured
from synchestra.core.events import (
    ENDED,
    AlertRaised,
    RecordsChanged,
    RunCancelled,
    RunInterrupted,
    RunProgress,
    RunQueued,
    RunRef,
    RunRetrying,
    RunStarted,
)
from synchestra.core.models import Enqueued, Mode, Outcome, Run, RunState
from synchestra.core.records import ChangeCounts
from synchestra.core.status import PairStatus
from synchestra.core.workers import SchedulerTerm
from synchestra.engine import attempt, firing, health
from synchestra.engine.backoff import STOP_PATIENCE, Backoff
from synchestra.engine.eta import CostBook
from synchestra.engine.presence import Presence
from synchestra.engine.sources import SourceSpec
from synchestra.store.abc import DataStore
from synchestra.store.failures import is_unavailable
from synchestra.upstream.apis import Apis
from synchestra.upstream.client import CURRENT_TALLY, RequestTally

log = logging.getLogger("synchestra")

LEASE_LOST = "lease lost"
"""Why a run's task was cancelled when this process lost its runs (nothing is written)."""

POLL = timedelta(seconds=1)
"""How often an idle loop looks for work other processes queued or cancelled (real time)."""


class Dispatcher:
    def __init__(
        self,
        *,
        store: DataStore,
        sources: Mapping[str, SourceSpec],
        config: Config,
        clock: Clock,
        rng: random.Random,
        bus: EventBus,
        apis: Apis,
        presence: Presence,
    ) -> None:
        self.store = store
        self.presence = presence
        presence.running = lambda: len(self._active)
        presence.on_lost = self.lose_runs
        presence.on_cancel = self._cancel_many
        self.sources = sources
        self.config = config
        self.clock = clock
        self.rng = rng
        self.bus = bus
        self.apis = apis
        self.workers = config.engine.workers
        self._active: dict[int, asyncio.Task[None]] = {}
        self._finished: list[Outcome] = []
        self._changes: dict[int, dict[str, ChangeCounts]] = {}
        self._alerts: dict[int, list[Alert]] = {}
        self._cancel_reason: dict[int, RunState | str] = {}
        self._only: set[int] | None = None
        self.on_housekeeping: list[Callable[[], Awaitable[None]]] = []
        """Checks run at each housekeeping (the orchestrator's listener reopens itself)."""
        self.progressed = asyncio.Event()
        """Set whenever a run this process knows of ends (waiters re-read the database)."""
        self._health = health.HealthTracker()
        self.costs = CostBook()
        """What a run of each API costs (requests, seconds), learnt for the ETA."""
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._scheduling = False
        self._working = False
        self._next_housekeeping: datetime | None = None
        self._give_up_at: datetime | None = None

    # --- lifecycle ---------------------------------------------------------

    async def prepare(self, now: datetime) -> None:
        """Load health (recovery of dead processes' runs is the loop's housekeeping)."""
        self._health.load(await self.store.source_rows(), self.sources, now)

    @property
    def running(self) -> bool:
        return self._loop_task is not None and not self._loop_task.done()

    @property
    def scheduling(self) -> bool:
        return self._scheduling

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def start(
        self, *, schedule: bool, work: bool = True, only: Iterable[int] | None = None
    ) -> None:
        """Run the loop: claim and run work (``work``), fire schedules when elected.

        With ``only``, claim those runs but no others (``sync`` runs what it asked
        for: other processes' queued work is theirs, and a ``sync`` that took some
        would have to wait for it before returning); a later start without
        ``only`` lifts the restriction (a ``serve`` after a first ``sync``).
        """
        restricted = only is not None and (self._only is not None or not self.running)
        self._only = (self._only or set()) | set(only or ()) if restricted else None
        self._scheduling = self._scheduling or schedule
        self._working = self._working or work
        if not self.running:
            self._stopping.clear()
            self._loop_task = asyncio.create_task(self._loop(), name="synchestra-loop")

    def wake(self) -> None:
        self._wake.set()

    def request_stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def stopped(self) -> None:
        await self._stopping.wait()

    async def stop(self, grace: timedelta) -> None:
        """Stop claiming, give running runs ``grace`` to end, interrupt the rest."""
        self.request_stop()
        if self._active:
            await self._wait_active(grace)
            for run_id, task in list(self._active.items()):
                self._cancel_reason[run_id] = RunState.INTERRUPTED
                task.cancel()
            if self._active:
                await asyncio.gather(*self._active.values(), return_exceptions=True)
        if self._loop_task is not None:
            await self._loop_task
            self._loop_task = None
        self._scheduling = False

    async def _wait_active(self, grace: timedelta) -> None:
        """Wait until the running runs end or ``grace`` passes (without cancelling them)."""
        await first_of(
            asyncio.wait(list(self._active.values())), self.clock.sleep(grace.total_seconds())
        )

    # --- what the orchestrator asks ---------------------------------------------

    def stop_running(self, run_id: int) -> None:
        """Cancel the task of a run this process executes, as a user cancellation."""
        if run_id in self._active:
            self._cancel_reason[run_id] = RunState.CANCELLED
            self._active[run_id].cancel()

    def _cancel_many(self, run_ids: Sequence[int]) -> None:
        for run_id in run_ids:
            self.stop_running(run_id)

    def lose_runs(self) -> None:
        """This process was declared dead: stop every run, write nothing more for them."""
        for run_id, task in list(self._active.items()):
            self._cancel_reason[run_id] = LEASE_LOST
            task.cancel()

    def announce_queued(self, answers: Iterable[Enqueued]) -> None:
        now = self.clock.now()
        for answer in answers:
            if not answer.deduplicated:
                self.bus.publish(
                    RunQueued(
                        at=now,
                        run=RunRef.of(answer.run),
                        priority=answer.run.priority,
                        not_before=answer.run.not_before,
                    )
                )

    def announce_cancelled(self, run: Run) -> None:
        self.bus.publish(RunCancelled(at=self.clock.now(), run=RunRef.of(run), error="cancelled"))
        self.progressed.set()

    # --- the loop ----------------------------------------------------------

    def _roles(self) -> tuple[str, ...]:
        return (
            *(["worker"] if self._working else []),
            *(["scheduler"] if self._scheduling else []),
        )

    async def _loop(self) -> None:
        joined: tuple[str, ...] | None = None
        backoff = Backoff()
        # When stopping, go on until the runs still executing have been recorded.
        while not self._stopping.is_set() or self._finished or self._active:
            self._wake.clear()
            try:
                if joined != self._roles():  # once the database answers; again when a start
                    joined = self._roles()  # adds a role (``serve`` after a first ``sync``)
                    await self.presence.start(joined)
                busy = await self._turn()
                if busy:
                    await asyncio.sleep(0)
                elif not self._finished and (self._active or not self._stopping.is_set()):
                    await self._idle()
            except Exception as error:
                if not self._survive(error, backoff):
                    return
                await self.clock.sleep(backoff.next())
                continue
            if backoff.outage:
                log.warning("the database answers again; the synchestra loop resumes")
            backoff.reset()
            self._give_up_at = None

    def _survive(self, error: Exception, backoff: Backoff) -> bool:
        """Log a failed turn once per streak; False when stopping has waited long enough.

        Database errors are an outage: one warning line, then quiet retries. Any
        other error is a bug of ours: logged with its traceback (again when it
        changes), and the loop goes on with the same backoff rather than leave
        the API serving in front of a dead engine. The outcomes of that turn
        were put back (see :meth:`_turn`) and are recorded on a later one.
        """
        first = backoff.failures == 0
        if is_unavailable(error):
            if first or not backoff.outage:
                log.warning(
                    "the database is unavailable (%s); the synchestra loop retries with "
                    "backoff until it answers",
                    attempt.describe(error, self.apis.redactor).splitlines()[0][:300],
                )
            backoff.outage = True
        elif backoff.note(error):
            log.exception("the synchestra loop failed; it retries with backoff")
        if self._stopping.is_set():
            now = self.clock.now()
            self._give_up_at = self._give_up_at or now + STOP_PATIENCE
            if now >= self._give_up_at:
                log.error(
                    "stopping without recording %d finished runs: the database did not answer",
                    len(self._finished),
                )
                return False
        return True

    async def _turn(self) -> bool:
        """One pass: fire schedules, record finished attempts, claim; True if saturated."""
        now = self.clock.now()
        me = self.presence.info  # this turn's identity, even if the lease is lost meanwhile
        if me is None:  # lost its lease; rejoins at its next renewal
            await self._idle()
            return False
        if self._scheduling and not self._stopping.is_set() and self.presence.term is not None:
            await self._fire_due(now, self.presence.term)
        if self._next_housekeeping is None or now >= self._next_housekeeping:
            await self._housekeeping(now, me.id)
        outcomes, self._finished = self._finished, []
        working = self._working and not self._stopping.is_set()
        capacity = self.workers - len(self._active) if working else 0
        try:
            turn = await self.store.complete_and_claim(
                outcomes,
                now=now,
                capacity=capacity,
                limits=self._claim_limits(now),
                owner=me.id,
            )
        except BaseException:
            self._finished[:0] = outcomes  # not recorded: kept for the next turn
            raise
        try:  # ends are told before starts, so the events never show an overlap
            self._announce(outcomes, turn)
            self.announce_queued(turn.requeued)
        finally:  # the claimed runs are ours now, whatever announcing did
            for item in turn.claimed:
                self._launch(item)
        return capacity > 0 and len(turn.claimed) == capacity

    async def _idle(self) -> None:
        """Sleep until the next thing due, a wake-up, or :data:`POLL` of real time.

        The poll is real time, not the injected clock: it looks for what other
        processes did meanwhile, which happens in the database's time.
        """
        wake_at = await self._next_wake()
        await first_of(
            self.clock.sleep((wake_at - self.clock.now()).total_seconds()),
            self._wake.wait(),
            asyncio.sleep(POLL.total_seconds()),
        )

    async def _next_wake(self) -> datetime:
        now = self.clock.now()
        candidates = [self._next_housekeeping or now, *self.apis.next_room(now)]
        due = await self.store.next_due()
        if due is not None and due > now:
            candidates.append(due)
        if self._scheduling:
            candidates += [
                row.next_fire_at
                for row in (await self.store.source_rows()).values()
                if row.next_fire_at is not None and row.source in self.sources
            ]
        return max(min(candidates), now)

    def _claim_limits(self, now: datetime) -> ClaimLimits:
        groups = {spec.group for spec in self.sources.values() if spec.group}
        apis = {spec.api for spec in self.sources.values() if spec.api}
        return ClaimLimits(
            group_max={name: self._group_max(name) for name in groups},
            api_cap=self.apis.caps(apis),
            saturated_apis=self.apis.saturated(apis, now),
            only=frozenset(self._only) if self._only is not None else None,
        )

    def also_claim(self, run_ids: Iterable[int]) -> None:
        """Add runs to a restricted loop's (a re-run of a ``sync``'s own run is its own)."""
        if self._only is not None:
            self._only |= set(run_ids)

    def _group_max(self, name: str) -> int:
        configured = self.config.group(name)
        return configured.max_running if configured else 1

    async def _fire_due(self, now: datetime, term: SchedulerTerm) -> None:
        rows = await self.store.source_rows()
        for spec in self.sources.values():
            if spec.timing is None:
                continue
            row = rows.get(spec.name)
            due = row.next_fire_at if row else None
            if due is None:  # first start: the first fire is the next one, not now
                first = firing.following_fire(spec, now)
                if first is not None:
                    await self.store.set_first_fire(spec.name, first, term)
                continue
            if due > now:
                continue
            targets = await self.store.target_keys() if spec.per_target else []
            answers = await self.store.fire(
                spec.name,
                due=due,
                following=firing.following_fire(spec, now),
                requests=firing.fire_requests(spec, due, targets),
                now=now,
                term=term,
            )
            if answers:
                self.announce_queued(answers)

    async def _housekeeping(self, now: datetime, me: str) -> None:
        # As often as processes renew: a dead one is found within lease + heartbeat.
        self._next_housekeeping = now + self.config.engine.heartbeat
        await self._recover(now, me)
        for check in self.on_housekeeping:
            await check()
        rows = await self.store.source_rows()
        for change in self._health.refresh(rows, self.sources, now):
            self.bus.publish(change)

    async def _recover(self, now: datetime, me: str) -> None:
        recovered = await self.store.recover(
            me,
            lease=self.config.engine.lease,
            gone=self.presence.gone(),
            running_here={*self._active, *(outcome.run.id for outcome in self._finished)},
        )
        for run, again in recovered:
            if again is None:
                self.announce_cancelled(run)
                continue
            self.bus.publish(RunInterrupted(at=now, run=RunRef.of(run), error=run.error))
            self.announce_queued([again])

    # --- running one run ---------------------------------------------------

    def _launch(self, claimed: Claimed) -> None:
        run = claimed.run
        self.bus.publish(RunStarted(at=self.clock.now(), run=RunRef.of(run)))
        self._active[run.id] = asyncio.create_task(self._execute(claimed), name=f"run-{run.id}")

    async def _execute(self, claimed: Claimed) -> None:
        run = claimed.run
        tally = RequestTally()
        CURRENT_TALLY.set(tally)  # this task's context only: counts this run's requests
        started = self.clock.now()
        try:
            outcome = await self._attempt(claimed)
            if outcome.state in (RunState.SUCCEEDED, RunState.FAILED) or outcome.retry_at:
                seconds = (self.clock.now() - started).total_seconds()
                self.costs.observe(run.api, tally.count, seconds)
        except asyncio.CancelledError:
            reason = self._cancel_reason.pop(run.id, RunState.INTERRUPTED)
            if reason is LEASE_LOST:
                self._forget(run.id)
                return
            state = RunState.CANCELLED if reason is RunState.CANCELLED else RunState.INTERRUPTED
            message = "cancelled" if state is RunState.CANCELLED else "interrupted: shutting down"
            outcome = Outcome(run, state, self.clock.now(), error=message)
        except Exception as error:  # a bug of ours: still this run's failure only
            log.exception("run %s crashed the worker", run.id)
            message = attempt.describe(error, self.apis.redactor)
            outcome = Outcome(run, RunState.FAILED, self.clock.now(), message)
        self._active.pop(run.id, None)
        self._finished.append(outcome)
        self._wake.set()

    async def _attempt(self, claimed: Claimed) -> Outcome:
        run, target, pair = claimed.run, claimed.target, claimed.pair
        spec = self.sources.get(run.source)
        now = self.clock.now()
        if spec is None:
            return Outcome(run, RunState.FAILED, now, f"unknown source {run.source!r}")
        if run.target is not None and target is None:
            return Outcome(run, RunState.SKIPPED, now, "target removed")
        try:
            if spec.api is not None:
                self.apis.check_credentials(spec.api)
        except NotConfigured as error:
            return Outcome(run, RunState.SKIPPED, now, str(error))
        ctx = SyncContext(
            run=run,
            target=target,
            mode=resolve_mode(run.mode, spec, pair, now),
            params=spec.params,
            store=self.store,
            clock=self.clock,
            watermark=pair.watermark if pair else None,
            http_factory=partial(self.apis.client, spec.api) if spec.api else None,
            api=spec.api,
            on_progress=partial(self._progress, run),
            last_success=pair.last_success if pair else None,
            log=SourceLogger(log, self.apis.redactor, {"source": run.source, "target": run.target}),
        )
        outcome = await attempt.attempt(
            spec,
            ctx,
            clock=self.clock,
            rng=self.rng,
            redactor=self.apis.redactor,
        )
        self._changes[run.id] = dict(ctx.changes)
        self._alerts[run.id] = ctx.alerts
        return outcome

    # --- events ------------------------------------------------------------

    def _progress(self, run: Run, done: int, total: int | None) -> None:
        self.bus.publish(
            RunProgress(at=self.clock.now(), run=RunRef.of(run), done=done, total=total)
        )

    def _forget(self, run_id: int) -> None:
        """A run this process lost: nothing of it is announced (its new owner will)."""
        self._active.pop(run_id, None)
        self._changes.pop(run_id, None)
        self._alerts.pop(run_id, None)
        log.warning("lease lost: run %s is no longer this process's; dropped its outcome", run_id)

    def _announce(self, outcomes: Sequence[Outcome], turn: Turn) -> None:
        now = self.clock.now()
        cancelled, lost = set(turn.cancelled), set(turn.lost)
        for run_id in lost:
            self._forget(run_id)
        for outcome in outcomes:
            if outcome.run.id in lost:
                continue
            if outcome.run.id in cancelled:  # asked to cancel while it ran
                self.announce_cancelled(outcome.run)
            else:
                self._announce_outcome(
                    turn.recorded.get(outcome.run.id, outcome), now, turn.deleted
                )
        for absorbed, into in turn.merged:
            merged = RunRef.merged(absorbed)
            self.bus.publish(RunCancelled(at=now, run=merged, error=f"merged into run {into}"))
        kept = [outcome for outcome in outcomes if outcome.run.id not in lost]
        for change in self._health.observe(kept, self.sources, now):
            self.bus.publish(change)

    def _announce_outcome(
        self, outcome: Outcome, now: datetime, deletions: Mapping[int, Mapping[str, int]]
    ) -> None:
        run = outcome.run
        ref = RunRef.of(run)
        if outcome.retry_at is not None:
            self.bus.publish(
                RunRetrying(
                    at=now,
                    run=ref,
                    attempts=run.attempts,
                    error=outcome.error,
                    retry_at=outcome.retry_at,
                )
            )
            return
        changes = self._changes.pop(run.id, {})
        alerts = self._alerts.pop(run.id, [])
        for kind, deleted in deletions.get(run.id, {}).items():
            changes.setdefault(kind, ChangeCounts()).deleted += deleted
        if outcome.state is RunState.SUCCEEDED:
            for kind, counts in changes.items():
                if counts.created or counts.updated or counts.deleted:
                    self.bus.publish(records_changed(run, kind, counts, now))
            for alert in alerts:
                self.bus.publish(alert_raised(run, alert, now))
        ended = ENDED[outcome.state]
        self.bus.publish(
            ended(
                at=now,
                run=ref,
                attempts=run.attempts,
                error=outcome.error,
                result=dict(outcome.result),
            )
        )
        self.progressed.set()


def resolve_mode(mode: Mode, spec: SourceSpec, pair: PairStatus | None, now: datetime) -> Mode:
    """``auto`` is incremental with a watermark and a recent enough full run, else full."""
    if mode is not Mode.AUTO:
        return mode
    if pair is None or pair.watermark is None or pair.last_full_run is None:
        return Mode.FULL
    return Mode.INCREMENTAL if now - pair.last_full_run < spec.full_every else Mode.FULL


def records_changed(run: Run, kind: str, counts: ChangeCounts, at: datetime) -> RecordsChanged:
    """What one succeeded run changed in one kind of record, as the event says it."""
    return RecordsChanged(
        at=at,
        source=run.source,
        target=run.target,
        kind=kind,
        created=counts.created,
        updated=counts.updated,
        unchanged=counts.unchanged,
        deleted=counts.deleted,
        keys=tuple(counts.changed_keys),
    )


def alert_raised(run: Run, alert: Alert, at: datetime) -> AlertRaised:
    """An alert the run's source raised, told with the run's source and target."""
    return AlertRaised(
        at=at,
        source=run.source,
        target=run.target,
        alert=alert.alert,
        message=alert.message,
        details=alert.details,
    )
