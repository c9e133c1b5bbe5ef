"""What changed since T: counts, events and earlier versions, through the store and the API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from engine_helpers import opened, within
from synchestra.connectors.context import SyncContext
from synchestra.core.clock import FakeClock
from synchestra.core.durations import iso
from synchestra.core.models import Mode
from synchestra.engine.orchestrator import Orchestrator
from synchestra.interfaces.http import create_app

TOKEN = "changes-token"


class Catalog:
    """The source's side: what the next sync will read."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {
            "a": {"id": "a", "price": 1},
            "b": {"id": "b", "price": 2},
            "c": {"id": "c", "price": 3},
        }


@pytest.fixture
async def setup(
    database_url: str, clock: FakeClock
) -> AsyncIterator[tuple[Orchestrator, Catalog, httpx.AsyncClient]]:
    catalog = Catalog()

    def define(orc: Orchestrator) -> None:
        @orc.source("catalog")
        async def read(ctx: SyncContext) -> None:
            await ctx.upsert("item", list(catalog.items.values()), key="id")
            ctx.delete_missing("item")

    async with opened(database_url, clock, setup=define) as orc:
        app = create_app(orc, token=TOKEN)
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://127.0.0.1", headers=headers
        ) as api:
            yield orc, catalog, api


async def sync(orc: Orchestrator) -> None:
    [answer] = await orc.request(["catalog"], mode=Mode.FULL)
    orc.start(schedule=False)
    await within(orc.wait_for([answer.run.id]))


async def test_changes_since_t_give_each_record_as_it_was_then(
    setup: tuple[Orchestrator, Catalog, httpx.AsyncClient], clock: FakeClock
) -> None:
    orc, catalog, api = setup
    await sync(orc)
    await clock.advance(60)
    since = iso(clock.now())
    await clock.advance(60)

    catalog.items["a"]["price"] = 10  # updated twice since T: previous is as of T
    await sync(orc)
    await clock.advance(60)
    catalog.items["a"]["price"] = 11
    catalog.items["d"] = {"id": "d", "price": 4}  # created since T
    del catalog.items["b"]  # deleted since T
    with orc.bus.subscribe(["records.changed"]) as changed:
        await sync(orc)
        event = changed.get_nowait()
    assert event is not None
    assert (event.data["created"], event.data["updated"], event.data["deleted"]) == (1, 1, 1)
    assert sorted(event.data["keys"]) == ["a", "d"]

    page = await api.get(
        "/api/records/item", params={"changed_since": since, "include_deleted": "true"}
    )
    assert page.status_code == 200, page.text
    by_key = {record["key"]: record for record in page.json()["records"]}
    assert set(by_key) == {"a", "b", "d"}  # c did not change
    assert by_key["a"]["data"]["price"] == 11
    assert by_key["a"]["previous"] == {"id": "a", "price": 1}
    assert by_key["d"]["previous"] is None
    assert by_key["b"]["deleted_at"] is not None
    assert by_key["b"]["previous"] == {"id": "b", "price": 2}

    live = await api.get("/api/records/item", params={"changed_since": since})
    assert {record["key"] for record in live.json()["records"]} == {"a", "d"}
    plain = await api.get("/api/records/item")
    assert all("previous" not in record for record in plain.json()["records"])
