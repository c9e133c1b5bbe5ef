"""Queueing syncs: ``/api/sync...`` and ``/api/targets/{key}/sync``. They answer at once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Body

from synchestra.core.durations import parse_duration
from synchestra.core.errors import InputError, UnknownTarget
from synchestra.core.models import Enqueued, Mode
from synchestra.engine.orchestrator import Orchestrator
from synchestra.interfaces.http.errors import ApiError
from synchestra.interfaces.http.schemas import (
    FullSyncRequest,
    QueuedRuns,
    SyncManyRequest,
    SyncRequest,
    SyncStatus,
    TargetSyncRequest,
    errors,
)


def queued(answers: Sequence[Enqueued]) -> dict[str, Any]:
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


def sync_router(orc: Orchestrator) -> APIRouter:
    router = APIRouter(
        tags=["sync"],
    )

    @router.get("/api/sync/status", response_model=SyncStatus, summary="per-source status")
    async def sync_status() -> dict[str, Any]:
        return await orc.sync_status()

    @router.post(
        "/api/sync",
        status_code=202,
        response_model=QueuedRuns,
        responses=errors(404, 422),
        summary="queue several sources (every source when sources is null)",
    )
    async def sync_many(body: Annotated[SyncManyRequest | None, Body()] = None) -> dict[str, Any]:
        body = body or SyncManyRequest()
        answers = await orc.request(
            body.sources,
            targets=body.targets,
            all_targets=body.all_targets and not body.targets,
            mode=body.mode,
            priority=body.priority,
        )
        return queued(answers)

    @router.post(
        "/api/sync/{source}",
        status_code=202,
        response_model=QueuedRuns,
        responses=errors(404, 422),
        summary="queue one source",
    )
    async def sync_source(
        source: str, body: Annotated[SyncRequest | None, Body()] = None
    ) -> dict[str, Any]:
        body = body or SyncRequest()
        answers = await orc.request(
            [source],
            targets=body.targets,
            all_targets=body.all_targets,
            mode=body.mode,
            priority=body.priority,
        )
        return queued(answers)

    @router.post(
        "/api/sync/{source}/full",
        status_code=202,
        response_model=QueuedRuns,
        responses=errors(404, 422),
        summary="queue one source in mode full",
    )
    async def sync_source_full(
        source: str, body: Annotated[FullSyncRequest | None, Body()] = None
    ) -> dict[str, Any]:
        body = body or FullSyncRequest()
        answers = await orc.request(
            [source],
            targets=body.targets,
            all_targets=body.all_targets,
            mode=Mode.FULL,
            priority=body.priority,
        )
        return queued(answers)

    @router.post(
        "/api/targets/{key:path}/sync",
        status_code=202,
        response_model=QueuedRuns,
        responses=errors(404, 422),
        summary="queue every source (or those given) for one target",
    )
    async def sync_target(
        key: str, body: Annotated[TargetSyncRequest | None, Body()] = None
    ) -> dict[str, Any]:
        body = body or TargetSyncRequest()
        if await orc.store.get_target(key) is None:
            raise ApiError(404, str(UnknownTarget(key)))
        names = body.sources or [n for n, spec in orc.sources.items() if spec.per_target]
        for name in names:
            spec = orc.sources.get(name)
            if spec is not None and not spec.per_target:
                raise InputError(f"source {name!r} has no targets")
        if body.max_age is not None:
            oldest = orc.clock.now() - parse_duration(body.max_age)
            fresh = {
                status.source
                for status in await orc.store.pair_statuses(key)
                if status.last_success is not None and status.last_success >= oldest
            }
            names = [name for name in names if name not in fresh]
        if not names:
            return queued([])
        return queued(await orc.request(names, targets=[key]))

    return router
