"""The processes sharing one database: who they are, how alive they are, what they hold."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

ROLES = ("scheduler", "worker", "api")
"""What a process may do: fire schedules (one at a time, elected), run work, serve the API."""


@dataclass(frozen=True)
class WorkerInfo:
    """What a process says of itself when it registers.

    ``host_key`` names its machine and pid namespace (boot id and the namespace's
    inode): two processes with the same key can tell by pid whether the other
    still exists; any other pair must wait for the lease.
    """

    id: str
    host: str
    pid: int
    host_key: str
    roles: tuple[str, ...]
    capacity: int
    version: str


@dataclass(frozen=True)
class WorkerStatus:
    """A registered process as ``synchestra workers`` lists it."""

    info: WorkerInfo
    started_at: datetime
    heartbeat_at: datetime
    running: int
    live: bool
    scheduler: bool


@dataclass(frozen=True)
class Beat:
    """What one renewal learnt: whether this process still counts as alive, what to stop.

    ``term`` is the scheduler term this process holds after the renewal (None:
    it is not the scheduler).
    """

    alive: bool
    cancel: tuple[int, ...] = ()
    term: int | None = None


@dataclass(frozen=True)
class Fence:
    """Who may write for a run: the process that claimed it, in that attempt."""

    run_id: int
    attempt: int
    owner: str


@dataclass(frozen=True)
class SchedulerTerm:
    """The scheduler's term: a fire is written only while ``holder`` still holds ``term``."""

    holder: str
    term: int
