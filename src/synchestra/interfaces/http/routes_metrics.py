"""Prometheus metrics: ``GET /metrics``.

Outside ``/api``, so it needs no bearer token (as Prometheus scrapers expect); it
tells counts, timings and source and API names, never secrets. Serve it only where
those may be seen, or put it behind the reverse proxy's own authentication.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from synchestra.interfaces.metrics import Metrics

router = APIRouter(tags=["metrics"])


def app_metrics(request: Request) -> Metrics:
    """The application's metrics (they count from when ``create_app`` built it)."""
    found: Metrics = request.app.state.metrics
    return found


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
    summary="Prometheus metrics (no auth)",
)
async def scrape(metrics: Annotated[Metrics, Depends(app_metrics)]) -> Response:
    return Response(await metrics.scrape(), media_type=CONTENT_TYPE_LATEST)
