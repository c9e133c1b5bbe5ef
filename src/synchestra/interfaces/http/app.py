"""The FastAPI application over an open :class:`~synchestra.engine.orchestrator.Orchestrator`."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from synchestra.engine.orchestrator import Orchestrator
from synchestra.interfaces import dashboard
from synchestra.interfaces.documents import health_document
from synchestra.interfaces.http import (
    errors,
    routes_events,
    routes_metrics,
    routes_runs,
    routes_sync,
    routes_targets,
)
from synchestra.interfaces.http.auth import bearer_auth
from synchestra.interfaces.http.deps import Orc
from synchestra.interfaces.http.schemas import Health
from synchestra.interfaces.http.schemas import errors as error_codes
from synchestra.interfaces.metrics import Metrics
from synchestra.store.failures import is_unavailable

API_ROUTERS = (routes_sync.router, routes_targets.router, routes_runs.router, routes_events.router)
"""Every ``/api`` router but the health route's: they need the token, when there is one."""


def create_app(orchestrator: Orchestrator, *, token: str | None) -> FastAPI:
    """The HTTP API. ``orchestrator`` is open (its owner runs it); ``token`` None: no auth.

    Every ``/api`` route but ``/api/health`` needs ``Authorization: Bearer <token>``;
    the dashboard at ``/`` asks for the same token once and keeps a cookie.
    """
    app = FastAPI(title="synchestra", version="0.1.0", summary="the synchestra HTTP API")
    app.state.orchestrator = orchestrator
    app.state.token = token
    app.state.metrics = Metrics(orchestrator)  # counts from now
    app.state.closing = asyncio.Event()  # set by end_streams()
    errors.install(app)
    app.include_router(health_router)  # no token
    dependencies = [Depends(bearer_auth)] if token is not None else []
    responses = error_codes(401, 403) if token is not None else {}
    for router in API_ROUTERS:
        app.include_router(router, dependencies=dependencies, responses=responses)
    app.include_router(routes_metrics.router)  # outside /api: no token (see routes_metrics)
    dashboard.install(app, orchestrator, token=token)
    return app


health_router = APIRouter(tags=["health"])
DOWN = {"status": "down", "all_healthy": False, "sources": {}}
"""``/api/health`` while the database does not answer: nothing can be judged, nothing runs."""


@health_router.get(
    "/api/health",
    response_model=Health,
    responses=error_codes(503) | {503: {"model": Health, "description": "down"}},
    summary="health of every source (no auth)",
)
async def health(request: Request, orc: Orc) -> Any:
    # No docstring: it would become the operation's description in /openapi.json.
    try:
        report = await orc.health()
    except Exception as error:  # the database is away: the engine is down, in health's shape
        if not is_unavailable(error):
            raise
        errors.database_unavailable(request, error)
        return JSONResponse(DOWN, status_code=503)
    document = health_document(report)
    if report.status == "down":
        return JSONResponse(document, status_code=503)
    return document


def end_streams(app: FastAPI) -> None:
    """Let the open event streams end: a stopping server then need not cancel them."""
    app.state.closing.set()
