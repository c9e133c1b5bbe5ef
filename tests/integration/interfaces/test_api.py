"""The HTTP API over an open orchestrator: shapes, status codes, auth and errors.

Requests go through ``httpx.ASGITransport`` (no socket). POST routes only queue,
so most tests never start the loop; where runs must end, the loop runs and the
test waits on the orchestrator (bounded by a real-time safety net), never sleeping.

The orchestrator runs on each database of ``database_url`` (SQLite, PostgreSQL):
the answers must not depend on which. Tests decided before any handler reads the
database (auth, routing, the OpenAPI document) run on SQLite only (:data:`SQLITE_ONLY`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from api_helpers import AUTH, CATALOG_SIZE, SQLITE_ONLY, TOKEN, setup
from engine_helpers import opened, until, within
from synchestra.connectors.context import SyncContext
from synchestra.core.clock import FakeClock
from synchestra.core.errors import InputError
from synchestra.core.models import Target
from synchestra.engine.orchestrator import Orchestrator
from synchestra.interfaces.http import create_app
from synchestra.store.records import MAX_ID, encode_cursor


@pytest.fixture
async def orc(database_url: str, clock: FakeClock) -> AsyncIterator[Orchestrator]:
    async with opened(database_url, clock, setup=setup) as orchestrator:
        await orchestrator.add_targets([Target("dot:1", "Alpha"), Target("dot:2", "Beta")])
        yield orchestrator


def client_for(orc: Orchestrator, token: str | None = TOKEN) -> httpx.AsyncClient:
    app = create_app(orc, token=token)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1", headers=AUTH
    )


@pytest.fixture
async def api(orc: Orchestrator) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(orc) as client:
        yield client


def is_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "detail"}
    assert isinstance(body["error"], str)
    assert "Traceback" not in response.text
    assert TOKEN not in response.text
    return body


async def run_all(orc: Orchestrator, body: dict[str, Any]) -> list[dict[str, Any]]:
    """Queue through the API, run the loop, wait until those runs end."""
    async with client_for(orc) as api:
        queued = (await api.post("/api/sync", json=body)).json()["runs"]
    orc.start(schedule=False)
    await within(orc.wait_for([int(run["id"]) for run in queued]))
    return list(queued)


# --- auth --------------------------------------------------------------------


AUTHED = [
    ("GET", "/api/sync/status"),
    ("POST", "/api/sync/profile"),
    ("POST", "/api/sync/profile/full"),
    ("POST", "/api/sync"),
    ("POST", "/api/targets/dot:1/sync"),
    ("GET", "/api/targets"),
    ("GET", "/api/targets/dot:1"),
    ("POST", "/api/targets"),
    ("DELETE", "/api/targets/dot:1"),
    ("GET", "/api/targets/dot:1/records/profile"),
    ("GET", "/api/records/profile"),
    ("GET", "/api/runs"),
    ("GET", "/api/runs/1"),
    ("POST", "/api/runs/1/cancel"),
]


@SQLITE_ONLY
@pytest.mark.parametrize(("method", "path"), AUTHED)
async def test_every_route_but_health_needs_the_token(
    orc: Orchestrator, method: str, path: str
) -> None:
    async with client_for(orc) as api:
        missing = await api.request(method, path, headers={"Authorization": ""})
        assert is_error(missing, 401)["error"] == "missing bearer token"
        assert missing.headers["www-authenticate"].startswith("Bearer")
        wrong = await api.request(method, path, headers={"Authorization": "Bearer nope"})
        assert is_error(wrong, 403)["error"] == "wrong bearer token"
        basic = await api.request(method, path, headers={"Authorization": f"Basic {TOKEN}"})
        is_error(basic, 401)
    assert await orc.store.get_target("dot:1") is not None  # nothing changed
    assert await orc.store.list_runs() == []


async def test_health_needs_no_token_and_no_token_means_no_auth(orc: Orchestrator) -> None:
    async with client_for(orc) as api:
        response = await api.get("/api/health", headers={"Authorization": ""})
    assert response.status_code == 200
    body = response.json()
    # No process runs or schedules anything yet: the sources are fine, the whole is not.
    assert body["status"] == "degraded" and body["all_healthy"] is True
    assert body["workers"] == {"live": 0, "scheduler": None}
    assert set(body["sources"]) == {"catalog", "profile"}
    assert set(body["sources"]["profile"]) == {
        "healthy",
        "state",
        "last_success",
        "consecutive_failures",
        "stale",
    }
    async with client_for(orc, token=None) as open_api:
        listed = await open_api.get("/api/targets", headers={"Authorization": ""})
    assert listed.status_code == 200


async def test_health_is_ok_with_a_live_worker_and_scheduler(orc: Orchestrator) -> None:
    orc.start(schedule=True)
    await until(lambda: orc.presence is not None and orc.presence.term is not None, "election")
    async with client_for(orc) as api:
        body = (await api.get("/api/health")).json()
        listed = (await api.get("/api/workers")).json()["workers"]
    assert orc.presence is not None
    me = orc.presence.worker_id
    assert body["status"] == "ok"
    assert body["workers"] == {"live": 1, "scheduler": me}
    (worker,) = listed
    assert (worker["id"], worker["live"], worker["scheduler"]) == (me, True, True)
    assert sorted(worker["roles"]) == ["scheduler", "worker"]
    assert worker["capacity"] == orc.config.engine.workers


async def test_health_is_503_when_down(database_url: str, clock: FakeClock) -> None:
    def failing(orc: Orchestrator) -> None:
        @orc.source("broken")
        async def broken(ctx: SyncContext) -> None:
            raise ValueError("boom")

    async with opened(database_url, clock, setup=failing) as orc:
        for _ in range(3):
            await run_all(orc, {"sources": ["broken"]})
        async with client_for(orc) as api:
            response = await api.get("/api/health")
    assert response.status_code == 503
    assert response.json()["status"] == "down"
    assert response.json()["sources"]["broken"]["consecutive_failures"] == 3


# --- sync --------------------------------------------------------------------


async def test_sync_source_queues_and_a_second_request_is_deduplicated(
    api: httpx.AsyncClient,
) -> None:
    first = await api.post("/api/sync/profile", json={"targets": ["dot:1"], "mode": "full"})
    assert first.status_code == 202
    (run,) = first.json()["runs"]
    assert set(run) == {"id", "source", "target", "state", "deduplicated"}
    assert isinstance(run["id"], str)
    assert run | {"id": ""} == {
        "id": "",
        "source": "profile",
        "target": "dot:1",
        "state": "queued",
        "deduplicated": False,
    }
    again = await api.post("/api/sync/profile", json={"targets": ["dot:1"], "mode": "full"})
    assert again.status_code == 202
    assert again.json()["runs"] == [run | {"deduplicated": True}]


async def test_sync_source_without_body_covers_every_target(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/sync/profile")
    assert response.status_code == 202
    assert sorted(run["target"] for run in response.json()["runs"]) == ["dot:1", "dot:2"]
    catalog = await api.post("/api/sync/catalog", json={"priority": 9})
    assert [run["target"] for run in catalog.json()["runs"]] == [None]
    (listed,) = (await api.get("/api/runs", params={"source": "catalog"})).json()["runs"]
    assert listed["priority"] == 9


async def test_full_sync_queues_mode_full(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/sync/catalog/full")
    assert response.status_code == 202
    (run,) = response.json()["runs"]
    detail = (await api.get(f"/api/runs/{run['id']}")).json()
    assert detail["mode"] == "full"
    refused = await api.post("/api/sync/catalog/full", json={"mode": "incremental"})
    assert is_error(refused, 422)["detail"][0]["field"] == "mode"


async def test_sync_many(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/sync", json={})
    assert response.status_code == 202
    pairs = sorted((run["source"], run["target"] or "") for run in response.json()["runs"])
    assert pairs == [("catalog", ""), ("profile", "dot:1"), ("profile", "dot:2")]
    some = await api.post("/api/sync", json={"sources": ["profile"], "targets": ["dot:2"]})
    assert [(r["target"], r["deduplicated"]) for r in some.json()["runs"]] == [("dot:2", True)]


async def test_sync_errors(api: httpx.AsyncClient, orc: Orchestrator) -> None:
    unknown = is_error(await api.post("/api/sync/nope"), 404)
    assert "nope" in unknown["error"]
    is_error(await api.post("/api/sync", json={"sources": ["profile", "nope"]}), 404)
    bad_mode = is_error(await api.post("/api/sync/profile", json={"mode": "sometimes"}), 422)
    assert bad_mode["detail"][0]["field"] == "mode"
    assert "mode" in bad_mode["error"]
    extra = is_error(await api.post("/api/sync/profile", json={"target": ["dot:1"]}), 422)
    assert extra["detail"][0]["field"] == "target"
    wrong_type = is_error(await api.post("/api/sync", json={"priority": "high"}), 422)
    assert wrong_type["detail"][0]["field"] == "priority"
    bad_key = is_error(await api.post("/api/sync/profile", json={"targets": ["bad key"]}), 422)
    assert "invalid target key" in bad_key["error"]
    missing = is_error(await api.post("/api/sync/profile", json={"targets": ["dot:9"]}), 422)
    assert "dot:9" in missing["error"]
    not_json = await api.post(
        "/api/sync/profile", content=b"{", headers={"Content-Type": "application/json"}
    )
    is_error(not_json, 422)
    assert await orc.store.list_runs() == []  # nothing was queued


async def test_target_sync(api: httpx.AsyncClient, orc: Orchestrator, clock: FakeClock) -> None:
    response = await api.post("/api/targets/dot:1/sync")
    assert response.status_code == 202
    assert [(r["source"], r["target"]) for r in response.json()["runs"]] == [("profile", "dot:1")]
    is_error(await api.post("/api/targets/dot:9/sync"), 404)
    is_error(await api.post("/api/targets/dot:1/sync", json={"sources": ["nope"]}), 404)
    is_error(await api.post("/api/targets/dot:1/sync", json={"sources": ["catalog"]}), 422)
    bad_age = is_error(await api.post("/api/targets/dot:1/sync", json={"max_age": "soon"}), 422)
    assert "max_age" in bad_age["error"]
    assert "invalid duration 'soon'" in bad_age["detail"][0]["message"]

    await run_all(orc, {"sources": ["profile"]})
    fresh = await api.post("/api/targets/dot:1/sync", json={"max_age": "6h"})
    assert fresh.status_code == 202
    assert fresh.json() == {"runs": []}
    await clock.advance(7 * 3600)
    stale = await api.post("/api/targets/dot:1/sync", json={"max_age": "6h"})
    assert [r["source"] for r in stale.json()["runs"]] == ["profile"]


async def test_sync_status(api: httpx.AsyncClient) -> None:
    await api.post("/api/sync/catalog")
    response = await api.get("/api/sync/status")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"sources", "health", "eta"}
    assert body["eta"]["runs_left"] == 1  # the queued catalog run
    by_name = {source["source"]: source for source in body["sources"]}
    assert set(by_name["catalog"]) == {
        "source",
        "status",
        "started_at",
        "completed_at",
        "error",
        "next_run_at",
        "queued",
        "running",
    }
    assert by_name["catalog"]["status"] == "queued"
    assert by_name["catalog"]["queued"] == 1
    assert by_name["profile"]["status"] == "idle"
    # A run is queued and no live process may run it.
    assert body["health"]["status"] == "degraded"
    assert body["health"]["all_healthy"] is True


# --- targets -----------------------------------------------------------------


async def test_targets_add_list_page_get_and_remove(api: httpx.AsyncClient) -> None:
    added = await api.post(
        "/api/targets", json={"key": "dot:3", "name": "Gamma", "attrs": {"state": "TX"}}
    )
    assert added.status_code == 201
    assert added.json() == {"key": "dot:3", "name": "Gamma", "attrs": {"state": "TX"}}

    first = (await api.get("/api/targets", params={"limit": 2})).json()
    assert [t["key"] for t in first["targets"]] == ["dot:1", "dot:2"]
    assert first["next_cursor"] == "dot:2"
    rest = (await api.get("/api/targets", params={"limit": 2, "cursor": "dot:2"})).json()
    assert rest == {
        "targets": [{"key": "dot:3", "name": "Gamma", "attrs": {"state": "TX"}}],
        "next_cursor": None,
    }
    is_error(await api.get("/api/targets", params={"limit": 0}), 422)

    status = await api.get("/api/targets/dot:3")
    assert status.status_code == 200
    assert status.json() == {
        "target": "dot:3",
        "name": "Gamma",
        "last_run": None,
        "success": False,
        "errors": [],
        "sources": {
            "profile": {
                "state": "idle",
                "last_attempt": None,
                "last_success": None,
                "error": None,
            }
        },
    }
    is_error(await api.get("/api/targets/dot:9"), 404)

    removed = await api.delete("/api/targets/dot:3")
    assert removed.status_code == 204
    assert removed.content == b""
    is_error(await api.delete("/api/targets/dot:3"), 404)
    is_error(await api.get("/api/targets/dot:3"), 404)


async def test_targets_listing_pages_through_many_targets(
    api: httpx.AsyncClient, orc: Orchestrator
) -> None:
    more = [
        Target(f"dot:{i:03}", f"Carrier {i}", {"city": "Zürich ✓", "n": str(i)} if i % 2 else {})
        for i in range(3, 233)
    ]
    await orc.add_targets(more)
    everyone = [Target("dot:1", "Alpha"), Target("dot:2", "Beta"), *more]
    expected = [
        {"key": t.key, "name": t.name, "attrs": dict(t.attrs)}
        for t in sorted(everyone, key=lambda target: target.key)
    ]
    listed: list[dict[str, Any]] = []
    cursors: list[str | None] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 100} | ({"cursor": cursor} if cursor else {})
        response = await api.get("/api/targets", params=params)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        page = response.json()
        assert set(page) == {"targets", "next_cursor"}
        listed += page["targets"]
        cursor = page["next_cursor"]
        cursors.append(cursor)
        if cursor is None:
            break
    assert listed == expected
    assert cursors == [expected[99]["key"], expected[199]["key"], None]
    exact = (await api.get("/api/targets", params={"limit": len(expected)})).json()
    assert exact == {"targets": expected, "next_cursor": None}  # no empty page after it


async def test_text_postgresql_cannot_hold_is_answered_alike_on_both_databases(
    api: httpx.AsyncClient, orc: Orchestrator
) -> None:
    """NUL characters and lone surrogates: PostgreSQL refuses them, SQLite would not."""
    await api.post("/api/sync/profile")
    after = (await api.get("/api/targets", params={"cursor": "dot:1\x00x"})).json()
    assert [t["key"] for t in after["targets"]] == ["dot:2"]
    is_error(await api.get("/api/targets/dot:1%00x"), 404)
    is_error(await api.post("/api/targets/dot:1%00x/sync"), 404)
    is_error(await api.get("/api/targets/dot:1%00x/records/profile"), 404)
    is_error(await api.delete("/api/targets/dot:1%00x"), 404)
    nothing: dict[str, Any] = {"records": [], "next_cursor": None}
    assert (await api.get("/api/records/pro%00file")).json() == nothing
    assert (await api.get("/api/records/profile", params={"target": "dot:1\x00"})).json() == nothing
    for name in ("source", "target"):
        runs = await api.get("/api/runs", params={name: "\x00"})
        assert runs.status_code == 200 and runs.json() == {"runs": []}

    bodies: list[tuple[str, dict[str, Any]]] = [
        ("name", {"key": "dot:5", "name": "a\x00b"}),
        ("attrs", {"key": "dot:5", "attrs": {"state": "T\x00X"}}),
        ("attrs", {"key": "dot:5", "attrs": {"st\x00ate": "TX"}}),
    ]
    for field, body in bodies:
        refused = is_error(await api.post("/api/targets", json=body), 422)
        assert [item["field"] for item in refused["detail"]] == [field]
    surrogate = b'{"key": "dot:5", "name": "\\ud800"}'  # valid JSON, not storable text
    headers = {"Content-Type": "application/json"}
    refused = is_error(await api.post("/api/targets", content=surrogate, headers=headers), 422)
    assert refused["detail"][0]["field"] == "name"
    assert await orc.store.get_target("dot:5") is None


async def test_the_store_keeps_target_attrs_text_to_text(orc: Orchestrator) -> None:
    """What the listing serves as ``attrs: {string: string}``, whoever adds the target."""
    for wrong in (
        Target("dot:5", attrs={"employees": 12}),  # type: ignore[dict-item]
        Target("dot:5", name="a\x00b"),
        Target("dot:5", attrs={"city": "\ud800"}),
    ):
        with pytest.raises(InputError, match="dot:5"):
            await orc.add_targets([Target("dot:6"), wrong])
    assert await orc.store.get_target("dot:5") is None
    assert await orc.store.get_target("dot:6") is None  # refused before anything is written


async def test_a_record_key_postgresql_cannot_hold_fails_the_run_alike(
    database_url: str, clock: FakeClock
) -> None:
    def nul_key(orc: Orchestrator) -> None:
        @orc.source("odd")
        async def odd(ctx: SyncContext) -> None:
            await ctx.upsert("item", [{"id": "fine"}, {"id": "bad\x00key"}], key="id")

    async with opened(database_url, clock, setup=nul_key) as orc:
        (run,) = await run_all(orc, {"sources": ["odd"]})
        async with client_for(orc) as api:
            detail = (await api.get(f"/api/runs/{run['id']}")).json()
            listed = (await api.get("/api/records/item")).json()
    assert detail["state"] == "failed"
    assert "invalid record kind or key 'bad\\x00key'" in detail["error"]
    assert listed == {"records": [], "next_cursor": None}  # refused before any was written


async def test_out_of_range_ids_cursors_and_instants_are_refused(api: httpx.AsyncClient) -> None:
    (run,) = (await api.post("/api/sync/catalog")).json()["runs"]
    assert run["id"] == "1"
    for digits in ("\u00b9", "\u0661", "\uff11"):  # superscript, Arabic-Indic and fullwidth 1
        is_error(await api.get(f"/api/runs/{digits}"), 404)
        is_error(await api.post(f"/api/runs/{digits}/cancel"), 404)
    beyond = is_error(
        await api.get("/api/records/item", params={"cursor": encode_cursor(MAX_ID + 1)}), 422
    )
    assert "invalid cursor" in beyond["error"]
    last = await api.get("/api/records/item", params={"cursor": encode_cursor(MAX_ID)})
    assert last.json() == {"records": [], "next_cursor": None}
    for instant in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"):
        refused = is_error(
            await api.get("/api/records/item", params={"changed_since": instant}), 422
        )
        assert refused["detail"][0]["field"] == "changed_since"


async def test_add_target_refuses_bad_input(api: httpx.AsyncClient, orc: Orchestrator) -> None:
    bad = is_error(await api.post("/api/targets", json={"key": "no spaces"}), 422)
    assert "invalid target key" in bad["error"]
    missing = is_error(await api.post("/api/targets", json={"name": "x"}), 422)
    assert missing["detail"][0]["field"] == "key"
    extra = is_error(await api.post("/api/targets", json={"key": "dot:5", "colour": "red"}), 422)
    assert extra["detail"][0]["field"] == "colour"
    assert await orc.store.get_target("dot:5") is None


async def test_target_status_after_a_run(api: httpx.AsyncClient, orc: Orchestrator) -> None:
    await run_all(orc, {"sources": ["profile"], "targets": ["dot:1"]})
    body = (await api.get("/api/targets/dot:1")).json()
    assert body["success"] is True
    assert body["sources"]["profile"]["state"] == "succeeded"
    assert body["last_run"].endswith("Z")


# --- records -----------------------------------------------------------------


async def test_records_paging_and_filters(api: httpx.AsyncClient, orc: Orchestrator) -> None:
    await run_all(orc, {})

    keys: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        response = await api.get("/api/records/item", params=params)
        assert response.status_code == 200
        page = response.json()
        keys += [record["key"] for record in page["records"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert keys == [str(i) for i in range(CATALOG_SIZE)]
    assert pages == 3

    (record,) = (await api.get("/api/records/item", params={"limit": 1})).json()["records"]
    assert set(record) == {
        "kind",
        "key",
        "target",
        "source",
        "data",
        "first_seen",
        "last_seen",
        "changed_at",
        "deleted_at",
    }
    assert record["target"] is None and record["source"] == "catalog"
    assert record["data"] == {"id": 0}

    default = (await api.get("/api/records/item")).json()
    assert len(default["records"]) == CATALOG_SIZE and default["next_cursor"] is None

    mine = (await api.get("/api/targets/dot:2/records/profile")).json()
    assert [(r["key"], r["target"]) for r in mine["records"]] == [("dot:2", "dot:2")]
    filtered = (await api.get("/api/records/profile", params={"target": "dot:1"})).json()
    assert [r["key"] for r in filtered["records"]] == ["dot:1"]
    both = (await api.get("/api/records/profile", params={"include_deleted": "true"})).json()
    assert len(both["records"]) == 2

    later = (
        await api.get("/api/records/item", params={"changed_since": record["changed_at"]})
    ).json()
    assert later["records"] == []
    earlier = (
        await api.get("/api/records/item", params={"changed_since": "2000-01-01T00:00:00Z"})
    ).json()
    assert len(earlier["records"]) == CATALOG_SIZE

    is_error(await api.get("/api/targets/dot:9/records/profile"), 404)
    bad_time = is_error(await api.get("/api/records/item", params={"changed_since": "x"}), 422)
    assert bad_time["detail"][0]["field"] == "changed_since"
    naive = {"changed_since": "2000-01-01T00:00:00"}  # no time zone: refused, not guessed
    assert (
        "time zone"
        in is_error(await api.get("/api/records/item", params=naive), 422)["detail"][0]["message"]
    )
    is_error(await api.get("/api/records/item", params={"cursor": "garbage!"}), 422)
    is_error(await api.get("/api/records/item", params={"limit": "many"}), 422)


# --- runs --------------------------------------------------------------------


async def test_runs_list_get_and_cancel(api: httpx.AsyncClient) -> None:
    queued = (await api.post("/api/sync", json={})).json()["runs"]
    listing = await api.get("/api/runs")
    assert listing.status_code == 200
    runs = listing.json()["runs"]
    assert len(runs) == 3
    assert set(runs[0]) == {
        "id",
        "source",
        "target",
        "state",
        "mode",
        "priority",
        "queued_at",
        "started_at",
        "finished_at",
        "attempts",
        "error",
        "result",
        "worker",
    }
    assert runs[0]["worker"] is None  # queued: no process has it
    filtered = await api.get("/api/runs", params={"source": "profile", "target": "dot:1"})
    assert [(r["source"], r["target"]) for r in filtered.json()["runs"]] == [("profile", "dot:1")]
    limited = await api.get("/api/runs", params={"state": "queued", "limit": 1})
    assert len(limited.json()["runs"]) == 1
    is_error(await api.get("/api/runs", params={"state": "sleeping"}), 422)

    run_id = queued[0]["id"]
    got = await api.get(f"/api/runs/{run_id}")
    assert got.status_code == 200 and got.json()["id"] == run_id

    cancelled = await api.post(f"/api/runs/{run_id}/cancel")
    assert cancelled.status_code == 202
    assert cancelled.json()["state"] == "cancelled"
    assert (await api.get(f"/api/runs/{run_id}")).json()["state"] == "cancelled"
    states = await api.get("/api/runs", params={"state": "cancelled"})
    assert [r["id"] for r in states.json()["runs"]] == [run_id]

    for missing in ("999", "abc", "-1", "1.5"):
        is_error(await api.get(f"/api/runs/{missing}"), 404)
        is_error(await api.post(f"/api/runs/{missing}/cancel"), 404)


# --- errors and OpenAPI ------------------------------------------------------


@SQLITE_ONLY
async def test_unknown_route_and_method_are_json_errors(api: httpx.AsyncClient) -> None:
    assert is_error(await api.get("/api/nothing"), 404)["error"] == "not found"
    assert is_error(await api.put("/api/runs"), 405)["error"] == "method not allowed"


@SQLITE_ONLY
async def test_openapi_describes_every_route(api: httpx.AsyncClient) -> None:
    document = (await api.get("/openapi.json")).json()
    paths = document["paths"]
    for method, path in AUTHED:
        template = (
            path.replace("dot:1", "{key}").replace("/1", "/{run_id}").replace("profile", "{kind}")
        )
        if template.startswith("/api/sync/{kind}"):
            template = template.replace("{kind}", "{source}")
        operation = paths[template][method.lower()]
        assert {"401", "403"} <= set(operation["responses"]), template
        assert operation["security"] == [{"bearer": []}], template
    assert "security" not in paths["/api/health"]["get"]
    assert set(paths["/api/health"]["get"]["responses"]) == {"200", "503"}
    assert "202" in paths["/api/sync/{source}"]["post"]["responses"]
    assert "404" in paths["/api/sync/{source}"]["post"]["responses"]
    assert "201" in paths["/api/targets"]["post"]["responses"]
    assert "204" in paths["/api/targets/{key}"]["delete"]["responses"]
    error_schema = paths["/api/sync/{source}"]["post"]["responses"]["422"]
    assert error_schema["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    # The listing returns its JSON itself (no response-model pass): still documented.
    listing = paths["/api/targets"]["get"]["responses"]["200"]["content"]["application/json"]
    assert listing["schema"]["$ref"].endswith("/TargetPage")
    schemas = document["components"]["schemas"]
    assert schemas["TargetPage"]["required"] == ["targets", "next_cursor"]
    assert schemas["TargetOut"]["required"] == ["key", "name", "attrs"]
    assert schemas["TargetOut"]["properties"]["attrs"]["additionalProperties"] == {"type": "string"}
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


@SQLITE_ONLY
async def test_an_unexpected_error_is_a_json_500_without_details(
    orc: Orchestrator, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(**kwargs: Any) -> None:
        raise RuntimeError(f"database password {TOKEN}")

    monkeypatch.setattr(orc.store, "list_runs", broken)
    transport = httpx.ASGITransport(app=create_app(orc, token=TOKEN), raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://127.0.0.1", headers=AUTH
    ) as api:
        response = await api.get("/api/runs")
    assert is_error(response, 500) == {"error": "internal error", "detail": None}
