"""The orchestrator: sources, the scheduler and the dispatcher loop, in one object.

One loop task does everything that touches the queue. Each turn it fires due
schedules, then in one transaction records the attempts that finished and
claims as many runs as there are free workers (see ``store.queue`` for the
claim rules); claimed runs execute as tasks and report back through
``_finished``. The loop sleeps on the injected clock until the next fire, the
next due retry, a housekeeping tick, or a wake-up (new request, finished run).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Self

import httpx

from synchestra import health, scheduler, worker
from synchestra.clock import Clock, SystemClock
from synchestra.config import Config, SourceConfig, load_config
from synchestra.connectors import SourceFunction, resolve_connector
from synchestra.context import SyncContext
from synchestra.durations import parse_duration
from synchestra.errors import InputError, NotConfigured, UnknownSource
from synchestra.events import EventBus, iso
from synchestra.http import AuthSpec, build_client
from synchestra.models import (
    Enqueued,
    Mode,
    Outcome,
    Run,
    RunRequest,
    RunState,
    Target,
    validate_target_key,
)
from synchestra.ratelimit import ApiLimiter
from synchestra.redact import Redactor
from synchestra.retry import RetryPolicy
from synchestra.schedule import IntervalSchedule, Timing, parse_cron
from synchestra.sources import SourceSpec
from synchestra.store import ChangeCounts, Claimed, ClaimLimits, Store, Turn
from synchestra.summary import SyncSummary, summarize

log = logging.getLogger("synchestra")

LEASE = timedelta(seconds=60)
HOUSEKEEPING = timedelta(seconds=10)


def process_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{random.getrandbits(32):08x}"


def owner_is_dead(owner: str) -> bool:
    """True when ``owner`` was a process on this host that no longer exists."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
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


