"""``http.collection`` against the simulated ERP (and a scripted server for provider bugs).

Every test that syncs runs the orchestrator on SQLite and PostgreSQL (the
``database_url`` fixture) with a FakeClock; nothing sleeps. The ERP is the
real simulator on loopback: its collections are sized per test and mutated
between runs through ``sim.erp``; ``sim.fail_next(..., after=N)`` fails one
chosen page. What the simulator cannot do wrong on purpose (links to another
host, repeated cursors) comes from an ``httpx.MockTransport`` on 127.0.0.1:9,
where nothing listens.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from engine_helpers import cfg, opened, within
from synchestra.config import Config
from synchestra.connectors import collection
from synchestra.connectors.collection import format_instant, parse_instant
from synchestra.connectors.collection.spec import Paging, parse_spec
from synchestra.core.bus import Subscription
from synchestra.core.clock import FakeClock
from synchestra.core.errors import ConfigError
from synchestra.core.events import Event
from synchestra.core.models import Mode, Run, RunState, Target
from synchestra.core.records import RecordQuery
from synchestra.engine.orchestrator import Orchestrator
from synchestra.engine.sources import spec_from_config
from synchestra.simulator import ErpSizes, SimulatorConfig, run_simulator

# customers: empty; products: one page of 10; prices: exactly two full pages; orders: three
SIZES = ErpSizes(customers=0, products=7, prices=20, orders=25)
COLLECTIONS = ("customers", "products", "prices", "orders")
CURSOR = {"style": "cursor", "param": "cursor", "next": "meta.next_cursor"}
WATERMARK = {"field": "updated_at", "param": "updated_since"}
MOCK_BASE = "http://127.0.0.1:9/erp"


def style_params(style: str) -> dict[str, Any]:
    """Params reading an ERP collection 10 records a page in ``style``."""
    by_style: dict[str, dict[str, Any]] = {
        "page": {"records": "data", "paging": {"style": "page", "size": 10}},
        "offset": {"records": "data", "paging": {"style": "offset", "size": 10}},
        "cursor": {"records": "data", "paging": CURSOR, "params": {"limit": 10}},
        "link": {"paging": {"style": "link"}, "params": {"style": "link", "per_page": 10}},
    }
    return by_style[style]


def source(name: str, *, per_target: bool = False, **params: Any) -> dict[str, Any]:
    """An ``http.collection`` source mirroring ``/api/<name>`` as kind ``name``, one attempt."""
    return {
        "name": name,
        "connector": "http.collection",
        "api": "erp",
        "per_target": per_target,
        "retry": {"attempts": 1},
        "params": {"path": f"/api/{name}", "kind": name, "key": "id", **params},
    }


def erp_config(base_url: str, *sources: dict[str, Any]) -> Config:
    return cfg({"apis": [{"name": "erp", "base_url": base_url}], "sources": list(sources)})


@asynccontextmanager
async def mirroring(
    database_url: str,
    clock: FakeClock,
    config: Config,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[Orchestrator]:
    """An open orchestrator with the config's sources (as from TOML), maybe on a fake network."""

    def setup(orc: Orchestrator) -> None:
        for entry in config.sources:
            orc.add_source(spec_from_config(entry, config.timezone))
        orc.apis.transport = transport

    async with opened(database_url, clock, config, setup=setup) as orc:
        yield orc


def drain(sub: Subscription) -> list[Event]:
    events = []
    while (event := sub.get_nowait()) is not None:
        events.append(event)
    return events


async def sync_once(
    orc: Orchestrator, name: str = "orders", mode: Mode = Mode.AUTO
) -> tuple[Run, list[Event]]:
    """One run of ``name`` and the ``records.changed`` events it caused."""
    with orc.bus.subscribe(["records.changed"]) as sub:
        summary = await within(orc.sync([name], mode=mode))
        (run,) = summary.runs
        return run, drain(sub)


async def stored(orc: Orchestrator, kind: str, include_deleted: bool = False) -> dict[str, Any]:
    rows, cursor = await orc.store.list_records(
        RecordQuery(kind, include_deleted=include_deleted, limit=10_000)
    )
    assert cursor is None
    return {row.key: row for row in rows}


