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
import os
import random
import socket
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from synchestra.config import Config
from synchestra.connectors.context import Alert, SourceLogger, SyncContext
from synchestra.core.bus import EventBus
from synchestra.core.claims import Claimed, ClaimLimits, Turn
from synchestra.core.clock import Clock
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
from synchestra.engine import attempt, firing, health
from synchestra.engine.backoff import STOP_PATIENCE, Backoff
from synchestra.engine.eta import CostBook
from synchestra.engine.sources import SourceSpec
from synchestra.store.abc import DataStore
from synchestra.store.failures import is_unavailable
from synchestra.upstream.apis import Apis
from synchestra.upstream.client import CURRENT_TALLY, RequestTally

log = logging.getLogger("synchestra")

LEASE = timedelta(seconds=60)
HOUSEKEEPING = timedelta(seconds=10)


def process_identity() -> str:
    """``host:pid:nonce``: who owns a running run."""
    return f"{socket.gethostname()}:{os.getpid()}:{random.getrandbits(32):08x}"


def owner_is_dead(owner: str) -> bool:
    """True when ``owner`` was a process on this host that no longer exists."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False  # another host: its lease tells
    pid = int(pid_text)
    if pid == os.getpid():
        return False  # this process: its runs end through their own tasks or leases
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


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
    ) -> None:
        self.store = store
        self.sources = sources
        self.config = config
        self.clock = clock
        self.rng = rng
        self.bus = bus
        self.apis = apis
        self.owner = process_identity()
        self.workers = config.engine.workers
        self._active: dict[int, asyncio.Task[None]] = {}
        self._finished: list[Outcome] = []
        self._changes: dict[int, dict[str, ChangeCounts]] = {}
        self._alerts: dict[int, list[Alert]] = {}
        self._cancel_reason: dict[int, RunState] = {}
        self._waiters: dict[int, asyncio.Future[int]] = {}
        self._health = health.HealthTracker()
        self.costs = CostBook()
        """What a run of each API costs (requests, seconds), learnt for the ETA."""
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._scheduling = False
        self._next_housekeeping: datetime | None = None
        self._give_up_at: datetime | None = None

    # --- lifecycle ---------------------------------------------------------

    async def prepare(self, now: datetime) -> None:
        """Load health and recover what dead processes left running."""
        self._health.load(await self.store.source_rows(), self.sources, now)
        await self._recover(now)

    @property
    def running(self) -> bool:
        return self._loop_task is not None and not self._loop_task.done()

    @property
    def scheduling(self) -> bool:
        return self._scheduling

    def start(self, *, schedule: bool) -> None:
        self._scheduling = self._scheduling or schedule
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
        all_done: asyncio.Future[Any] = asyncio.ensure_future(
            asyncio.wait(list(self._active.values()))
        )
        timer: asyncio.Future[Any] = asyncio.ensure_future(self.clock.sleep(grace.total_seconds()))
        await asyncio.wait([all_done, timer], return_when=asyncio.FIRST_COMPLETED)
        for waiter in (all_done, timer):
            waiter.cancel()
        await asyncio.gather(all_done, timer, return_exceptions=True)

    # --- what the orchestrator asks ---------------------------------------------

    def waiter(self, run_id: int) -> asyncio.Future[int]:
        """A future answered with the id of the run that ended for ``run_id``."""
        if run_id not in self._waiters:
            self._waiters[run_id] = asyncio.get_running_loop().create_future()
        return self._waiters[run_id]

    def stop_running(self, run_id: int) -> None:
        """Cancel the task of a run this process executes, as a user cancellation."""
        if run_id in self._active:
            self._cancel_reason[run_id] = RunState.CANCELLED
            self._active[run_id].cancel()

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
        self._resolve(run.id, run.id)

    # --- the loop ----------------------------------------------------------

    async def _loop(self) -> None:
        backoff = Backoff()
        # When stopping, go on until the runs still executing have been recorded.
        while not self._stopping.is_set() or self._finished or self._active:
            self._wake.clear()
            try:
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
        if self._scheduling and not self._stopping.is_set():
            await self._fire_due(now)
        if self._next_housekeeping is None or now >= self._next_housekeeping:
            await self._housekeeping(now)
        outcomes, self._finished = self._finished, []
        capacity = 0 if self._stopping.is_set() else self.workers - len(self._active)
        try:
            turn = await self.store.complete_and_claim(
                outcomes,
                now=now,
                capacity=capacity,
                limits=self._claim_limits(now),
                owner=self.owner,
                lease=LEASE,
            )
        except BaseException:
            self._finished[:0] = outcomes  # not recorded: kept for the next turn
            raise
        self._announce(outcomes, turn)
        self.announce_queued(turn.requeued)
        for item in turn.claimed:
            self._launch(item)
        return capacity > 0 and len(turn.claimed) == capacity

    async def _idle(self) -> None:
        wake_at = await self._next_wake()
        sleeper = asyncio.ensure_future(
            self.clock.sleep((wake_at - self.clock.now()).total_seconds())
        )
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, waker):
                task.cancel()
            await asyncio.gather(sleeper, waker, return_exceptions=True)

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
        )

    def _group_max(self, name: str) -> int:
        configured = self.config.group(name)
        return configured.max_running if configured else 1

    async def _fire_due(self, now: datetime) -> None:
        rows = await self.store.source_rows()
        for spec in self.sources.values():
            if spec.timing is None:
                continue
            row = rows.get(spec.name)
            due = row.next_fire_at if row else None
            if due is None:  # first start: the first fire is the next one, not now
                await self.store.set_next_fire(spec.name, firing.following_fire(spec, now))
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
            )
            if answers:
                self.announce_queued(answers)

    async def _housekeeping(self, now: datetime) -> None:
        self._next_housekeeping = now + HOUSEKEEPING
        for run_id in await self.store.renew_leases(self.owner, now + LEASE):
            self.stop_running(run_id)
        await self._recover(now)
        rows = await self.store.source_rows()
        for change in self._health.refresh(rows, self.sources, now):
            self.bus.publish(change)

    async def _recover(self, now: datetime) -> None:
        for run, again in await self.store.recover(now, owner_is_dead):
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
            message = "cancelled" if reason is RunState.CANCELLED else "interrupted: shutting down"
            outcome = Outcome(run, reason, self.clock.now(), error=message)
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

    def _announce(self, outcomes: Sequence[Outcome], turn: Turn) -> None:
        now = self.clock.now()
        cancelled = set(turn.cancelled)
        for outcome in outcomes:
            if outcome.run.id in cancelled:  # asked to cancel while it ran
                self.announce_cancelled(outcome.run)
            else:
                self._announce_outcome(
                    turn.recorded.get(outcome.run.id, outcome), now, turn.deleted
                )
        for absorbed, into in turn.merged:
            merged = RunRef.merged(absorbed)
            self.bus.publish(RunCancelled(at=now, run=merged, error=f"merged into run {into}"))
            if absorbed in self._waiters:
                self._chain(absorbed, into)
        for change in self._health.observe(outcomes, self.sources, now):
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
        self._resolve(run.id, run.id)

    def _chain(self, absorbed: int, into: int) -> None:
        """Answer the waiter of a run a retry absorbed when the retrying run ends."""
        future = self._waiters.pop(absorbed)

        def forward(done: asyncio.Future[int]) -> None:
            if not future.done():
                future.set_result(done.result())

        self.waiter(into).add_done_callback(forward)

    def _resolve(self, run_id: int, final_id: int) -> None:
        future = self._waiters.pop(run_id, None)
        if future is not None and not future.done():
            future.set_result(final_id)


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
