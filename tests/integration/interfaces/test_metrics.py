"""``GET /metrics``: Prometheus text, parsed back with prometheus-client's own parser."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from engine_helpers import opened, within
from synchestra.connectors.context import SyncContext
from synchestra.core.clock import FakeClock
from synchestra.core.models import Target
from synchestra.engine.orchestrator import Orchestrator
from synchestra.interfaces.http import create_app

TOKEN = "s3cret-token-value"
CATALOG_SECONDS = 3.0

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def setup(orc: Orchestrator, clock: FakeClock) -> None:
    @orc.source("profile", per_target=True)
    async def profile(ctx: SyncContext) -> None:
        assert ctx.target is not None
        await ctx.upsert("profile", [{"id": ctx.target.key}], key="id")

    @orc.source("catalog")
    async def catalog(ctx: SyncContext) -> None:
        clock.set(clock.now() + timedelta(seconds=CATALOG_SECONDS))  # a run that takes 3 s
        await ctx.upsert("item", [{"id": 1}], key="id")

    @orc.source("broken")
    async def broken(ctx: SyncContext) -> None:
        raise ValueError("boom")


@pytest.fixture
async def orc(database_url: str, clock: FakeClock) -> AsyncIterator[Orchestrator]:
    async with opened(database_url, clock, setup=lambda orc: setup(orc, clock)) as orchestrator:
        await orchestrator.add_targets([Target("dot:1", "Alpha"), Target("dot:2", "Beta")])
        yield orchestrator


@pytest.fixture
def app(orc: Orchestrator) -> FastAPI:
    return create_app(orc, token=TOKEN)


async def scrape(app: FastAPI) -> Samples:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        response = await client.get("/metrics")  # no token: /metrics is outside /api
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert TOKEN not in response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def test_metrics_after_syncs(orc: Orchestrator, app: FastAPI, clock: FakeClock) -> None:
    lim = orc.apis.limiter("datahub")
    lim.requests_started, lim.http_429 = 7, 2

    summary = await within(orc.sync(["profile", "catalog", "broken"]))
    assert (summary.succeeded, summary.failed) == (3, 1)  # two targets, catalog; broken
    finished_at = clock.now()
    samples = await scrape(app)

    runs = "synchestra_runs_total"
    assert value(samples, runs, source="profile", state="succeeded") == 2
    assert value(samples, runs, source="catalog", state="succeeded") == 1
    assert value(samples, runs, source="broken", state="failed") == 1
    assert value(samples, runs, source="broken", state="succeeded") is None

    for source in ("profile", "catalog", "broken"):
        for state in ("queued", "running"):
            assert value(samples, "synchestra_queue_depth", source=source, state=state) == 0

    bucket = "synchestra_run_duration_seconds_bucket"
    assert value(samples, "synchestra_run_duration_seconds_count", source="catalog") == 1
    assert value(samples, "synchestra_run_duration_seconds_sum", source="catalog") == 3.0
    assert value(samples, bucket, source="catalog", le="2.5") == 0
    assert value(samples, bucket, source="catalog", le="5.0") == 1
    assert value(samples, "synchestra_run_duration_seconds_count", source="profile") == 2
    assert value(samples, "synchestra_run_duration_seconds_count", source="broken") == 1

    last = "synchestra_last_success_timestamp_seconds"
    assert value(samples, last, source="catalog") == finished_at.timestamp()
    assert value(samples, last, source="broken") is None  # never succeeded
    assert value(samples, "synchestra_source_consecutive_failures", source="broken") == 1

    assert value(samples, "synchestra_api_requests_total", api="datahub") == 7
    assert value(samples, "synchestra_api_429_total", api="datahub") == 2
    assert value(samples, "synchestra_metrics_events_dropped_total") == 0


async def test_queue_depth_is_read_at_scrape_time(orc: Orchestrator, app: FastAPI) -> None:
    await orc.request(["profile"])  # queued, the loop is not running
    samples = await scrape(app)
    assert value(samples, "synchestra_queue_depth", source="profile", state="queued") == 2
    assert value(samples, "synchestra_queue_depth", source="catalog", state="queued") == 0
    assert value(samples, "synchestra_runs_total", source="profile", state="queued") is None
    again = await scrape(app)  # a second scrape observes nothing twice
    assert again == samples


async def test_each_app_has_its_own_registry(orc: Orchestrator) -> None:
    first, second = create_app(orc, token=TOKEN), create_app(orc, token=None)
    await within(orc.sync(["catalog"]))
    for app in (first, second):
        samples = await scrape(app)
        assert value(samples, "synchestra_run_duration_seconds_count", source="catalog") == 1
        assert value(samples, "synchestra_runs_total", source="catalog", state="succeeded") == 1
