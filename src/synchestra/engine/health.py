"""Source health: the rule, and a tracker that notices when it flips.

A source is *stale* when it has not succeeded for longer than its
``stale_after`` (counted from when it was first seen if it never succeeded),
and *healthy* when it is not stale and its last ``UNHEALTHY_AFTER`` finished
runs did not all fail. A source whose runs are skipped (not configured) is
reported with state ``skipped`` and counts as healthy: it is switched off, not
broken. The aggregate is ``ok`` when every source is healthy, ``down`` when
none is, ``degraded`` in between.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from synchestra.core.events import HealthChanged
from synchestra.core.models import Outcome, RunState
from synchestra.core.status import SourceRow
from synchestra.core.workers import WorkerStatus
from synchestra.engine.sources import SourceSpec

UNHEALTHY_AFTER = 3


@dataclass(frozen=True)
class SourceHealth:
    healthy: bool
    state: str
    last_success: datetime | None
    consecutive_failures: int
    stale: bool


Overall = Literal["ok", "degraded", "down"]


@dataclass(frozen=True)
class ProcessesHealth:
    """The processes sharing the database: how many are live, which one schedules."""

    live: int
    scheduler: str | None


@dataclass(frozen=True)
class HealthReport:
    """Every source's verdict (sorted by name) and the aggregate (see the module docstring)."""

    status: Overall
    sources: Mapping[str, SourceHealth]
    workers: ProcessesHealth | None = None

    @property
    def all_healthy(self) -> bool:
        """Every source healthy (the processes may still leave the whole ``degraded``)."""
        return all(verdict.healthy for verdict in self.sources.values())


def source_state(row: SourceRow | None) -> str:
    """``idle | queued | running | completed | error`` (``skipped`` for health only)."""
    if row is None:
        return "idle"
    if row.running:
        return "running"
    if row.queued:
        return "queued"
    if row.failing_targets:
        return "error"
    if row.last_state is None:
        return "idle"
    return "error" if row.last_state == RunState.FAILED.value else "completed"


def judge(spec: SourceSpec | None, row: SourceRow | None, now: datetime) -> SourceHealth:
    failures = row.consecutive_failures if row else 0
    last_success = row.last_success if row else None
    state = source_state(row)
    if row is not None and row.last_state == RunState.SKIPPED.value and state == "completed":
        return SourceHealth(True, "skipped", last_success, failures, False)
    stale = False
    if spec is not None and spec.stale_after is not None and row is not None:
        since = last_success or row.created_at
        stale = now - since > spec.stale_after
    healthy = not stale and failures < UNHEALTHY_AFTER
    return SourceHealth(healthy, state, last_success, failures, stale)


def with_processes(
    report: HealthReport, processes: Sequence[WorkerStatus], *, queued: int
) -> HealthReport:
    """``degraded`` (unless already worse) when no live process may fire schedules, or
    runs are queued and no live process may run them."""
    live = [process for process in processes if process.live]
    holder = next((process.info.id for process in live if process.scheduler), None)
    summary = ProcessesHealth(live=len(live), scheduler=holder)
    may = {role for process in live for role in process.info.roles}
    lacking = "scheduler" not in may or (queued > 0 and "worker" not in may)
    status: Overall = "degraded" if lacking and report.status == "ok" else report.status
    return replace(report, status=status, workers=summary)


def aggregate(per_source: Mapping[str, SourceHealth]) -> HealthReport:
    healthy = sum(1 for h in per_source.values() if h.healthy)
    overall: Overall
    if healthy == len(per_source):
        overall = "ok"
    elif healthy == 0:
        overall = "down"
    else:
        overall = "degraded"
    return HealthReport(overall, dict(sorted(per_source.items())))


class HealthTracker:
    """Remembers each source's last verdict, to tell (``health.changed``) when one flips."""

    def __init__(self) -> None:
        self._healthy: dict[str, bool] = {}
        self._failures: dict[str, int] = {}

    def load(
        self, rows: Mapping[str, SourceRow], sources: Mapping[str, SourceSpec], now: datetime
    ) -> None:
        for name in sources:
            verdict = judge(sources[name], rows.get(name), now)
            self._healthy[name] = verdict.healthy
            self._failures[name] = verdict.consecutive_failures

    def observe(
        self, outcomes: Sequence[Outcome], sources: Mapping[str, SourceSpec], now: datetime
    ) -> list[HealthChanged]:
        """Follow consecutive failures from outcomes, without a database read."""
        touched = set()
        for outcome in outcomes:
            name = outcome.run.source
            if outcome.retry_at is not None:
                continue
            if outcome.state is RunState.SUCCEEDED:
                self._failures[name] = 0
            elif outcome.state is RunState.FAILED:
                self._failures[name] = self._failures.get(name, 0) + 1
            touched.add(name)
        changes = []
        for name in sorted(touched):
            healthy = self._failures.get(name, 0) < UNHEALTHY_AFTER
            if self._healthy.get(name, True) != healthy:
                self._healthy[name] = healthy
                changes.append(
                    HealthChanged(
                        at=now,
                        source=name,
                        healthy=healthy,
                        consecutive_failures=self._failures[name],
                        stale=False,
                    )
                )
        return changes

    def refresh(
        self, rows: Mapping[str, SourceRow], sources: Mapping[str, SourceSpec], now: datetime
    ) -> list[HealthChanged]:
        """Re-judge every source from the database (catches staleness and other processes)."""
        changes = []
        for name, spec in sources.items():
            verdict = judge(spec, rows.get(name), now)
            self._failures[name] = verdict.consecutive_failures
            if self._healthy.get(name, True) != verdict.healthy:
                self._healthy[name] = verdict.healthy
                changes.append(
                    HealthChanged(
                        at=now,
                        source=name,
                        healthy=verdict.healthy,
                        consecutive_failures=verdict.consecutive_failures,
                        stale=verdict.stale,
                    )
                )
        return changes
