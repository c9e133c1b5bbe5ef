"""Run history and cancellation: ``/api/runs...``; the processes that run them: ``/api/workers``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from synchestra.core.models import Run, RunState
from synchestra.interfaces.documents import run_document, workers_document
from synchestra.interfaces.http.deps import Orc
from synchestra.interfaces.http.errors import HttpProblem
from synchestra.interfaces.http.schemas import RunList, RunOut, WorkerList, errors


def _run_id(text: str) -> int:
    """The run id in the path; 404 for anything but 1-18 ASCII digits.

    ``str.isdigit`` alone accepts digits ``int`` refuses, such as ``"²"``.
    """
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise HttpProblem(404, f"unknown run {text!r}")
    return int(text)


def _found(run: Run | None, text: str) -> Run:
    if run is None:
        raise HttpProblem(404, f"unknown run {text!r}")
    return run


router = APIRouter(tags=["runs"])


@router.get("/api/runs", response_model=RunList, responses=errors(422), summary="run history")
async def list_runs(
    orc: Orc,
    source: str | None = None,
    target: str | None = None,
    state: RunState | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 50,
) -> dict[str, Any]:
    if "\x00" in (source or "") + (target or ""):
        # No run has one (PostgreSQL cannot store a NUL; it would fail the query).
        return {"runs": []}
    found = await orc.store.list_runs(source=source, target=target, state=state, limit=limit)
    return {"runs": [run_document(run) for run in found]}


@router.get("/api/runs/{run_id}", response_model=RunOut, responses=errors(404), summary="a run")
async def get_run(orc: Orc, run_id: str) -> dict[str, Any]:
    found = await orc.store.get_runs([_run_id(run_id)])
    return run_document(_found(found[0] if found else None, run_id))


@router.post(
    "/api/runs/{run_id}/cancel",
    status_code=202,
    response_model=RunOut,
    responses=errors(404),
    summary="cancel a queued run, or stop a running one",
)
async def cancel_run(orc: Orc, run_id: str) -> dict[str, Any]:
    return run_document(_found(await orc.cancel(_run_id(run_id)), run_id))


@router.get(
    "/api/workers",
    response_model=WorkerList,
    tags=["workers"],
    summary="the processes sharing the database",
)
async def list_workers(orc: Orc) -> dict[str, Any]:
    return workers_document(await orc.workers())
