"""This process among the others sharing the database: registered, renewed, maybe the scheduler.

A process that runs work, fires schedules or serves the API registers itself
(``synchestra workers`` lists it) and renews its liveness every ``heartbeat`` on
a task of its own, so that a busy loop or a slow source does not starve the
renewal. The renewal also tells it what others decided: that it was declared
dead (it was silent for ``lease``: its runs are no longer its own), which of its
runs someone asked to cancel, and whether it holds the scheduler role.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
from collections.abc import Callable, Sequence
from contextlib import suppress
from datetime import timedelta
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from synchestra.core.clock import Clock, first_of
from synchestra.core.workers import SchedulerTerm, WorkerInfo
from synchestra.store.abc import DataStore

log = logging.getLogger("synchestra")

NUDGE_GAP = 1.0
"""Seconds between two renewals at least, however often a process is nudged."""


def host_key() -> str:
    """This machine and pid namespace: the boot id and the namespace's inode.

    Two processes with the same key see the same pids, so one may tell at once
    that the other is gone; containers sharing a hostname do not share this.
    """
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:  # not Linux: no fast path, the lease decides
        return f"unknown:{socket.gethostname()}:{os.getpid()}:{random.getrandbits(32):08x}"
    return f"{boot}:{namespace}"


def gone_on_this_host(mine: str) -> Callable[[WorkerInfo], bool]:
    """Whether a listed process is provably gone: same host key, and its pid is free."""

    def gone(info: WorkerInfo) -> bool:
        if info.host_key != mine or info.pid == os.getpid():
            return False
        try:
            os.kill(info.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    return gone


def _version() -> str:
    try:
        return version("synchestra")
    except PackageNotFoundError:
        return "unknown"


def new_identity(roles: Sequence[str], capacity: int, key: str) -> WorkerInfo:
    host, pid = socket.gethostname(), os.getpid()
    return WorkerInfo(
        id=f"{host}:{pid}:{random.getrandbits(32):08x}",
        host=host,
        pid=pid,
        host_key=key,
        roles=tuple(roles),
        capacity=capacity,
        version=_version(),
    )


class Presence:
    """Registration and heartbeat of one process; ``start`` / ``stop`` bound its life."""

    def __init__(
        self,
        store: DataStore,
        clock: Clock,
        *,
        capacity: int,
        lease: timedelta,
        heartbeat: timedelta,
    ) -> None:
        self.store = store
        self.clock = clock
        self.capacity = capacity
        self.lease = lease
        self.heartbeat = heartbeat
        self.host_key = host_key()
        self.roles: tuple[str, ...] = ()
        self.info: WorkerInfo | None = None
        self.term: SchedulerTerm | None = None
        """The scheduler term this process holds; None when another one schedules."""
        self.running: Callable[[], int] = lambda: 0
        self.on_lost: Callable[[], None] = lambda: None
        self.on_cancel: Callable[[Sequence[int]], None] = lambda ids: None
        self._task: asyncio.Task[None] | None = None
        self._nudged = asyncio.Event()
        self._last_beat = 0.0
        self._renewed = 0.0
        self._failing = False

    @property
    def worker_id(self) -> str:
        if self.info is None:
            raise RuntimeError("this process has not registered: start its presence first")
        return self.info.id

    @property
    def joined(self) -> bool:
        return self.info is not None

    def gone(self) -> Callable[[WorkerInfo], bool]:
        return gone_on_this_host(self.host_key)

    async def start(self, roles: Sequence[str]) -> None:
        """Register with these roles (again, with more, if already registered) and renew."""
        self.roles = tuple(sorted(set(self.roles) | set(roles)))
        if self.info is None:
            await self._register()  # raises when the database is away: the caller retries
        await self.beat()
        if self._task is None:
            self._task = asyncio.create_task(self._renew_forever(), name="synchestra-heartbeat")

    async def stop(self) -> None:
        """Stop renewing and unlist this process (it holds nothing any more)."""
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.info is not None:
            with suppress(Exception):  # a database that is gone will see the lease lapse
                await self.store.unregister_worker(self.info.id)
        self.info, self.term, self.roles = None, None, ()

    async def _register(self) -> None:
        info = new_identity(self.roles, self.capacity, self.host_key)
        await self.store.register_worker(info)
        self.info, self._renewed = info, self._now()

    def nudge(self) -> None:
        """Renew soon rather than at the next heartbeat: another process wrote something
        this one may have to act on (a cancel of its run, a scheduler that stopped).

        At most one nudged renewal a second: other processes' writes notify often,
        and each renewal is a write.
        """
        self._nudged.set()

    async def _renew_forever(self) -> None:
        while True:
            await first_of(self.clock.sleep(self.heartbeat.total_seconds()), self._nudged.wait())
            if self._nudged.is_set():
                self._nudged.clear()
                since = self._now() - self._last_beat
                await asyncio.sleep(max(0.0, NUDGE_GAP - since))  # real time, like renewals
            await self.beat()

    def _now(self) -> float:
        """Seconds on this process's clock (renewal gaps; liveness itself is the database's)."""
        return self.clock.now().timestamp()

    async def beat(self) -> None:
        """One renewal (registering first if this process is not listed).

        A database error is logged once and the next renewal retries; a process
        that could not renew for a whole ``lease`` counts itself dead (others will)
        and stops its runs: it fences itself rather than run beside their re-runs.
        """
        self._last_beat = self._now()
        try:
            if self.info is None:
                await self._register()
            assert self.info is not None
            beat = await self.store.heartbeat(
                self.info.id, running=self.running(), lease=self.lease, roles=self.roles
            )
        except Exception as error:  # the database is away: keep trying, say it once
            self._failed(error)
            return
        self._failing, self._renewed = False, self._now()
        if not beat.alive:
            log.warning(
                "lease lost: %s was declared dead (silent for %s); its runs stop, it rejoins",
                self.info.id,
                self.lease,
            )
            self._lose()
            return
        self.term = SchedulerTerm(self.info.id, beat.term) if beat.term is not None else None
        if beat.cancel:
            self.on_cancel(beat.cancel)

    def _failed(self, error: Exception) -> None:
        if not self._failing:
            log.warning("heartbeat failed (%s); retrying", type(error).__name__)
        self._failing = True
        silent = self._now() - self._renewed
        if self.info is not None and silent > self.lease.total_seconds():
            log.warning(
                "lease lost: %s could not renew for %s; its runs stop, it rejoins when it can",
                self.info.id,
                self.lease,
            )
            self._lose()

    def _lose(self) -> None:
        """This process's runs are no longer its own: stop them; a new id is registered."""
        self.term = None
        self.info = None
        self.on_lost()
