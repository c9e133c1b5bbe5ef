"""Queueing syncs: ``/api/sync...`` and ``/api/targets/{key}/sync``. They answer at once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Body

from synchestra.core.durations import parse_duration
from synchestra.core.errors import UnknownTarget
from synchestra.core.models import Mode
from synchestra.interfaces.documents import queued_document, sync_status_document
from synchestra.interfaces.http.deps import Orc
from synchestra.interfaces.http.errors import HttpProblem
from synchestra.interfaces.http.schemas import (
    FullSyncRequest,
    QueuedRuns,
    SyncManyRequest,
    SyncRequest,
    SyncStatus,
    TargetSyncRequest,
    errors,
)

router = APIRouter(tags=["sync"])

_QUEUES: dict[str, Any] = {
    "status_code": 202,
    "response_model": QueuedRuns,
    "responses": errors(404, 422),
}
"""What every route that queues runs answers."""


@router.get("/api/sync/status", response_model=SyncStatus, summary="per-source status")
async def sync_status(orc: Orc) -> dict[str, Any]:
    return sync_status_document(await orc.sync_status())


async def _queue(
    orc: Orc,
    sources: Sequence[str] | None,
    body: SyncManyRequest | SyncRequest | FullSyncRequest,
    *,
    all_targets: bool,
    mode: Mode,
) -> dict[str, Any]:
    """Queue ``sources`` for the targets and with the priority ``body`` gives."""
    answers = await orc.request(
        sources, targets=body.targets, all_targets=all_targets, mode=mode, priority=body.priority
    )
    return queued_document(answers)


@router.post(
    "/api/sync", **_QUEUES, summary="queue several sources (every source when sources is null)"
)
async def sync_many(
    orc: Orc, body: Annotated[SyncManyRequest | None, Body()] = None
) -> dict[str, Any]:
    body = body or SyncManyRequest()
    return await _queue(
        orc, body.sources, body, all_targets=body.all_targets and not body.targets, mode=body.mode
    )


@router.post("/api/sync/{source}", **_QUEUES, summary="queue one source")
async def sync_source(
    orc: Orc, source: str, body: Annotated[SyncRequest | None, Body()] = None
) -> dict[str, Any]:
    body = body or SyncRequest()
    return await _queue(orc, [source], body, all_targets=body.all_targets, mode=body.mode)


@router.post("/api/sync/{source}/full", **_QUEUES, summary="queue one source in mode full")
async def sync_source_full(
    orc: Orc, source: str, body: Annotated[FullSyncRequest | None, Body()] = None
) -> dict[str, Any]:
    body = body or FullSyncRequest()
    return await _queue(orc, [source], body, all_targets=body.all_targets, mode=Mode.FULL)


@router.post(
    "/api/targets/{key:path}/sync",
    **_QUEUES,
    summary="queue every source (or those given) for one target",
)
async def sync_target(
    orc: Orc, key: str, body: Annotated[TargetSyncRequest | None, Body()] = None
) -> dict[str, Any]:
    body = body or TargetSyncRequest()
    max_age = parse_duration(body.max_age) if body.max_age is not None else None
    try:
        answers = await orc.request_for_target(key, body.sources, max_age=max_age)
    except UnknownTarget as error:
        raise HttpProblem(404, str(error)) from None
    return queued_document(answers)