class Orchestrator:
    """Schedules, queues and runs the syncs of its sources.

    Use it as an async context manager; :meth:`serve` runs the scheduler until
    stopped, :meth:`sync` runs chosen syncs now and reports how they ended.
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        database_url: str | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        environ: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config or Config()
        self.database_url = database_url or self.config.database.url
        self.clock: Clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.environ = environ if environ is not None else os.environ
        self.transport = transport
        self.sources: dict[str, SourceSpec] = {}
        self.bus = EventBus()
        self.redactor = Redactor()
        self.owner = process_identity()
        self.workers = self.config.engine.workers
        self._store: Store | None = None
        self._limiters: dict[str, ApiLimiter] = {}
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._active: dict[int, asyncio.Task[None]] = {}
        self._finished: list[Outcome] = []
        self._changes: dict[int, dict[str, Any]] = {}
        self._cancel_reason: dict[int, RunState] = {}
        self._waiters: dict[int, asyncio.Future[int]] = {}
        self._health = health.HealthTracker()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._scheduling = False
        self._next_housekeeping: datetime | None = None

    # --- building ----------------------------------------------------------

    @classmethod
    def from_config(cls, path: str | Path, **kwargs: Any) -> Self:
        config = load_config(Path(path))
        orchestrator = cls(config, **kwargs)
        for source in config.sources:
            orchestrator.add_source(spec_from_config(source, config))
        return orchestrator

    def add_source(self, spec: SourceSpec) -> None:
        if spec.name in self.sources:
            raise InputError(f"source {spec.name!r} is defined twice")
        self.sources[spec.name] = spec

    def source(
        self,
        name: str,
        *,
        per_target: bool = False,
        schedule: str | None = None,
        every: str | None = None,
        offset: str = "0s",
        spread: str = "0s",
        priority: int = 0,
        group: str | None = None,
        api: str | None = None,
        timeout: str = "10m",
        retry: RetryPolicy | None = None,
        stale_after: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Callable[[SourceFunction], SourceFunction]:
        """Register the decorated async function as source ``name``."""

        def register(function: SourceFunction) -> SourceFunction:
            self.add_source(
                SourceSpec(
                    name=name,
                    function=function,
                    per_target=per_target,
                    timing=make_timing(schedule, every, offset, spread, self.config.timezone),
                    priority=priority,
                    group=group,
                    api=api,
                    timeout=parse_duration(timeout),
                    retry=retry or RetryPolicy(),
                    stale_after=parse_duration(stale_after) if stale_after else None,
                    params=dict(params or {}),
                )
            )
            return function

        return register

    # --- lifecycle ---------------------------------------------------------

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("the orchestrator is not open: use 'async with orchestrator'")
        return self._store

    async def __aenter__(self) -> Self:
        self._store = await Store.open(self.database_url, aging=self.config.engine.aging)
        now = self.clock.now()
        await self.store.ensure_sources(list(self.sources), now)
        self._health.load(await self.store.source_rows(), self.sources, now)
        if self.config.targets.import_ is not None:
            from synchestra.targets_csv import read_targets_csv

            await self.store.put_targets(read_targets_csv(self.config.targets.import_), now)
        await self._recover(now)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
        if self._store is not None:
            await self._store.close()
            self._store = None

    def start(self, *, schedule: bool = True) -> None:
        """Start the loop: claiming always, firing schedules when ``schedule``."""
        self._scheduling = self._scheduling or schedule
        if self._loop_task is None or self._loop_task.done():
            self._stopping.clear()
            self._loop_task = asyncio.create_task(self._loop(), name="synchestra-loop")

    def request_stop(self) -> None:
        """Stop claiming (safe to call from a signal handler)."""
        self._stopping.set()
        self._wake.set()

    async def stopped(self) -> None:
        """Wait until a stop is requested."""
        await self._stopping.wait()

    async def stop(self, grace: timedelta | None = None) -> None:
        """Stop claiming, give running runs ``grace`` to end, interrupt the rest."""
        self.request_stop()
        if self._active:
            grace = self.config.engine.grace if grace is None else grace
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

    async def serve(self) -> None:
        """Run the scheduler and workers until :meth:`request_stop`, then shut down."""
        self.start(schedule=True)
        await self._stopping.wait()
        await self.stop()

    async def _wait_active(self, grace: timedelta) -> None:
        """Wait until the running runs end or ``grace`` passes (without cancelling them)."""
        tasks = list(self._active.values())
        all_done: asyncio.Future[Any] = asyncio.ensure_future(asyncio.wait(tasks))
        timer: asyncio.Future[Any] = asyncio.ensure_future(self.clock.sleep(grace.total_seconds()))
        await asyncio.wait([all_done, timer], return_when=asyncio.FIRST_COMPLETED)
        for waiter in (all_done, timer):
            waiter.cancel()
        await asyncio.gather(all_done, timer, return_exceptions=True)

    # --- asking for syncs --------------------------------------------------

    async def request(
        self,
        sources: Sequence[str] | None = None,
        *,
        targets: Sequence[str] | None = None,
        all_targets: bool = False,
        mode: Mode | str = Mode.AUTO,
        priority: int | None = None,
    ) -> list[Enqueued]:
        """Queue syncs (deduplicated) and return the queued runs.

        ``sources`` None means every source. Per-target sources run for
        ``targets``, or for every target when no targets are given or
        ``all_targets``; given targets and no sources, only per-target sources run.
        """
        mode = Mode(mode) if isinstance(mode, str) else mode
        chosen = self._choose_sources(sources, targets_given=bool(targets))
        target_keys = await self._choose_targets(targets, all_targets)
        requests = [
            RunRequest(
                source=spec.name,
                target=key,
                mode=mode,
                priority=spec.priority if priority is None else priority,
                group=spec.group,
                api=spec.api,
            )
            for spec in chosen
            for key in (target_keys if spec.per_target else [None])
        ]
        answers = await self.store.enqueue(requests, self.clock.now())
        self._announce_queued(answers)
        self._wake.set()
        return answers

    def _choose_sources(
        self, names: Sequence[str] | None, *, targets_given: bool
    ) -> list[SourceSpec]:
        if names:
            for name in names:
                if name not in self.sources:
                    raise UnknownSource(name)
            return [self.sources[name] for name in dict.fromkeys(names)]
        specs = list(self.sources.values())
        return [spec for spec in specs if spec.per_target] if targets_given else specs

    async def _choose_targets(self, keys: Sequence[str] | None, all_targets: bool) -> list[str]:
        if keys and not all_targets:
            wanted = list(dict.fromkeys(validate_target_key(key) for key in keys))
            known = await self.store.known_targets(wanted)
            missing = [key for key in wanted if key not in known]
            if missing:
                raise InputError(f"unknown target {missing[0]!r}")
            return wanted
        return await self.store.target_keys()

    async def sync(
        self,
        sources: Sequence[str] | None = None,
        *,
        targets: Sequence[str] | None = None,
        all_targets: bool = False,
        mode: Mode | str = Mode.AUTO,
    ) -> SyncSummary:
        """Run these syncs now (in this process) and summarise how they ended."""
        answers = await self.request(sources, targets=targets, all_targets=all_targets, mode=mode)
        self.start(schedule=self._scheduling)
        final_ids = await self.wait_for([answer.run.id for answer in answers])
        finished = await self.store.get_runs(final_ids)
        return await summarize(finished, self.store)

    async def wait_for(self, run_ids: Iterable[int]) -> list[int]:
        """Wait until these runs end; return the ids of the runs that ended for them.

        A queued run that a retry absorbed is answered by the retrying run.
        """
        ids = list(dict.fromkeys(run_ids))
        futures = {run_id: self._waiter(run_id) for run_id in ids}
        pending = await self.store.get_runs(ids)
        for run in pending:  # the waiter may have been resolved (and dropped) meanwhile
            if run.state.terminal and not futures[run.id].done():
                futures[run.id].set_result(run.id)
        return list(dict.fromkeys([await future for future in futures.values()]))

    def _waiter(self, run_id: int) -> asyncio.Future[int]:
        if run_id not in self._waiters:
            self._waiters[run_id] = asyncio.get_running_loop().create_future()
        return self._waiters[run_id]

    async def cancel(self, run_id: int) -> Run | None:
        """Cancel a queued run, or stop a running one."""
        run = await self.store.cancel(run_id, self.clock.now())
        if run is None:
            return None
        if run.state is RunState.CANCELLED:
            self._resolve(run_id, run_id)
            self.bus.publish("run.cancelled", self.clock.now(), **_run_fields(run))
        elif run.id in self._active:
            self._cancel_reason[run.id] = RunState.CANCELLED
            self._active[run.id].cancel()
        return run

    # --- targets -----------------------------------------------------------

    async def add_targets(self, targets: Sequence[Target]) -> None:
        for target in targets:
            validate_target_key(target.key)
        await self.store.put_targets(targets, self.clock.now())

    # --- the loop ----------------------------------------------------------

    async def _loop(self) -> None:
        try:
            # When stopping, go on until the runs still executing have been recorded.
            while not self._stopping.is_set() or self._finished or self._active:
                self._wake.clear()
                busy = await self._turn()
                if busy:
                    await asyncio.sleep(0)
                elif not self._finished and (self._active or not self._stopping.is_set()):
                    await self._idle()
        except Exception:
            log.exception("the synchestra loop crashed; stopping")
            self._stopping.set()
            raise

    async def _turn(self) -> bool:
        """One pass: fire schedules, record finished attempts, claim; True if saturated."""
        now = self.clock.now()
        if self._scheduling and not self._stopping.is_set():
            await self._fire_due(now)
        if self._next_housekeeping is None or now >= self._next_housekeeping:
            await self._housekeeping(now)
        outcomes, self._finished = self._finished, []
        capacity = 0 if self._stopping.is_set() else self.workers - len(self._active)
        turn = await self.store.complete_and_claim(
            outcomes,
            now=now,
            capacity=capacity,
            limits=self._claim_limits(now),
            owner=self.owner,
            lease=LEASE,
        )
        self._announce(outcomes, turn)
        self._announce_queued(turn.requeued)
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
        candidates = [self._next_housekeeping or now]
        due = await self.store.next_due()
        if due is not None and due > now:
            candidates.append(due)
        if self._scheduling:
            candidates += [
                row.next_fire_at
                for row in (await self.store.source_rows()).values()
                if row.next_fire_at is not None and row.source in self.sources
            ]
        candidates += [
            at for at in (lim.available_at(now) for lim in self._limiters.values()) if at > now
        ]
        return max(min(candidates), now)

    def _claim_limits(self, now: datetime) -> ClaimLimits:
        groups = {spec.group for spec in self.sources.values() if spec.group}
        group_max = {}
        for name in groups:
            configured = self.config.group(name)
            group_max[name] = configured.max_running if configured else 1
        caps = {}
        saturated = set()
        for spec in self.sources.values():
            if spec.api is None:
                continue
            limiter = self._limiter(spec.api)
            if limiter.concurrency is not None:
                caps[spec.api] = limiter.concurrency
            if limiter.available_at(now) > now:  # no rate room, or paused by a 429
                saturated.add(spec.api)
        return ClaimLimits(group_max=group_max, api_cap=caps, saturated_apis=frozenset(saturated))

    async def _fire_due(self, now: datetime) -> None:
        rows = await self.store.source_rows()
        for spec in self.sources.values():
            if spec.timing is None:
                continue
            row = rows.get(spec.name)
            due = row.next_fire_at if row else None
            if due is None:
                await self.store.set_next_fire(spec.name, scheduler.following_fire(spec, now))
                continue
            if due > now:
                continue
            targets = await self.store.target_keys() if spec.per_target else []
            answers = await self.store.fire(
                spec.name,
                due=due,
                following=scheduler.following_fire(spec, now),
                requests=scheduler.fire_requests(spec, due, targets),
                now=now,
            )
            if answers:
                self._announce_queued(answers)

    async def _housekeeping(self, now: datetime) -> None:
        self._next_housekeeping = now + HOUSEKEEPING
        for run_id in await self.store.renew_leases(self.owner, now + LEASE):
            if run_id in self._active:
                self._cancel_reason[run_id] = RunState.CANCELLED
                self._active[run_id].cancel()
        await self._recover(now)
        rows = await self.store.source_rows()
        for change in self._health.refresh(rows, self.sources, now):
            self.bus.publish("health.changed", now, **change)

    async def _recover(self, now: datetime) -> None:
        for run, again in await self.store.recover(now, owner_is_dead):
            if again is None:
                self.bus.publish("run.cancelled", now, **_run_fields(run), error="cancelled")
                continue
            self.bus.publish("run.interrupted", now, **_run_fields(run), error=run.error)
            self._announce_queued([again])

    # --- running one run ---------------------------------------------------

    def _launch(self, claimed: Claimed) -> None:
        run = claimed.run
        self.bus.publish("run.started", self.clock.now(), **_run_fields(run))
        task = asyncio.create_task(self._execute(claimed), name=f"run-{run.id}")
        self._active[run.id] = task

    async def _execute(self, claimed: Claimed) -> None:
        run = claimed.run
        try:
            outcome = await self._attempt(claimed)
        except asyncio.CancelledError:
            reason = self._cancel_reason.pop(run.id, RunState.INTERRUPTED)
            message = "cancelled" if reason is RunState.CANCELLED else "interrupted: shutting down"
            outcome = Outcome(run, reason, self.clock.now(), error=message)
        except Exception as error:  # a bug of ours: still this run's failure only
            log.exception("run %s crashed the worker", run.id)
            outcome = Outcome(
                run, RunState.FAILED, self.clock.now(), worker.describe(error, self.redactor)
            )
        self._active.pop(run.id, None)
        self._finished.append(outcome)
        self._wake.set()

    async def _attempt(self, claimed: Claimed) -> Outcome:
        run, target, pair = claimed.run, claimed.target, claimed.pair
        spec = self.sources.get(run.source)
        if spec is None:
            return Outcome(run, RunState.FAILED, self.clock.now(), f"unknown source {run.source!r}")
        if run.target is not None and target is None:
            return Outcome(run, RunState.SKIPPED, self.clock.now(), "target removed")
        try:
            self._check_credentials(spec)
        except NotConfigured as error:
            return Outcome(run, RunState.SKIPPED, self.clock.now(), str(error))
        ctx = SyncContext(
            run=run,
            target=target,
            mode=self._resolve_mode(run.mode, spec, pair),
            params=spec.params,
            store=self.store,
            clock=self.clock,
            watermark=pair.watermark if pair else None,
            http_factory=partial(self._client, spec.api) if spec.api else None,
            api=spec.api,
            on_progress=lambda done, total: self._progress(run, done, total),
            log=_RedactingAdapter(log, self.redactor, {"source": run.source, "target": run.target}),
        )
        outcome = await worker.attempt(
            spec,
            ctx,
            clock=self.clock,
            rng=self.rng,
            redactor=self.redactor,
            finish_success=self._apply_deletes,
        )
        self._changes[run.id] = {kind: counts for kind, counts in ctx.changes.items()}
        return outcome

    async def _apply_deletes(self, ctx: SyncContext) -> None:
        for kind in ctx.pending_deletes:
            deleted = await self.store.mark_missing_deleted(ctx.scope(kind), self.clock.now())
            ctx.changes.setdefault(kind, ChangeCounts()).deleted += deleted

    def _resolve_mode(self, mode: Mode, spec: SourceSpec, pair: Any) -> Mode:
        if mode is not Mode.AUTO:
            return mode
        if pair is None or pair.watermark is None or pair.last_full_run is None:
            return Mode.FULL
        recent = self.clock.now() - pair.last_full_run < spec.full_every
        return Mode.INCREMENTAL if recent else Mode.FULL

    def _check_credentials(self, spec: SourceSpec) -> None:
        if spec.api is None:
            return
        auth = self.config.api(spec.api).auth
        if auth is None:
            return
        credential = self.environ.get(auth.env)
        if credential:
            self.redactor.add(credential)  # masked even if the source never builds a client
        elif auth.required:
            raise NotConfigured(f"not configured: {auth.env} is not set")

    def _limiter(self, api: str) -> ApiLimiter:
        if api not in self._limiters:
            settings = self.config.api(api)
            self._limiters[api] = ApiLimiter(api, settings.rate, settings.concurrency, self.clock)
        return self._limiters[api]

    def _client(self, api: str) -> httpx.AsyncClient:
        if api not in self._clients:
            settings = self.config.api(api)
            auth = settings.auth
            self._clients[api] = build_client(
                api=api,
                base_url=settings.base_url,
                auth=AuthSpec(
                    env=auth.env, header=auth.header, query=auth.query, required=auth.required
                )
                if auth
                else None,
                limiter=self._limiter(api),
                environ=self.environ,
                redactor=self.redactor,
                transport=self.transport,
            )
        return self._clients[api]

    def limiter_stats(self) -> dict[str, dict[str, int]]:
        return {
            name: {
                "requests": lim.requests_started,
                "http_429": lim.http_429,
                "peak_in_flight": lim.peak_in_flight,
            }
            for name, lim in self._limiters.items()
        }

    # --- events ------------------------------------------------------------

    def _progress(self, run: Run, done: int, total: int | None) -> None:
        self.bus.publish(
            "run.progress", self.clock.now(), **_run_fields(run), done=done, total=total
        )

    def _announce_queued(self, answers: Iterable[Enqueued]) -> None:
        now = self.clock.now()
        for answer in answers:
            if not answer.deduplicated:
                self.bus.publish(
                    "run.queued",
                    now,
                    **_run_fields(answer.run),
                    priority=answer.run.priority,
                    not_before=iso(answer.run.not_before),
                )

    def _announce(self, outcomes: Sequence[Outcome], turn: Turn) -> None:
        now = self.clock.now()
        cancelled = set(turn.cancelled)
        for outcome in outcomes:
            if outcome.run.id in cancelled:  # asked to cancel while it ran
                self.bus.publish(
                    "run.cancelled", now, **_run_fields(outcome.run), error="cancelled"
                )
                self._resolve(outcome.run.id, outcome.run.id)
            else:
                self._announce_outcome(outcome, now)
        for absorbed, into in turn.merged:
            self.bus.publish(
                "run.cancelled", now, id=str(absorbed), error=f"merged into run {into}"
            )
            if absorbed in self._waiters:
                self._chain(absorbed, into)
        for change in self._health.observe(outcomes, self.sources, now):
            self.bus.publish("health.changed", now, **change)

    def _chain(self, absorbed: int, into: int) -> None:
        future = self._waiters.pop(absorbed)
        successor = self._waiter(into)

        def forward(done: asyncio.Future[int]) -> None:
            if not future.done():
                future.set_result(done.result())

        successor.add_done_callback(forward)

    def _announce_outcome(self, outcome: Outcome, now: datetime) -> None:
        run = outcome.run
        fields = _run_fields(run)
        if outcome.retry_at is not None:
            self.bus.publish(
                "run.retrying",
                now,
                **fields,
                attempts=run.attempts,
                error=outcome.error,
                retry_at=iso(outcome.retry_at),
            )
            return
        changes = self._changes.pop(run.id, {})
        if outcome.state is RunState.SUCCEEDED:
            for kind, counts in changes.items():
                if counts.created or counts.updated or counts.deleted:
                    self.bus.publish(
                        "records.changed",
                        now,
                        source=run.source,
                        target=run.target,
                        kind=kind,
                        **counts.as_dict(),
                        keys=list(counts.changed_keys),
                    )
        self.bus.publish(
            f"run.{outcome.state.value}",
            now,
            **fields,
            attempts=run.attempts,
            error=outcome.error,
            result=dict(outcome.result),
        )
        self._resolve(run.id, run.id)

    def _resolve(self, run_id: int, final_id: int) -> None:
        future = self._waiters.pop(run_id, None)
        if future is not None and not future.done():
            future.set_result(final_id)


def _run_fields(run: Run) -> dict[str, Any]:
    return {"id": str(run.id), "source": run.source, "target": run.target, "mode": run.mode.value}


class _RedactingAdapter(logging.LoggerAdapter[logging.Logger]):
    """A source's logger: its lines carry source and target, and never a secret."""

    def __init__(self, logger: logging.Logger, redactor: Redactor, extra: Mapping[str, Any]):
        super().__init__(logger, extra)
        self._redactor = redactor

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        """Format first, then mask: a secret may arrive through the ``%`` arguments too."""
        if not self.isEnabledFor(level):
            return
        text = str(msg) % args if args else str(msg)
        extra = self.extra or {}
        source, target = extra.get("source"), extra.get("target")
        where = f"{source}/{target}" if target else f"{source}"
        kwargs.setdefault("stacklevel", 2)
        self.logger.log(level, "[%s] %s", where, self._redactor.redact(text), **kwargs)