async def watermark(orc: Orchestrator, name: str = "orders") -> Any:
    pair = await orc.store.pair_status(name, None)
    assert pair is not None
    return pair.watermark


def counts(run: Run) -> tuple[int, int, int, int]:
    result = run.result
    return (result["created"], result["updated"], result["unchanged"], result["deleted"])


def newest(records: Sequence[Mapping[str, Any]]) -> str:
    return max(str(record["updated_at"]) for record in records)


# --- paging styles ---------------------------------------------------------------------


@pytest.mark.parametrize("style", ["page", "offset", "cursor", "link"])
async def test_each_paging_style_mirrors_empty_one_page_and_many_page_collections(
    database_url: str, clock: FakeClock, style: str
) -> None:
    # page and offset end at a short or empty page: an exactly full last page costs one more
    pages = {"customers": 1, "products": 1, "prices": 2, "orders": 3}
    if style in ("page", "offset"):
        pages["prices"] = 3
    async with run_simulator(SimulatorConfig(erp_sizes=SIZES)) as sim:
        sources = [source(name, **style_params(style)) for name in COLLECTIONS]
        config = erp_config(sim.base_url("erp"), *sources)
        async with mirroring(database_url, clock, config) as orc:
            summary = await within(orc.sync())
            runs = {run.source: run for run in summary.runs}
            for name in COLLECTIONS:
                run, expected = runs[name], sim.erp.records(name)
                assert run.state is RunState.SUCCEEDED, run.error
                assert counts(run) == (len(expected), 0, 0, 0)
                assert run.result["pages"] == pages[name], name
                assert run.result["records"] == len(expected)
                assert run.result["records_without_key"] == 0
                mirrored = await stored(orc, name)
                assert {key: row.data for key, row in mirrored.items()} == {
                    str(record["id"]): record for record in expected
                }
        assert sim.counters()["erp"].requests_by_target == {
            name: count for name, count in pages.items() if count
        }


async def test_fields_keeps_only_those_and_the_key_while_the_watermark_still_advances(
    database_url: str, clock: FakeClock
) -> None:
    async with run_simulator(SimulatorConfig(erp_sizes=SIZES)) as sim:
        orders = source(
            "orders", **style_params("cursor"), fields=["status", "total"], watermark=WATERMARK
        )
        async with mirroring(database_url, clock, erp_config(sim.base_url("erp"), orders)) as orc:
            run, _ = await sync_once(orc)
            assert run.state is RunState.SUCCEEDED, run.error
            assert {tuple(sorted(row.data)) for row in (await stored(orc, "orders")).values()} == {
                ("id", "status", "total")
            }
            assert await watermark(orc) == newest(sim.erp.records("orders"))


# --- modes, mutations, deletions, watermarks ------------------------------------------------


