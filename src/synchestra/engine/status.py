"""The status documents of the contract, built from the store.

Shared by the CLI (``status --json``) and the HTTP API so both answer alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from synchestra.core.errors import UnknownTarget
from synchestra.core.events import iso
from synchestra.core.models import RunState, Target
from synchestra.core.records import Record
from synchestra.engine.health import aggregate, judge, source_state
from synchestra.engine.sources import SourceSpec
from synchestra.store.abc import DataStore


async def sync_status(
    store: DataStore, sources: Mapping[str, SourceSpec], now: datetime
) -> dict[str, Any]:
    """``{"sources": [...], "health": {...}}`` as ``GET /api/sync/status`` answers."""
    rows = await store.source_rows()
    listing = []
    for name in sorted(sources):
        row = rows.get(name)
        state = source_state(row)
        listing.append(
            {
                "source": name,
                "status": state,
                "started_at": iso(row.last_started) if row else None,
                "completed_at": iso(row.last_finished) if row else None,
                "error": (row.last_error if state == "error" else None) if row else None,
                "next_run_at": iso(row.next_fire_at) if row else None,
                "queued": row.queued if row else 0,
                "running": row.running if row else 0,
            }
        )
    verdicts = {name: judge(sources[name], rows.get(name), now) for name in sources}
    return {"sources": listing, "health": aggregate(verdicts)}


async def health(
    store: DataStore, sources: Mapping[str, SourceSpec], now: datetime
) -> dict[str, Any]:
    rows = await store.source_rows()
    return aggregate({name: judge(sources[name], rows.get(name), now) for name in sources})


async def target_status(
    store: DataStore, sources: Mapping[str, SourceSpec], key: str
) -> dict[str, Any]:
    """The sync status of one target, as ``status --target KEY --json`` prints it."""
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
        state = active.get(name) or (status.state if status else "idle")
        per_source[name] = {
            "state": state,
            "last_attempt": iso(status.last_attempt) if status else None,
            "last_success": iso(status.last_success) if status else None,
            "error": status.error if status and status.state == RunState.FAILED.value else None,
        }
        if status and status.state == RunState.FAILED.value:
            errors.append({"source": name, "error": status.error, "at": iso(status.error_at)})
    attempts = [s.last_attempt for s in pairs.values() if s.last_attempt is not None]
    settled = [s.state for s in pairs.values()]
    return {
        "target": target.key,
        "name": target.name,
        "last_run": iso(max(attempts)) if attempts else None,
        "success": bool(settled) and all(s in ("succeeded", "skipped") for s in settled),
        "errors": errors,
        "sources": per_source,
    }


def target_dict(target: Target) -> dict[str, Any]:
    return {"key": target.key, "name": target.name, "attrs": dict(target.attrs)}


def record_dict(record: Record) -> dict[str, Any]:
    """A record as the contract shapes it."""
    return {
        "kind": record.kind,
        "key": record.key,
        "target": record.target,
        "source": record.source,
        "data": record.data,
        "first_seen": iso(record.first_seen),
        "last_seen": iso(record.last_seen),
        "changed_at": iso(record.changed_at),
        "deleted_at": iso(record.deleted_at),
    }
