"""Prometheus metrics: ``GET /metrics``.

Outside ``/api``, so it needs no bearer token (as Prometheus scrapers expect); it
tells counts, timings and source and API names, never secrets. Serve it only where
those may be seen, or put it behind the reverse proxy's own authentication.
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from synchestra.engine.orchestrator import Orchestrator
from synchestra.interfaces.metrics import Metrics


def metrics_router(orc: Orchestrator) -> APIRouter:
    """The ``/metrics`` route, with metrics of ``orc`` that start counting now."""
    metrics = Metrics(orc)
    router = APIRouter(tags=["metrics"])

    @router.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
        summary="Prometheus metrics (no auth)",
    )
    async def scrape() -> Response:
        return Response(await metrics.scrape(), media_type=CONTENT_TYPE_LATEST)

    return router