async def test_mutations_between_runs_give_exact_counts_and_events_in_both_modes(
    database_url: str, clock: FakeClock
) -> None:
    async with run_simulator(SimulatorConfig(erp_sizes=SIZES)) as sim:
        orders = source("orders", **style_params("cursor"), watermark=WATERMARK)
        async with mirroring(database_url, clock, erp_config(sim.base_url("erp"), orders)) as orc:
            # 1. auto with no watermark: full
            run, changed = await sync_once(orc)
            assert run.state is RunState.SUCCEEDED, run.error
            assert counts(run) == (25, 0, 0, 0)
            assert (run.result["mode"], run.result["since"]) == ("full", None)
            (event,) = changed
            assert (event.data["kind"], event.data["created"]) == ("orders", 25)
            first = sim.erp.records("orders")
            w1 = newest(first)
            assert await watermark(orc) == w1

            # 2. create two, update two, delete one; auto is now incremental
            new_ids = [sim.erp.create("orders", {"status": "new"})["id"] for _ in range(2)]
            for record_id in (3, 5):
                sim.erp.update("orders", record_id, {"status": "shipped"})
            sim.erp.delete("orders", 7)
            touched = {3, 5, 7}
            at_or_after_w1 = [r for r in first if r["updated_at"] >= w1 and r["id"] not in touched]
            await clock.advance(60)
            run, changed = await sync_once(orc)
            assert run.state is RunState.SUCCEEDED, run.error
            assert run.result["mode"] == "incremental"
            assert run.result["since"] == w1  # the watermark itself, lag 0
            assert counts(run) == (2, 2, len(at_or_after_w1), 0)  # incremental: no deletion
            (event,) = changed
            assert (event.data["created"], event.data["updated"], event.data["deleted"]) == (
                2,
                2,
                0,
            )
            assert sorted(event.data["keys"]) == sorted(str(i) for i in [*new_ids, 3, 5])
            assert await watermark(orc) == sim.erp.get("orders", 5)["updated_at"]
            assert "7" in await stored(orc, "orders")

            # 3. create one, update one, delete one; a full run sees all and deletes two
            created = sim.erp.create("orders", {"status": "new"})["id"]
            sim.erp.update("orders", 9, {"status": "cancelled"})
            sim.erp.delete("orders", 11)
            await clock.advance(60)
            run, changed = await sync_once(orc, mode=Mode.FULL)
            assert run.state is RunState.SUCCEEDED, run.error
            assert run.result["since"] is None
            assert counts(run) == (1, 1, 24, 2)
            (event,) = changed
            assert (event.data["created"], event.data["updated"], event.data["deleted"]) == (
                1,
                1,
                2,
            )
            assert sorted(event.data["keys"]) == sorted([str(created), "9"])
            now = sim.erp.records("orders")
            assert sorted(await stored(orc, "orders")) == sorted(str(r["id"]) for r in now)
            everything = await stored(orc, "orders", include_deleted=True)
            assert everything["7"].deleted_at == everything["11"].deleted_at == clock.now()
            assert await watermark(orc) == newest(now)

            # 4. nothing changed: an incremental run re-reads the newest only, unchanged
            run, changed = await sync_once(orc)
            assert counts(run) == (0, 0, 1, 0) and changed == []
            assert await watermark(orc) == newest(now)


async def test_a_record_stamped_exactly_at_the_watermark_is_not_lost(
    database_url: str, clock: FakeClock
) -> None:
    async with run_simulator(SimulatorConfig(erp_sizes=SIZES)) as sim:
        orders = source("orders", **style_params("cursor"), watermark=WATERMARK)
        async with mirroring(database_url, clock, erp_config(sim.base_url("erp"), orders)) as orc:
            await sync_once(orc, mode=Mode.FULL)
            w2 = sim.erp.update("orders", 4, {"status": "shipped"})["updated_at"]
            run, _ = await sync_once(orc, mode=Mode.INCREMENTAL)
            assert run.result["updated"] == 1
            assert await watermark(orc) == w2

            # written after that read, in the same second: the ERP's filter is "at or after"
            at_w2 = parse_instant(w2)
            assert at_w2 is not None
            late = sim.erp.update("orders", 6, {"status": "late"}, stamp=at_w2)
            assert late["updated_at"] == w2
            run, changed = await sync_once(orc, mode=Mode.INCREMENTAL)
            assert run.state is RunState.SUCCEEDED, run.error
            assert run.result["since"] == w2
            assert counts(run) == (0, 1, 1, 0)  # order 6 updated; order 4 re-read, unchanged
            assert changed[0].data["keys"] == ["6"]
            assert (await stored(orc, "orders"))["6"].data == late
            assert await watermark(orc) == w2


async def test_a_lag_asks_for_that_much_before_the_watermark(
    database_url: str, clock: FakeClock
) -> None:
    async with run_simulator(SimulatorConfig(erp_sizes=SIZES)) as sim:
        orders = source("orders", **style_params("cursor"), watermark={**WATERMARK, "lag": "5m"})
        async with mirroring(database_url, clock, erp_config(sim.base_url("erp"), orders)) as orc:
            await sync_once(orc)
            w1 = parse_instant(await watermark(orc))
            assert w1 is not None
            run, _ = await sync_once(orc)
            since = w1 - timedelta(minutes=5)
            assert run.result["since"] == format_instant(since)
            expected = sim.erp.records("orders", since)
            assert counts(run) == (0, 0, len(expected), 0)
            assert await watermark(orc) == format_instant(w1)


