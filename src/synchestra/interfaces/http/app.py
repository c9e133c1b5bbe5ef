"""The FastAPI application over an open :class:`~synchestra.engine.orchestrator.Orchestrator`."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse

from synchestra.engine import status as views
from synchestra.engine.orchestrator import Orchestrator
from synchestra.interfaces import dashboard
from synchestra.interfaces.http import errors
from synchestra.interfaces.http.auth import bearer_auth
from synchestra.interfaces.http.routes_events import events_router
from synchestra.interfaces.http.routes_metrics import metrics_router
from synchestra.interfaces.http.routes_runs import runs_router
from synchestra.interfaces.http.routes_sync import sync_router
from synchestra.interfaces.http.routes_targets import targets_router
from synchestra.interfaces.http.schemas import Health
from synchestra.interfaces.http.schemas import errors as error_codes


def create_app(orchestrator: Orchestrator, *, token: str | None) -> FastAPI:
    """The HTTP API. ``orchestrator`` is open (its owner runs it); ``token`` None: no auth.

    Every ``/api`` route but ``/api/health`` needs ``Authorization: Bearer <token>``;
    the dashboard at ``/`` asks for the same token once and keeps a cookie.
    """
    app = FastAPI(title="synchestra", version="0.1.0", summary="the synchestra HTTP API")
    app.state.closing = asyncio.Event()  # set by end_streams()
    errors.install(app)
    orc = orchestrator

    @app.get(
        "/api/health",
        response_model=Health,
        responses=error_codes(503) | {503: {"model": Health, "description": "down"}},
        tags=["health"],
        summary="health of every source (no auth)",
    )
    async def health() -> Any:
        document = await views.health(orc.store, orc.sources, orc.clock.now())
        if document["status"] == "down":
            return JSONResponse(document, status_code=503)
        return document

    dependencies = [Depends(bearer_auth(token))] if token is not None else []
    responses = error_codes(401, 403) if token is not None else {}
    for router in (sync_router(orc), targets_router(orc), runs_router(orc), events_router(orc)):
        app.include_router(router, dependencies=dependencies, responses=responses)
    app.include_router(metrics_router(orc))  # outside /api: no token (see routes_metrics)
    dashboard.install(app, orc, token=token)
    return app


def end_streams(app: FastAPI) -> None:
    """Let the open event streams end: a stopping server then need not cancel them."""
    app.state.closing.set()
