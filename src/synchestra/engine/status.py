"""The status of sources and targets, read from the store, as typed values.

The interfaces render them (``synchestra.interfaces.documents``), so the CLI
(``status --json``), the HTTP API and the dashboard answer alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from synchestra.core.errors import UnknownTarget
from synchestra.core.models import RunState
from synchestra.core.status import SourceRow
from synchestra.engine.eta import QueueEta
from synchestra.engine.health import (
    HealthReport,
    aggregate,
    judge,
    source_state,
    with_processes,
)
from synchestra.engine.sources import SourceSpec
from synchestra.store.abc import DataStore


@dataclass(frozen=True)
class SourceStatus:
    """One source: ``status`` is ``idle | queued | running | completed | error``."""

    source: str
    status: str
    started_at: datetime | None = None
    completed_at: datetime | None = None
    error: str | None = None
    next_run_at: datetime | None = None
    queued: int = 0
    running: int = 0


@dataclass(frozen=True)
class SyncStatus:
    """Every source (sorted by name), their health, and the queue's ETA when it was asked."""

    sources: tuple[SourceStatus, ...]
    health: HealthReport
    eta: QueueEta | None = None


@dataclass(frozen=True)
class TargetSource:
    """How one source stands for one target (``error`` only while it is failing)."""

    state: str
    last_attempt: datetime | None
    last_success: datetime | None
    error: str | None


@dataclass(frozen=True)
class TargetFailure:
    source: str
    error: str | None
    at: datetime | None


@dataclass(frozen=True)
class TargetStatus:
    """One target's sync status: ``success`` when every settled run succeeded or was skipped."""

    target: str
    name: str
    last_run: datetime | None
    success: bool
    errors: tuple[TargetFailure, ...]
    sources: Mapping[str, TargetSource]


def source_status(name: str, row: SourceRow | None) -> SourceStatus:
    if row is None:
        return SourceStatus(name, source_state(row))
    state = source_state(row)
    return SourceStatus(
        source=name,
        status=state,
        started_at=row.last_started,
        completed_at=row.last_finished,
        error=row.last_error if state == "error" else None,
        next_run_at=row.next_fire_at,
        queued=row.queued,
        running=row.running,
    )


async def sync_status(
    store: DataStore, sources: Mapping[str, SourceSpec], now: datetime, lease: timedelta
) -> SyncStatus:
    """Every source's status and health (without the ETA: the orchestrator adds it)."""
    rows = await store.source_rows()
    listing = tuple(source_status(name, rows.get(name)) for name in sorted(sources))
    return SyncStatus(listing, await _health(store, rows, sources, now, lease))


async def health(
    store: DataStore, sources: Mapping[str, SourceSpec], now: datetime, lease: timedelta
) -> HealthReport:
    """The sources' health, and whether the live processes can run and schedule them."""
    return await _health(store, await store.source_rows(), sources, now, lease)


async def _health(
    store: DataStore,
    rows: Mapping[str, SourceRow],
    sources: Mapping[str, SourceSpec],
    now: datetime,
    lease: timedelta,
) -> HealthReport:
    report = aggregate({name: judge(sources[name], rows.get(name), now) for name in sources})
    queued = sum(row.queued for row in rows.values())
    return with_processes(report, await store.workers(lease), queued=queued)


async def target_status(
    store: DataStore, sources: Mapping[str, SourceSpec], key: str
) -> TargetStatus:
    """The sync status of one target; :class:`UnknownTarget` when there is none."""
    target = await store.get_target(key)
    if target is None:
        raise UnknownTarget(key)
    pairs = {status.source: status for status in await store.pair_statuses(key)}
    active = {run.source: run.state.value for run in await store.active_runs(key)}
    names = sorted({n for n, s in sources.items() if s.per_target} | set(pairs))
    per_source = {}
    errors = []
    for name in names:
        status = pairs.get(name)
        failed = status is not None and status.state == RunState.FAILED.value
        per_source[name] = TargetSource(
            state=active.get(name) or (status.state if status else "idle"),
            last_attempt=status.last_attempt if status else None,
            last_success=status.last_success if status else None,
            error=status.error if status and failed else None,
        )
        if status and failed:
            errors.append(TargetFailure(name, status.error, status.error_at))
    attempts = [s.last_attempt for s in pairs.values() if s.last_attempt is not None]
    settled = [s.state for s in pairs.values()]
    return TargetStatus(
        target=target.key,
        name=target.name,
        last_run=max(attempts) if attempts else None,
        success=bool(settled) and all(s in ("succeeded", "skipped") for s in settled),
        errors=tuple(errors),
        sources=per_source,
    )