async def test_a_full_run_failing_on_page_three_deletes_nothing(
    database_url: str, clock: FakeClock
) -> None:
    async with run_simulator(SimulatorConfig(erp_sizes=SIZES)) as sim:
        orders = source("orders", **style_params("cursor"), watermark=WATERMARK)
        async with mirroring(database_url, clock, erp_config(sim.base_url("erp"), orders)) as orc:
            await sync_once(orc, mode=Mode.FULL)
            w1 = await watermark(orc)
            sim.erp.delete("orders", 2)
            sim.erp.update("orders", 25, {"status": "returned"})  # on page 3, never read
            sim.fail_next("erp", 1, status=503, after=2)
            await clock.advance(60)
            run, changed = await sync_once(orc, mode=Mode.FULL)
            assert run.state is RunState.FAILED
            assert run.error is not None and run.error.startswith("HTTP 503 from erp")
            assert counts(run) == (0, 0, 20, 0)  # two pages were read and kept
            assert changed == []
            assert len(await stored(orc, "orders")) == 25 and "2" in await stored(orc, "orders")
            assert await watermark(orc) == w1
            assert sim.counters()["erp"].faults == {"burst": 1}

            run, changed = await sync_once(orc, mode=Mode.FULL)
            assert run.state is RunState.SUCCEEDED, run.error
            assert counts(run) == (0, 1, 23, 1)
            assert "2" not in await stored(orc, "orders")
            assert changed[0].data["deleted"] == 1


async def test_a_failed_incremental_run_keeps_the_old_watermark(
    database_url: str, clock: FakeClock
) -> None:
    async with run_simulator(SimulatorConfig(erp_sizes=SIZES)) as sim:
        orders = source("orders", **style_params("cursor"), watermark=WATERMARK)
        async with mirroring(database_url, clock, erp_config(sim.base_url("erp"), orders)) as orc:
            await sync_once(orc, mode=Mode.FULL)
            w1 = await watermark(orc)
            holders = {r["id"] for r in sim.erp.records("orders") if r["updated_at"] == w1}
            updated = [i for i in range(1, 14) if i not in holders][:12]
            for record_id in updated:
                sim.erp.update("orders", record_id, {"status": "confirmed"})
            since_w1 = [r["id"] for r in sim.erp.records("orders", parse_instant(w1))]
            assert len(since_w1) > 10  # two pages
            first_page = since_w1[:10]
            sim.fail_next("erp", 1, status=502, after=1)
            await clock.advance(60)
            run, changed = await sync_once(orc, mode=Mode.INCREMENTAL)
            assert run.state is RunState.FAILED
            assert run.result["updated"] == len([i for i in first_page if i in updated])
            assert changed == []
            assert await watermark(orc) == w1

            run, changed = await sync_once(orc, mode=Mode.INCREMENTAL)
            assert run.state is RunState.SUCCEEDED, run.error
            assert run.result["since"] == w1
            assert run.result["updated"] == len([i for i in since_w1[10:] if i in updated])
            assert run.result["updated"] + run.result["unchanged"] == len(since_w1)
            assert await watermark(orc) == sim.erp.get("orders", updated[-1])["updated_at"]


async def test_incremental_without_a_watermark_config_reads_all_and_deletes_nothing(
    database_url: str, clock: FakeClock
) -> None:
    async with run_simulator(SimulatorConfig(erp_sizes=SIZES)) as sim:
        products = source("products", **style_params("offset"))
        async with mirroring(database_url, clock, erp_config(sim.base_url("erp"), products)) as orc:
            await sync_once(orc, "products")
            sim.erp.delete("products", 1)
            sim.erp.update("products", 2, {"active": False})
            run, _ = await sync_once(orc, "products", mode=Mode.INCREMENTAL)
            assert run.state is RunState.SUCCEEDED, run.error
            assert counts(run) == (0, 1, 5, 0)
            assert "1" in await stored(orc, "products")
            assert await watermark(orc, "products") is None
            run, _ = await sync_once(orc, "products")  # auto: no watermark, so full
            assert run.result["mode"] == "full"
            assert counts(run) == (0, 0, 6, 1)


