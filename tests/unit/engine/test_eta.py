"""The ETA of the queue: from the backlog, the APIs' quotas and the learnt cost of a run."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from engine_helpers import cfg, opened, within
from synchestra.config import Config
from synchestra.connectors.context import SyncContext
from synchestra.core.clock import FakeClock
from synchestra.core.durations import Rate, iso
from synchestra.core.models import Backlog, Target
from synchestra.engine.eta import CostBook, RunCost, api_eta, estimate
from synchestra.engine.orchestrator import Orchestrator
from synchestra.interfaces.cli.display import eta_line
from synchestra.interfaces.documents import eta_document
from synchestra.interfaces.http import create_app
from synchestra.upstream.ratelimit import ApiLimiter


def limiter(rate: int | None, concurrency: int | None = None) -> ApiLimiter:
    quota = Rate(rate, timedelta(seconds=1)) if rate else None
    return ApiLimiter("api", quota, concurrency, FakeClock())


def test_the_rate_bounds_a_backlog_of_many_requests() -> None:
    eta = api_eta(Backlog(queued=300), RunCost(requests=2.0), limiter(20), workers=16)
    assert (eta.seconds, eta.bound, eta.runs_left) == (30.0, "rate", 300)


def test_the_cap_bounds_slow_runs() -> None:
    cost = RunCost()
    cost.observe(requests=1, seconds=2.0)
    eta = api_eta(Backlog(queued=40), cost, limiter(100, concurrency=4), workers=16)
    assert (eta.seconds, eta.bound) == (20.0, "concurrency")  # 40 x 2 s / 4 > 40 / 100


def test_a_backoff_lengthens_the_estimate() -> None:
    api = limiter(20)
    before = api_eta(Backlog(queued=100), RunCost(), api, workers=16).seconds
    api.throttled(api.clock.now())
    after = api_eta(Backlog(queued=100), RunCost(), api, workers=16).seconds
    assert (before, after) == (5.0, 10.0)


def test_running_runs_count_half_and_an_empty_backlog_is_done() -> None:
    assert api_eta(Backlog(running=10), RunCost(), limiter(10), workers=4).seconds == 0.5
    assert api_eta(Backlog(), RunCost(), limiter(10), workers=4).seconds == 0.0


def test_costs_are_a_moving_average() -> None:
    cost = RunCost()
    cost.observe(requests=1, seconds=1.0)
    cost.observe(requests=6, seconds=6.0)
    assert (cost.requests, cost.seconds, cost.observed) == (2.0, 2.0, 2)


def test_the_slowest_api_sets_the_overall_estimate() -> None:
    clock = FakeClock()
    book = CostBook()
    book.observe(None, requests=0, seconds=1.0)
    document = eta_document(
        estimate(
            {"fast": Backlog(queued=100), "slow": Backlog(queued=100), None: Backlog(queued=8)},
            {"fast": limiter(50), "slow": limiter(10)},
            book,
            workers=4,
            now=clock.now(),
        )
    )
    assert document["seconds"] == 10.0
    assert document["runs_left"] == 208
    assert document["by_api"]["-"] == {"runs_left": 8, "seconds": 2.0, "bound": "workers"}
    assert document["finishes_at"] == iso(clock.now() + timedelta(seconds=10))


def test_without_a_rate_or_a_run_seen_the_estimate_is_unknown() -> None:
    document = eta_document(
        estimate(
            {"plain": Backlog(queued=5)},
            {"plain": limiter(None)},
            CostBook(),
            workers=4,
            now=FakeClock().now(),
        )
    )
    assert document["seconds"] is None and document["finishes_at"] is None


@pytest.fixture
def config() -> Config:
    return cfg(
        {
            "apis": [{"name": "erp", "base_url": "http://127.0.0.1:9", "rate": "10/s"}],
            "engine": {"workers": 4},
        }
    )


async def test_the_orchestrator_estimates_its_queue(
    database_url: str, clock: FakeClock, config: Config
) -> None:
    def setup(orc: Orchestrator) -> None:
        @orc.source("prices", per_target=True, api="erp")
        async def prices(ctx: SyncContext) -> None:
            return None

    async with opened(database_url, clock, config, setup=setup) as orc:
        await orc.add_targets([Target(f"t:{n}") for n in range(50)])
        answers = await orc.request(["prices"], all_targets=True)
        eta = eta_document(await orc.eta())
        assert eta["runs_left"] == 50
        assert eta["by_api"]["erp"] == {"runs_left": 50, "seconds": 5.0, "bound": "rate"}
        orc.start(schedule=False)
        await within(orc.wait_for([answer.run.id for answer in answers]))
        done = eta_document(await orc.eta())
        assert done["runs_left"] == 0 and done["seconds"] == 0.0
        assert orc.dispatcher.costs.of("erp").requests == 0.0  # a no-op source sends nothing


async def test_each_run_counts_its_own_requests_on_the_shared_client(
    database_url: str, clock: FakeClock, config: Config
) -> None:
    """Two sources share the ERP's client; each run's requests are counted apart."""

    async def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"ok": True})

    orc = Orchestrator(
        config,
        database_url=database_url,
        clock=clock,
        environ={},
        transport=httpx.MockTransport(answer),
    )

    @orc.source("orders", api="erp")
    async def orders(ctx: SyncContext) -> None:
        for page in range(3):
            await ctx.http.get("/orders", params={"page": page})

    @orc.source("prices", api="erp")
    async def prices(ctx: SyncContext) -> None:
        await ctx.http.get("/prices")

    async with orc:
        try:
            for name, requests in (("orders", 3.0), ("prices", 2.6)):  # 2.6 = 3 + 0.2 x (1 - 3)
                [answer_] = await orc.request([name])
                orc.start(schedule=False)
                await within(orc.wait_for([answer_.run.id]))
                assert (
                    orc.dispatcher.costs.of("erp").requests == requests
                )  # 3, then 3 + 0.2 x (1 - 3)
        finally:
            await orc.stop(grace=timedelta(0))


def test_the_eta_reads_in_one_line() -> None:
    document = eta_document(
        estimate(
            {"datahub": Backlog(queued=900), "qcmobile": Backlog(queued=300), "idle": Backlog()},
            {"datahub": limiter(20), "qcmobile": limiter(50), "idle": limiter(5)},
            CostBook(),
            workers=16,
            now=FakeClock().now(),
        )
    )
    assert eta_line(document) == (
        "queue: 1200 runs left, empty in ~45s (datahub ~45s rate, qcmobile ~6s rate)"
    )
    document["seconds"] = 7200.0
    assert "empty in ~2.0h" in eta_line(document)


async def test_the_api_status_carries_the_eta(
    database_url: str, clock: FakeClock, config: Config
) -> None:
    def setup(orc: Orchestrator) -> None:
        @orc.source("prices", per_target=True, api="erp")
        async def prices(ctx: SyncContext) -> None:
            return None

    async with opened(database_url, clock, config, setup=setup) as orc:
        await orc.add_targets([Target(f"t:{n}") for n in range(20)])
        await orc.request(["prices"], all_targets=True)
        app = create_app(orc, token=None)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as api:
            body = (await api.get("/api/sync/status")).json()
    assert body["eta"]["runs_left"] == 20
    assert body["eta"]["by_api"]["erp"] == {"runs_left": 20, "seconds": 2.0, "bound": "rate"}
    assert body["eta"]["finishes_at"] == iso(clock.now() + timedelta(seconds=2))
