"""The dashboard over an open orchestrator: signing in, fragments, actions, the grid at scale.

Requests go through ``httpx.ASGITransport``; every test runs on SQLite and
PostgreSQL. The browser side (the script, live recolouring) is tested in
test_dashboard_browser.py.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from engine_helpers import opened, until, within
from synchestra.connectors.context import SyncContext
from synchestra.core.clock import FakeClock
from synchestra.core.events import AlertRaised, RecordsChanged, RunProgress, RunRef
from synchestra.core.models import Target
from synchestra.core.records import RecordScope
from synchestra.engine.orchestrator import Orchestrator
from synchestra.interfaces.dashboard.routes import relative
from synchestra.interfaces.dashboard.session import COOKIE
from synchestra.interfaces.http import create_app

TOKEN = "dashboard-s3cret"
ACT = {"X-Synchestra": "1"}


def setup(orc: Orchestrator) -> None:
    @orc.source("profile", per_target=True, priority=2, group="crm")
    async def profile(ctx: SyncContext) -> None:
        assert ctx.target is not None
        if ctx.target.key == "dot:2":
            raise RuntimeError("profile service refused dot:2")

    @orc.source("scores", per_target=True, api="qcmobile")
    async def scores(ctx: SyncContext) -> None:
        return None

    @orc.source("catalog")
    async def catalog(ctx: SyncContext) -> None:
        return None


@pytest.fixture
async def orc(database_url: str, clock: FakeClock) -> AsyncIterator[Orchestrator]:
    async with opened(database_url, clock, setup=setup) as orchestrator:
        await orchestrator.add_targets([Target("dot:1", "Alpha"), Target("dot:2", "Beta")])
        yield orchestrator


def browser(orc: Orchestrator, token: str | None = TOKEN) -> httpx.AsyncClient:
    """A client that keeps cookies, as a browser does."""
    app = create_app(orc, token=token)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1")


@pytest.fixture
async def signed_in(orc: Orchestrator) -> AsyncIterator[httpx.AsyncClient]:
    async with browser(orc) as client:
        assert (await client.post("/login", data={"token": TOKEN})).status_code == 303
        yield client


def cell(html: str, target: str, source: str) -> str:
    """The class of one grid cell."""
    found = re.search(
        rf'class="cell (\w+)" data-target="{re.escape(target)}" data-source="{source}"', html
    )
    assert found is not None, f"no cell {target}/{source}"
    return found.group(1)


# --- signing in ----------------------------------------------------------------


async def test_the_page_asks_for_the_token_and_a_cookie_keeps_it(orc: Orchestrator) -> None:
    async with browser(orc) as client:
        first = await client.get("/")
        assert first.status_code == 401
        assert '<form method="post" action="/login">' in first.text

        wrong = await client.post("/login", data={"token": "nope"})
        assert wrong.status_code == 403
        assert "wrong token" in wrong.text
        assert COOKIE not in client.cookies

        right = await client.get("/", params={"token": TOKEN})
        assert right.status_code == 303
        assert right.headers["location"] == "/"  # the token leaves the address bar
        cookie = right.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "samesite=strict" in cookie.lower()
        assert TOKEN not in cookie  # an HMAC of it, not the token

        page = await client.get("/")
        assert page.status_code == 200
        assert 'id="sources"' in page.text and 'id="grid"' in page.text
        assert TOKEN not in page.text

        assert (await client.post("/logout")).status_code == 303
        assert (await client.get("/")).status_code == 401


async def test_a_forged_cookie_is_refused(orc: Orchestrator) -> None:
    async with browser(orc) as client:
        client.cookies.set(COOKIE, TOKEN)
        assert (await client.get("/")).status_code == 401
        assert (await client.get("/ui/grid")).status_code == 401


@pytest.mark.parametrize(
    "path",
    ["/ui/sources", "/ui/workers", "/ui/grid", "/ui/timeline", "/ui/targets/dot:1", "/ui/events"],
)
async def test_fragments_and_events_need_a_session(orc: Orchestrator, path: str) -> None:
    async with browser(orc) as client:
        response = await client.get(path)
    assert response.status_code == 401


async def test_without_a_token_the_dashboard_is_open(orc: Orchestrator) -> None:
    async with browser(orc, token=None) as client:
        page = await client.get("/")
        assert page.status_code == 200
        assert "sign out" not in page.text
        assert (await client.post("/ui/sync/catalog", headers=ACT)).status_code == 202


async def test_the_dashboard_stays_out_of_the_api_document(orc: Orchestrator) -> None:
    async with browser(orc) as client:
        paths = (await client.get("/openapi.json")).json()["paths"]
    assert not [path for path in paths if path == "/" or path.startswith(("/ui", "/login"))]


# --- actions -----------------------------------------------------------------


async def test_sync_now_queues_every_target_of_a_source(
    signed_in: httpx.AsyncClient, orc: Orchestrator
) -> None:
    response = await signed_in.post("/ui/sync/profile", headers=ACT)
    assert response.status_code == 202
    runs = await orc.store.list_runs(source="profile")
    assert sorted(run.target or "" for run in runs) == ["dot:1", "dot:2"]

    sources = (await signed_in.get("/ui/sources")).text
    row = re.search(r'<tr data-source="profile">.*?</tr>', sources, re.S)
    assert row is not None and "2 / 0" in row.group(0)  # queued / running


async def test_the_processes_panel_shows_each_process_and_the_scheduler(
    signed_in: httpx.AsyncClient, orc: Orchestrator
) -> None:
    empty = (await signed_in.get("/ui/workers")).text
    assert "no process runs or schedules syncs" in empty
    orc.start(schedule=True)
    await until(lambda: orc.presence is not None and orc.presence.term is not None, "election")
    assert orc.presence is not None
    panel = (await signed_in.get("/ui/workers")).text
    row = re.search(r'<tr data-worker="([^"]+)">.*?</tr>', panel, re.S)
    assert row is not None and row.group(1) == orc.presence.worker_id
    assert "scheduler" in row.group(0) and "live" in row.group(0)
    assert f"0 / {orc.config.engine.workers}" in row.group(0)  # running / capacity
    page = (await signed_in.get("/")).text
    assert orc.presence.worker_id in page


async def test_actions_need_the_dashboard_header(
    signed_in: httpx.AsyncClient, orc: Orchestrator
) -> None:
    """A cross-site form carries the cookie at most, never this header."""
    assert (await signed_in.post("/ui/sync/profile")).status_code == 403
    assert (await signed_in.post("/ui/targets/dot:1/sync")).status_code == 403
    assert await orc.store.list_runs() == []


async def test_sync_now_refuses_unknown_names(
    signed_in: httpx.AsyncClient, orc: Orchestrator
) -> None:
    assert (await signed_in.post("/ui/sync/nope", headers=ACT)).status_code == 404
    assert (await signed_in.post("/ui/targets/dot:9/sync", headers=ACT)).status_code == 404
    assert await orc.store.list_runs() == []


async def test_sync_one_target_queues_its_per_target_sources(
    signed_in: httpx.AsyncClient, orc: Orchestrator
) -> None:
    assert (await signed_in.post("/ui/targets/dot:1/sync", headers=ACT)).status_code == 202
    runs = await orc.store.list_runs()
    assert sorted((run.source, run.target) for run in runs) == [
        ("profile", "dot:1"),
        ("scores", "dot:1"),
    ]


# --- the grid ------------------------------------------------------------------


async def test_grid_cells_follow_the_runs(signed_in: httpx.AsyncClient, orc: Orchestrator) -> None:
    html = (await signed_in.get("/ui/grid")).text
    assert cell(html, "dot:1", "profile") == "never"
    assert "catalog" not in html  # not per target: no column

    await orc.request(["profile"], targets=["dot:1", "dot:2"])
    html = (await signed_in.get("/ui/grid")).text
    assert cell(html, "dot:1", "profile") == "queued"
    assert cell(html, "dot:1", "scores") == "never"

    orc.start(schedule=False)
    await within(orc.wait_for([run.id for run in await orc.store.list_runs()]))
    html = (await signed_in.get("/ui/grid")).text
    assert cell(html, "dot:1", "profile") == "succeeded"
    assert cell(html, "dot:2", "profile") == "failed"
    assert "profile service refused dot:2" in html  # the error on hover


async def test_grid_pages_and_searches_ten_thousand_targets(
    signed_in: httpx.AsyncClient, orc: Orchestrator
) -> None:
    fleet = [Target(f"dot:{n:05d}", f"Carrier {n}") for n in range(10_000)]
    await orc.store.put_targets(fleet, orc.clock.now())
    total = 10_002  # with dot:1 and dot:2

    first = (await signed_in.get("/ui/grid")).text
    assert f"{total} targets · page 1 of 201" in first
    assert first.count('class="target-link"') == 50
    assert 'data-target="dot:00000"' in first and 'data-target="dot:00050"' not in first

    last = (await signed_in.get("/ui/grid", params={"page": 201})).text
    assert last.count('class="target-link"') == 2
    assert 'data-target="dot:1"' in last and 'data-target="dot:2"' in last

    found = (await signed_in.get("/ui/grid", params={"q": "carrier 999"})).text
    keys = re.findall(r'class="target-link" data-target="([^"]+)"', found)
    assert keys == ["dot:00999", *(f"dot:0999{n}" for n in range(10))]
    assert "11 targets · page 1 of 1" in found

    none = (await signed_in.get("/ui/grid", params={"q": "100%_"})).text
    assert "no target matches" in none  # % and _ are literal, not wildcards


async def test_grid_refuses_bad_paging(signed_in: httpx.AsyncClient) -> None:
    assert (await signed_in.get("/ui/grid", params={"page": 0})).status_code == 422
    assert (await signed_in.get("/ui/grid", params={"q": "x" * 201})).status_code == 422


# --- the timeline and a target's panel ---------------------------------------------


async def test_timeline_draws_recent_runs_in_lanes(
    signed_in: httpx.AsyncClient, orc: Orchestrator, clock: FakeClock
) -> None:
    queued = await orc.request(["profile", "scores"], targets=["dot:1", "dot:2"])
    orc.start(schedule=False)
    await within(orc.wait_for([answer.run.id for answer in queued]))

    by_group = (await signed_in.get("/ui/timeline", params={"lanes": "group"})).text
    lanes = re.findall(r'data-lane="([^"]+)" data-rows="(\d+)"', by_group)
    assert dict(lanes).keys() == {"crm", "scores (own)"}
    assert by_group.count('<rect class="bar ') == 4
    assert "priority 2" in by_group

    by_api = (await signed_in.get("/ui/timeline", params={"lanes": "api"})).text
    assert {name for name, _ in re.findall(r'data-lane="([^"]+)" data-rows="(\d+)"', by_api)} == {
        "qcmobile",
        "profile (own)",
    }

    await clock.advance(6 * 60)  # out of the default 5-minute window
    later = (await signed_in.get("/ui/timeline")).text
    assert "No run started in this window." in later
    wider = (await signed_in.get("/ui/timeline", params={"minutes": 15})).text
    assert wider.count('<rect class="bar ') == 4


async def test_target_panel_shows_status_basic_history_and_violations(
    signed_in: httpx.AsyncClient, orc: Orchestrator, clock: FakeClock
) -> None:
    store = orc.store
    basics = RecordScope(kind="basic", target="dot:1", source="scores", run_id=1)
    for percentile in (40.0, 55.0, 71.0):  # three states of one BASIC over time
        data = {
            "basicsShortDesc": "Unsafe Driving",
            "basicsPercentile_num": percentile,
            "basicsViolationThreshold_num": 65.0,
        }
        await store.upsert_records(basics, [(f"ud|{percentile}", data)], clock.now())
        await clock.advance(30 * 86_400)
    hidden = {"basicsShortDesc": "Driver Fitness", "basicsPercentile_num": None}
    await store.upsert_records(basics, [("df|1", hidden)], clock.now())
    violations = RecordScope(kind="violation", target="dot:1", source="violations", run_id=1)
    rows = [
        (
            f"v{n}",
            {"insp_date_iso": f"2025-01-{n:02d}", "viol_code": f"C{n}", "oos_indicator": "false"},
        )
        for n in range(1, 13)
    ]
    rows[11][1]["oos_indicator"] = "true"
    await store.upsert_records(violations, rows, clock.now())

    html = (await signed_in.get("/ui/targets/dot:1")).text
    unsafe = re.search(
        r'<figure class="chart alert" data-basic="Unsafe Driving">.*?</figure>', html, re.S
    )
    assert unsafe is not None  # 71 >= 65: flagged
    assert unsafe.group(0).count('<circle class="point"') == 3
    assert "71%" in unsafe.group(0)
    fitness = re.search(r'data-basic="Driver Fitness">.*?</figure>', html, re.S)
    assert fitness is not None and "not public" in fitness.group(0)
    assert "(10 of 12)" in html
    dates = re.findall(r"<td>(2025-01-\d\d)</td>", html)
    assert dates == [f"2025-01-{n:02d}" for n in range(12, 2, -1)]  # newest first
    assert '<tr class="oos">' in html

    assert (await signed_in.get("/ui/targets/dot:9")).status_code == 404


def test_relative_times_read_at_a_glance() -> None:
    clock = FakeClock()
    now = clock.now()
    assert relative(None, now) == "-"
    assert relative(now - timedelta(seconds=12), now) == "12s ago"
    assert relative(now + timedelta(minutes=3, seconds=5), now) == "in 3m"
    assert relative(now - timedelta(hours=26), now) == "1d ago"
    assert relative("2000-01-01T00:00:00Z", now).endswith("d ago")


async def test_alerts_show_newest_first_and_on_their_target(
    signed_in: httpx.AsyncClient, orc: Orchestrator, clock: FakeClock
) -> None:
    empty = (await signed_in.get("/ui/alerts")).text
    assert "Nothing yet" in empty
    for number, target in enumerate(("dot:1", "dot:2", "dot:1")):
        orc.bus.publish(
            AlertRaised(
                at=clock.now(),
                source="violations",
                target=target,
                alert="violation.new",
                message=f"carrier {target}: new violation V{number}",
            )
        )
        progress = RunProgress(at=clock.now(), run=RunRef("1", "violations"), done=1, total=None)
        for _ in range(600):  # run events must not push alerts out of their window
            orc.bus.publish(progress)
    html = (await signed_in.get("/ui/alerts")).text
    assert re.findall(r"new violation (V\d)", html) == ["V2", "V1", "V0"]
    panel = (await signed_in.get("/ui/targets/dot:1")).text
    assert re.findall(r"new violation (V\d)", panel) == ["V2", "V0"]
    async with browser(orc) as stranger:
        assert (await stranger.get("/ui/alerts")).status_code == 401


async def test_record_changes_join_the_feed_in_one_line(
    signed_in: httpx.AsyncClient, orc: Orchestrator, clock: FakeClock
) -> None:
    orc.bus.publish(
        RecordsChanged(
            at=clock.now(),
            source="orders",
            target=None,
            kind="order",
            created=2,
            updated=0,
            unchanged=5,
            deleted=1,
            keys=("7", "8"),
        )
    )
    html = (await signed_in.get("/ui/alerts")).text
    assert "orders: order 2 created, 1 deleted" in html