# --- what the body or the provider gets wrong -----------------------------------------------


async def test_a_records_path_that_is_not_a_list_fails_naming_it(
    database_url: str, clock: FakeClock
) -> None:
    async with run_simulator(SimulatorConfig(erp_sizes=SIZES)) as sim:
        orders = source("orders", records="meta", paging=CURSOR)
        async with mirroring(database_url, clock, erp_config(sim.base_url("erp"), orders)) as orc:
            run, _ = await sync_once(orc)
    assert run.state is RunState.FAILED
    assert run.error == (
        "params.records: the body of /api/orders from erp has an object at 'meta', "
        "not a list of records"
    )


Answer = tuple[Any, dict[str, str]]


class Scripted:
    """Answers the n-th request with the n-th answer (the last one repeats); keeps requests."""

    def __init__(self, *answers: Answer | Callable[[int], Answer]) -> None:
        self.answers = answers
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        body, headers = answer(len(self.requests)) if callable(answer) else answer
        return httpx.Response(200, content=json.dumps(body).encode(), headers=headers)

    def urls(self) -> list[str]:
        return [str(request.url) for request in self.requests]


def next_link(url: str) -> dict[str, str]:
    return {"Link": f'<{url}>; rel="next"'}


async def run_scripted(database_url: str, clock: FakeClock, script: Scripted, **params: Any) -> Run:
    config = erp_config(MOCK_BASE, source("things", **params))
    async with mirroring(database_url, clock, config, httpx.MockTransport(script)) as orc:
        run, _ = await sync_once(orc, "things")
    return run


async def test_link_paging_resolves_relative_links_against_the_page(
    database_url: str, clock: FakeClock
) -> None:
    script = Scripted(
        ([{"id": 1}], next_link("things?after=1")),
        ([{"id": 2}], next_link("/erp/api/things?after=2")),
        ([{"id": 3}], next_link(f"{MOCK_BASE}/api/things?after=3")),
        ([], {}),
    )
    run = await run_scripted(database_url, clock, script, paging={"style": "link"})
    assert run.state is RunState.SUCCEEDED, run.error
    assert (run.result["pages"], run.result["created"]) == (4, 3)
    assert script.urls() == [f"{MOCK_BASE}/api/things"] + [
        f"{MOCK_BASE}/api/things?after={n}" for n in (1, 2, 3)
    ]


@pytest.mark.parametrize(
    ("link", "error"),
    [
        (
            "http://evil.example/erp/api/things?after=1",
            "erp sent a next link to another host (http://evil.example) in page 1 of "
            "/api/things: refused, paging never leaves the API's base URL",
        ),
        (
            "https://127.0.0.1:9/erp/api/things?after=1",
            "erp sent a next link to another host (https://127.0.0.1:9)",
        ),
        (
            "/admin/things?after=1",
            "erp sent a next link outside the API's base URL (/erp/) in page 1 of /api/things",
        ),
    ],
)
async def test_a_next_link_off_the_api_base_url_is_refused(
    database_url: str, clock: FakeClock, link: str, error: str
) -> None:
    script = Scripted(([{"id": 1}], next_link(link)), ([{"id": 2}], {}))
    run = await run_scripted(database_url, clock, script, paging={"style": "link"})
    assert run.state is RunState.FAILED
    assert run.error is not None and run.error.startswith(error)
    assert len(script.requests) == 1


async def test_a_repeated_next_link_is_a_provider_loop(database_url: str, clock: FakeClock) -> None:
    script = Scripted(
        ([{"id": 1}], next_link("things?after=1")),
        ([{"id": 2}], next_link("things?after=1")),
    )
    run = await run_scripted(database_url, clock, script, paging={"style": "link"})
    assert run.state is RunState.FAILED
    assert run.error == (
        "erp sent the same next link a second time (page 2 of /api/things): "
        "an endless paging loop, a bug of the provider"
    )
    assert len(script.requests) == 2


