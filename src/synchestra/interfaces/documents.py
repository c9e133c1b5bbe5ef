"""The contract's JSON documents, rendered from the engine's typed values.

One renderer for every interface: the HTTP API answers these documents, the CLI
prints them (``--json``, and its tables read them), the dashboard's templates
show them. Timestamps are ISO 8601 in UTC with a ``Z``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from synchestra.core.documents import run_document
from synchestra.core.durations import iso
from synchestra.core.models import Enqueued, Target
from synchestra.core.workers import WorkerStatus
from synchestra.engine.eta import ApiEta, QueueEta
from synchestra.engine.health import HealthReport, SourceHealth
from synchestra.engine.status import SourceStatus, SyncStatus, TargetStatus

__all__ = [
    "eta_document",
    "health_document",
    "queued_document",
    "record_document",
    "run_document",
    "sync_status_document",
    "target_document",
    "target_status_document",
    "worker_document",
    "workers_document",
]

NO_API = "-"
"""The ``by_api`` key of sources without an API."""


def _seconds(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None


def _api_eta(item: ApiEta) -> dict[str, Any]:
    return {"runs_left": item.runs_left, "seconds": _seconds(item.seconds), "bound": item.bound}


def eta_document(eta: QueueEta) -> dict[str, Any]:
    """``eta`` of ``GET /api/sync/status``: seconds rounded to a tenth."""
    return {
        "runs_left": eta.runs_left,
        "seconds": _seconds(eta.seconds),
        "finishes_at": iso(eta.finishes_at),
        "by_api": {api or NO_API: _api_eta(item) for api, item in eta.by_api.items()},
    }


def _source_health(verdict: SourceHealth) -> dict[str, Any]:
    return {
        "healthy": verdict.healthy,
        "state": verdict.state,
        "last_success": iso(verdict.last_success),
        "consecutive_failures": verdict.consecutive_failures,
        "stale": verdict.stale,
    }


def health_document(report: HealthReport) -> dict[str, Any]:
    """``GET /api/health``."""
    document: dict[str, Any] = {
        "status": report.status,
        "all_healthy": report.all_healthy,
        "sources": {name: _source_health(verdict) for name, verdict in report.sources.items()},
    }
    if report.workers is not None:
        document["workers"] = {
            "live": report.workers.live,
            "scheduler": report.workers.scheduler,
        }
    return document


def worker_document(status: WorkerStatus) -> dict[str, Any]:
    """One process as ``synchestra workers --json`` and ``GET /api/workers`` list it."""
    return {
        "id": status.info.id,
        "host": status.info.host,
        "pid": status.info.pid,
        "roles": list(status.info.roles),
        "started_at": iso(status.started_at),
        "heartbeat_at": iso(status.heartbeat_at),
        "running": status.running,
        "capacity": status.info.capacity,
        "version": status.info.version,
        "scheduler": status.scheduler,
        "live": status.live,
    }


def workers_document(statuses: Sequence[WorkerStatus]) -> dict[str, Any]:
    return {"workers": [worker_document(status) for status in statuses]}


def _source_status(status: SourceStatus) -> dict[str, Any]:
    return {
        "source": status.source,
        "status": status.status,
        "started_at": iso(status.started_at),
        "completed_at": iso(status.completed_at),
        "error": status.error,
        "next_run_at": iso(status.next_run_at),
        "queued": status.queued,
        "running": status.running,
    }


def sync_status_document(status: SyncStatus) -> dict[str, Any]:
    """``GET /api/sync/status`` and ``status --json`` (``eta`` only when it was estimated)."""
    document: dict[str, Any] = {
        "sources": [_source_status(item) for item in status.sources],
        "health": health_document(status.health),
    }
    if status.eta is not None:
        document["eta"] = eta_document(status.eta)
    return document


def target_status_document(status: TargetStatus) -> dict[str, Any]:
    """``GET /api/targets/{key}`` and ``status --target KEY --json``."""
    return {
        "target": status.target,
        "name": status.name,
        "last_run": iso(status.last_run),
        "success": status.success,
        "errors": [
            {"source": failure.source, "error": failure.error, "at": iso(failure.at)}
            for failure in status.errors
        ],
        "sources": {
            name: {
                "state": item.state,
                "last_attempt": iso(item.last_attempt),
                "last_success": iso(item.last_success),
                "error": item.error,
            }
            for name, item in status.sources.items()
        },
    }


def target_document(target: Target) -> dict[str, Any]:
    return {"key": target.key, "name": target.name, "attrs": dict(target.attrs)}


def record_document(row: Any) -> dict[str, Any]:
    """A stored record (the store's row) as the contract shapes it."""
    return {
        "kind": row.kind,
        "key": row.key,
        "target": row.target or None,
        "source": row.source,
        "data": row.data,
        "first_seen": iso(row.first_seen),
        "last_seen": iso(row.last_seen),
        "changed_at": iso(row.changed_at),
        "deleted_at": iso(row.deleted_at),
    }


def queued_document(answers: Sequence[Enqueued]) -> dict[str, Any]:
    """The answer of every ``POST .../sync``: the runs queued (or already queued)."""
    return {
        "runs": [
            {
                "id": str(answer.run.id),
                "source": answer.run.source,
                "target": answer.run.target,
                "state": answer.run.state.value,
                "deduplicated": answer.deduplicated,
            }
            for answer in answers
        ]
    }