def make_timing(
    schedule: str | None,
    every: str | timedelta | None,
    offset: str | timedelta,
    spread: str | timedelta,
    timezone: str,
) -> Timing | None:
    if schedule is None and every is None:
        return None
    if schedule is not None and every is not None:
        raise InputError("give a source either schedule or every, not both")
    base = (
        parse_cron(schedule, timezone)
        if schedule is not None
        else IntervalSchedule(_duration(every))
    )
    return Timing(base, offset=_duration(offset), spread=_duration(spread))


def _duration(value: str | timedelta | None) -> timedelta:
    if value is None:
        return timedelta(0)
    return value if isinstance(value, timedelta) else parse_duration(value)


def spec_from_config(source: SourceConfig, config: Config) -> SourceSpec:
    function = resolve_connector(source.connector)
    return SourceSpec(
        name=source.name,
        function=function,
        per_target=source.per_target,
        timing=make_timing(
            source.schedule, source.every, source.offset, source.spread, config.timezone
        ),
        priority=source.priority,
        group=source.group,
        api=source.api or getattr(function, "default_api", None),
        timeout=source.timeout,
        retry=RetryPolicy(source.retry.attempts, source.retry.backoff, source.retry.max_backoff),
        stale_after=source.stale_after,
        full_every=source.full_every,
        params=dict(source.params),
    )