async def test_a_repeated_cursor_is_a_provider_loop(database_url: str, clock: FakeClock) -> None:
    script = Scripted(
        ({"data": [{"id": 1}], "meta": {"next": "c1"}}, {}),
        ({"data": [{"id": 2}], "meta": {"next": "c2"}}, {}),
        ({"data": [{"id": 3}], "meta": {"next": "c1"}}, {}),
    )
    paging = {"style": "cursor", "param": "cursor", "next": "meta.next"}
    run = await run_scripted(database_url, clock, script, records="data", paging=paging)
    assert run.state is RunState.FAILED
    assert run.error == (
        "erp sent the cursor 'c1' a second time (page 3 of /api/things): "
        "an endless paging loop, a bug of the provider"
    )
    assert [request.url.params.get("cursor") for request in script.requests] == [None, "c1", "c2"]


async def test_a_server_ignoring_the_page_parameter_is_caught_at_the_second_page(
    database_url: str, clock: FakeClock
) -> None:
    script = Scripted(([{"id": 1}, {"id": 2}], {}))
    paging = {"style": "page", "size": 2}
    run = await run_scripted(database_url, clock, script, paging=paging)
    assert run.state is RunState.FAILED
    assert run.error == (
        "erp sent the same 2 records as pages 1 and 2 of /api/things: "
        "its paging does not advance (check params.paging)"
    )
    assert [r.url.params["page"] for r in script.requests] == ["1", "2"]
    assert {r.url.params["per_page"] for r in script.requests} == {"2"}


