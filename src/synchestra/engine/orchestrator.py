"""The orchestrator: what a user holds. Sources, targets, requests, and the lifecycle.

It owns the store, the event bus, the per-API clients and the
:class:`~synchestra.engine.dispatcher.Dispatcher` whose loop runs the queue.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Self, Unpack

import httpx

from synchestra.config import Config, SourceSettings, load_config
from synchestra.config.targets_csv import read_targets_csv
from synchestra.connectors.registry import BUILTIN_APIS, SourceFunction
from synchestra.core.bus import EventBus
from synchestra.core.clock import Clock, SystemClock, first_of
from synchestra.core.errors import ConfigError, InputError, UnknownSource, UnknownTarget
from synchestra.core.models import (
    Enqueued,
    Mode,
    Run,
    RunRequest,
    RunState,
    Target,
    validate_target_key,
)
from synchestra.core.redact import Redactor
from synchestra.core.workers import WorkerStatus
from synchestra.engine import status as views
from synchestra.engine.dispatcher import Dispatcher
from synchestra.engine.eta import QueueEta, estimate
from synchestra.engine.freshness import older_than
from synchestra.engine.health import HealthReport
from synchestra.engine.presence import Presence
from synchestra.engine.sources import SourceSpec, spec_from_config, spec_from_function
from synchestra.engine.status import SyncStatus
from synchestra.engine.summary import SyncSummary, summarize
from synchestra.store import Store
from synchestra.store.wakeups import Listener
from synchestra.upstream.apis import Apis

WAIT_POLL = timedelta(milliseconds=500)
"""How often a waiter re-reads its runs when another process may be running them."""


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
        read_only: bool = False,
        database_clock: Clock | None = None,
    ) -> None:
        """``read_only``: open the database to read it only (``status``, ``runs``, ...):
        nothing is written, not even recovery. ``database_clock`` stands in for the
        database's own time, which liveness is judged by (tests)."""
        self.config = (config or Config()).with_builtin_apis(BUILTIN_APIS)
        self.read_only = read_only
        self.database_clock = database_clock
        self.presence: Presence | None = None
        self.database_url = database_url or self.config.database.url
        self.clock: Clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.sources: dict[str, SourceSpec] = {}
        self.bus = EventBus()
        self.apis = Apis(
            self.config,
            clock=self.clock,
            environ=environ if environ is not None else os.environ,
            redactor=Redactor(),
            transport=transport,
        )
        self._store: Store | None = None
        self._dispatcher: Dispatcher | None = None
        self._listener: Listener | None = None

    # --- building ----------------------------------------------------------

    @classmethod
    def from_config(cls, config: str | Path | Config, **kwargs: Any) -> Self:
        """An orchestrator with the sources of a config (a TOML file, or one already parsed)."""
        if not isinstance(config, Config):
            config = load_config(Path(config), builtin_apis=BUILTIN_APIS)
        orchestrator = cls(config, **kwargs)
        for source in config.sources:
            orchestrator.add_source(spec_from_config(source, config.timezone))
        return orchestrator

    def add_source(self, spec: SourceSpec) -> None:
        if spec.name in self.sources:
            raise InputError(f"source {spec.name!r} is defined twice")
        if spec.api is not None:
            try:
                self.config.api(spec.api)
            except ConfigError as error:  # found now, not when the dispatcher first needs it
                raise ConfigError(f"source {spec.name!r}: {error}") from None
        self.sources[spec.name] = spec

    def source(
        self, name: str, **settings: Unpack[SourceSettings]
    ) -> Callable[[SourceFunction], SourceFunction]:
        """Register the decorated async function as source ``name``.

        Takes every key a ``[[sources]]`` table has (but ``connector``: the
        function is the connector), with the same defaults and checks; a bad
        value is a :class:`ConfigError` naming it.
        """

        def register(function: SourceFunction) -> SourceFunction:
            self.add_source(spec_from_function(name, function, settings, self.config.timezone))
            return function

        return register

    # --- lifecycle ---------------------------------------------------------

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("the orchestrator is not open: use 'async with orchestrator'")
        return self._store

    @property
    def dispatcher(self) -> Dispatcher:
        if self._dispatcher is None:
            raise RuntimeError("the orchestrator is not open: use 'async with orchestrator'")
        return self._dispatcher

    @property
    def redactor(self) -> Redactor:
        return self.apis.redactor

    @property
    def running(self) -> bool:
        """Whether the dispatcher's loop is running (it stops only when asked, or on a bug)."""
        return self._dispatcher is not None and self._dispatcher.running

    async def __aenter__(self) -> Self:
        self._store = await Store.open(
            self.database_url,
            aging=self.config.engine.aging,
            database_clock=self.database_clock,
            read_only=self.read_only,
        )
        now = self.clock.now()
        if not self.read_only:
            await self._store.ensure_sources(list(self.sources), now)
            if self.config.targets.import_ is not None:
                await self._store.put_targets(read_targets_csv(self.config.targets.import_), now)
        engine = self.config.engine
        self.presence = Presence(
            self._store,
            SystemClock(),  # liveness is real (database) time, whatever clock the engine runs on
            capacity=engine.workers,
            lease=engine.lease,
            heartbeat=engine.heartbeat,
        )
        if not self.read_only and engine.notify:
            self._listener = await self._store.listen(self._notified)
        self._dispatcher = Dispatcher(
            store=self._store,
            sources=self.sources,
            config=self.config,
            clock=self.clock,
            rng=self.rng,
            bus=self.bus,
            apis=self.apis,
            presence=self.presence,
        )
        if self._listener is not None:
            self._dispatcher.on_housekeeping.append(self._listener.ensure)
        await self._dispatcher.prepare(now)
        return self

    def _notified(self) -> None:
        """Another process queued, cancelled or ended runs: look now, not at the next poll."""
        if self._dispatcher is not None:
            self._dispatcher.wake()
            self._dispatcher.progressed.set()
        if self.presence is not None:
            self.presence.nudge()  # a cancel of one of its runs, a scheduler that stopped

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
        await self.apis.aclose()
        if self._store is not None:
            await self._store.close()
            self._store = None
        self._dispatcher = None

    def start(
        self, *, schedule: bool = True, work: bool = True, only: Sequence[int] | None = None
    ) -> None:
        """Start the loop: claiming when ``work``; firing schedules when ``schedule`` and elected.

        ``only`` restricts the claims to those runs (see ``Dispatcher.start``).
        The process registers itself first (``synchestra workers`` lists it).
        """
        if self.read_only:
            raise RuntimeError("a read-only orchestrator runs nothing")
        self.dispatcher.start(schedule=schedule, work=work, only=only)

    async def join(self, roles: Sequence[str]) -> None:
        """List this process with these roles (``"api"`` for a server) without running work."""
        if self.presence is None:
            raise RuntimeError("the orchestrator is not open: use 'async with orchestrator'")
        await self.presence.start(roles)

    def request_stop(self) -> None:
        """Stop claiming (safe to call from a signal handler)."""
        self.dispatcher.request_stop()

    async def stopped(self) -> None:
        """Wait until a stop is requested."""
        await self.dispatcher.stopped()

    async def stop(self, grace: timedelta | None = None) -> None:
        """Stop claiming, give running runs ``grace`` to end, interrupt the rest, unlist."""
        if self._dispatcher is not None:
            await self._dispatcher.stop(self.config.engine.grace if grace is None else grace)
        if self.presence is not None:
            await self.presence.stop()

    async def serve(self) -> None:
        """Run the scheduler and workers until :meth:`request_stop`, then shut down."""
        self.start(schedule=True)
        await self.stopped()
        await self.stop()

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
        self.dispatcher.announce_queued(answers)
        self.dispatcher.wake()
        return answers

    async def request_for_target(
        self,
        key: str,
        sources: Sequence[str] | None = None,
        *,
        max_age: timedelta | None = None,
    ) -> list[Enqueued]:
        """Queue ``sources`` (default: every per-target source) for one target.

        With ``max_age``, only the sources whose last success for it is older (see
        :func:`~synchestra.engine.freshness.older_than`). :class:`UnknownTarget`
        when there is no such target; :class:`InputError` for a source without targets.
        """
        if await self.store.get_target(key) is None:
            raise UnknownTarget(key)
        names = list(sources or [n for n, spec in self.sources.items() if spec.per_target])
        for name in names:
            spec = self.sources.get(name)
            if spec is not None and not spec.per_target:
                raise InputError(f"source {name!r} has no targets")
        if max_age is not None:
            last = {s.source: s.last_success for s in await self.store.pair_statuses(key)}
            names = older_than(names, last, now=self.clock.now(), max_age=max_age)
        return await self.request(names, targets=[key]) if names else []

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
                raise UnknownTarget(missing[0])
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
        asked = [answer.run.id for answer in answers]
        self.start(schedule=self.dispatcher.scheduling, only=asked)
        final_ids = await self.wait_for(asked)
        return await summarize(await self.store.get_runs(final_ids), self.store)

    async def wait_for(self, run_ids: Iterable[int]) -> list[int]:
        """Wait until these runs end, whichever process runs them; the ids that ended for them.

        Read from the database: at once when a run of this process ends, else
        every :data:`WAIT_POLL`. A run that a retry absorbed, or that was
        interrupted and queued again, is answered by the run that carried its
        sync on (``continued_by``), unless this process is stopping.
        """
        current = {run_id: run_id for run_id in dict.fromkeys(run_ids)}
        ended: dict[int, int] = {}
        while current:
            self.dispatcher.progressed.clear()
            runs = {run.id: run for run in await self.store.get_runs(list(set(current.values())))}
            followed = False
            for asked, run_id in list(current.items()):
                run = runs.get(run_id)
                if run is not None and run.continued_by and not self.dispatcher.stopping:
                    current[asked], followed = run.continued_by, True
                elif run is None or run.state.terminal:
                    ended[asked] = current.pop(asked)
            self.dispatcher.also_claim(current.values())  # a re-run of ours is ours to run
            if current and not followed:
                await self._until_progress()
        return list(dict.fromkeys(ended.values()))

    async def _until_progress(self) -> None:
        """Until a run of this process ends or :data:`WAIT_POLL` of real time passes.

        Real time: other processes' runs end in the database's time, not this
        engine's clock.
        """
        await first_of(asyncio.sleep(WAIT_POLL.total_seconds()), self.dispatcher.progressed.wait())

    async def cancel(self, run_id: int) -> Run | None:
        """Cancel a queued run, or stop a running one."""
        run = await self.store.cancel(run_id, self.clock.now())
        if run is None:
            return None
        if run.state is RunState.CANCELLED:
            self.dispatcher.announce_cancelled(run)
        else:
            self.dispatcher.stop_running(run.id)
        return run

    # --- targets -----------------------------------------------------------

    async def add_targets(self, targets: Sequence[Target]) -> None:
        for target in targets:
            validate_target_key(target.key)
        await self.store.put_targets(targets, self.clock.now())

    async def health(self) -> HealthReport:
        """The sources' health, and whether live processes can run and schedule them."""
        return await views.health(
            self.store, self.sources, self.clock.now(), self.config.engine.lease
        )

    async def workers(self) -> list[WorkerStatus]:
        """The processes sharing the database, live ones first (judged by ``[engine] lease``)."""
        return await self.store.workers(self.config.engine.lease)

    async def sync_status(self) -> SyncStatus:
        """Every source's status and health, with the queue's ETA."""
        status = await views.sync_status(
            self.store, self.sources, self.clock.now(), self.config.engine.lease
        )
        return replace(status, eta=await self.eta())

    async def eta(self) -> QueueEta:
        """When the queue should be empty, from the backlog and the APIs' quotas (see eta.py)."""
        backlogs = await self.store.backlog()
        known = {api for api in backlogs if api is not None and self.config.knows_api(api)}
        return estimate(
            backlogs,
            {api: self.apis.limiter(api) for api in known},
            self.dispatcher.costs,
            workers=self.config.engine.workers,
            now=self.clock.now(),
        )

    def limiter_stats(self) -> dict[str, dict[str, int]]:
        """Per API: requests started, 429s received, peak requests in flight."""
        return self.apis.stats()