async def test_paging_stops_with_an_error_after_max_pages(
    database_url: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(collection, "MAX_PAGES", 3)
    script = Scripted(lambda n: ({"items": [{"id": n}], "next": f"c{n}"}, {}))
    paging = {"style": "cursor", "param": "after", "next": "next"}
    run = await run_scripted(database_url, clock, script, records="items", paging=paging)
    assert run.state is RunState.FAILED
    assert run.error == (
        "stopped after 3 pages of /api/things from erp: the collection never ended "
        "(a paging loop of the provider?)"
    )
    assert len(script.requests) == 3
    assert run.result["created"] == 3


async def test_records_without_a_key_are_skipped_and_counted(
    database_url: str, clock: FakeClock
) -> None:
    rows = [{"id": 1}, {"name": "no id"}, {"id": ""}, {"id": None}, 5, {"id": True}, {"id": "b"}]
    script = Scripted(({"items": rows}, {}))
    run = await run_scripted(
        database_url, clock, script, records="items", params={"active": True, "v": 2}
    )
    assert run.state is RunState.SUCCEEDED, run.error
    assert (run.result["created"], run.result["records_without_key"]) == (2, 5)
    (request,) = script.requests
    assert dict(request.url.params) == {"active": "true", "v": "2"}


async def test_bad_params_fail_the_run_before_any_request(
    database_url: str, clock: FakeClock
) -> None:
    script = Scripted(([], {}))
    run = await run_scripted(database_url, clock, script, paging={"style": "pages"})
    assert run.state is RunState.FAILED
    assert run.error == "params.paging.style: one of page, offset, cursor, link, not 'pages'"
    assert script.requests == []


async def test_a_per_target_source_is_refused(database_url: str, clock: FakeClock) -> None:
    script = Scripted(([], {}))
    config = erp_config(MOCK_BASE, source("things", per_target=True))
    async with mirroring(database_url, clock, config, httpx.MockTransport(script)) as orc:
        await orc.add_targets([Target("t:1", "One")])
        run, _ = await sync_once(orc, "things")
    assert run.state is RunState.FAILED
    assert run.error is not None and "set per_target = false" in run.error
    assert script.requests == []


# --- params -------------------------------------------------------------------------------

VALID = {"path": "/api/orders", "kind": "order", "key": "id"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"path": None}, "params.path: required"),
        ({"path": "http://evil.example/api"}, "params.path: 'http://evil.example/api' must be"),
        ({"path": "/api/orders?x=1"}, "params.path: '/api/orders?x=1' must be a path"),
        ({"kind": ""}, "params.kind: a non-empty string, not ''"),
        ({"key": None}, "params.key: required"),
        ({"key": 3}, "params.key: a non-empty string, not 3"),
        ({"records": "data..rows"}, "params.records: a dotted path"),
        ({"fields": []}, "params.fields: a non-empty list of field names, not []"),
        ({"fields": ["a", 3]}, "params.fields: field names are non-empty strings, not 3"),
        ({"paging": {"style": "pages"}}, "params.paging.style: one of page, offset, cursor, link"),
        ({"paging": {}}, "params.paging.style: one of page, offset, cursor, link, not None"),
        ({"paging": "cursor"}, "params.paging: a table, not 'cursor'"),
        ({"paging": {"style": "cursor", "param": "c"}}, "params.paging.next: required"),
        ({"paging": {"style": "cursor", "next": "n"}}, "params.paging.param: required"),
        (
            {"paging": {"style": "page", "size": 0}},
            "params.paging.size: a whole number of at least 1, not 0",
        ),
        ({"paging": {"style": "offset", "size": "10"}}, "params.paging.size: a whole number"),
        ({"paging": {"style": "page", "start": -1}}, "params.paging.start: a whole number of"),
        (
            {"paging": {"style": "offset", "start": 1}},
            "params.paging.start: unknown parameter of style offset; expected one of style, "
            "param, size_param, size",
        ),
        ({"paging": {"style": "link", "next": "n"}}, "params.paging.next: unknown parameter"),
        ({"watermark": "updated_at"}, "params.watermark: a table, not 'updated_at'"),
        ({"watermark": {"field": "updated_at"}}, "params.watermark.param: required"),
        ({"watermark": {"param": "since"}}, "params.watermark.field: required"),
        (
            {"watermark": {**WATERMARK, "lag": "5 minutes"}},
            "params.watermark.lag: invalid duration '5 minutes'",
        ),
        ({"watermark": {**WATERMARK, "lagg": "5m"}}, "params.watermark.lagg: unknown parameter"),
        ({"params": {"x": [1]}}, "params.params.x: a string, number or boolean, not list"),
        (
            {"paging": {"style": "page"}, "params": {"page": 2}},
            "params.paging.param: 'page' is also set by params.params.page; keep one",
        ),
        (
            {"paging": CURSOR, "watermark": {"field": "u", "param": "cursor"}},
            "params.watermark.param: 'cursor' is also set by params.paging.param; keep one",
        ),
        ({"watermak": WATERMARK}, "params.watermak: unknown parameter; expected one of path,"),
    ],
)
def test_each_bad_param_is_a_config_error_naming_it(change: dict[str, Any], message: str) -> None:
    params = {k: v for k, v in {**VALID, **change}.items() if v is not None}
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        parse_spec(params)


def test_paging_defaults_follow_the_contract() -> None:
    page = parse_spec({**VALID, "paging": {"style": "page"}})
    assert page.paging == Paging("page", param="page", size_param="per_page", size=100, start=1)
    offset = parse_spec({**VALID, "paging": {"style": "offset"}})
    assert offset.paging == Paging("offset", param="offset", size_param="limit", size=100)
    plain = parse_spec({**VALID, "watermark": WATERMARK})
    assert plain.paging == Paging() and plain.records is None and plain.fields is None
    assert plain.watermark is not None and plain.watermark.lag == timedelta(0)


def test_watermark_instants_are_compared_and_written_in_utc() -> None:
    assert parse_instant("2026-03-01T10:00:00Z") == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert parse_instant("2026-03-01T12:00:00+02:00") == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert parse_instant("2026-03-01T10:00:00") == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert parse_instant("yesterday") is None and parse_instant(1_700_000_000) is None
    assert format_instant(datetime(2026, 3, 1, 10, tzinfo=UTC)) == "2026-03-01T10:00:00Z"
    moment = datetime(2026, 3, 1, 10, 0, 0, 250_000, tzinfo=UTC)
    assert format_instant(moment) == "2026-03-01T10:00:00.250000Z"
