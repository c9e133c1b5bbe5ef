"""fmcsa.inspections against the SaferWebAPI snapshot shape (python-safer's Company dict)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import httpx
import pytest

from fmcsa_helpers import ENVIRON, SAFERWEB_KEY, FakeFmcsa, opened, records, sample, sync_one
from synchestra.core.models import RunState

SNAPSHOT = "saferwebapi-related/python-safer_Company.to_json_usdot698887.json"
PATH = "/v2/usdot/snapshot/698887"
NOT_FOUND = "carrier 698887 not found in saferweb"


async def test_the_snapshot_with_parsed_values(tmp_path: Path) -> None:
    fake = FakeFmcsa()
    fake.route(PATH, httpx.Response(200, json=sample(SNAPSHOT)))
    async with opened(tmp_path, fake, targets=["dot:698887"]) as orc:
        run = await sync_one(orc, "inspections", "dot:698887")
        again = await sync_one(orc, "inspections", "dot:698887")
        stored = await records(orc, "inspection", "dot:698887")
    assert run.state is RunState.SUCCEEDED, run.error
    assert orc.sources["inspections"].api == "saferweb"
    assert again.result["unchanged"] == 1
    request = fake.requests[0]
    assert request.url.path == PATH
    assert request.headers["x-api-key"] == SAFERWEB_KEY
    data = stored["698887"]
    assert data["usdot"] == "698887"
    assert data["legal_name"] == "PYTHON CORPORATION"
    assert data["operating_status"] == "ACTIVE"
    assert (data["latest_update"], data["latest_update_iso"]) == ("09/12/2017", "2017-09-12")
    assert data["safety_rating"] is None and data["safety_rating_date_iso"] is None
    assert "united_states_inspections" not in data  # the duplicate table (counts as text)
    vehicle = data["us_inspections"]["vehicle"]
    assert vehicle == {
        "inspections": 0,
        "out_of_service": 0,
        "out_of_service_percent": "0%",
        "national_average": "20.72%",
        "inspections_num": 0,
        "out_of_service_num": 0,
        "out_of_service_percent_num": 0.0,
        "national_average_num": 20.72,
        "out_of_service_rate": None,  # no inspections
    }
    assert data["us_inspections"]["iep"]["national_average_num"] is None  # "N/A"
    assert data["united_states_crashes"]["total_num"] == 0
    assert set(data) >= {"us_inspections", "united_states_crashes", "safety_rating"}
    assert "phone" not in data and "url" not in data


async def test_the_text_table_is_used_when_it_is_the_only_one(tmp_path: Path) -> None:
    snapshot: dict[str, Any] = copy.deepcopy(sample(SNAPSHOT))
    del snapshot["us_inspections"]
    snapshot["united_states_inspections"]["vehicle"].update(
        inspections="44", out_of_service="6", out_of_service_percent="13.6%"
    )
    fake = FakeFmcsa()
    fake.route(PATH, httpx.Response(200, json=snapshot))
    async with opened(tmp_path, fake, targets=["dot:698887"]) as orc:
        await sync_one(orc, "inspections", "dot:698887")
        data = (await records(orc, "inspection"))["698887"]
    vehicle = data["united_states_inspections"]["vehicle"]
    assert (vehicle["inspections_num"], vehicle["out_of_service_num"]) == (44, 6)
    assert vehicle["out_of_service_percent_num"] == 13.6
    assert vehicle["out_of_service_rate"] == pytest.approx(13.636363636)


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (httpx.Response(404, json={"message": "Not Found"}), NOT_FOUND),
        (httpx.Response(200, json={}), NOT_FOUND),
        (
            httpx.Response(401, json={"message": "Invalid API key"}),
            "HTTP 401 from saferweb: Invalid API key",
        ),
        (httpx.Response(403, text="Forbidden"), "HTTP 403 from saferweb"),
        (
            httpx.Response(200, json={"usdot": "698887"}),
            "unexpected response from saferweb: no inspection table in the snapshot",
        ),
        (httpx.Response(200, json=[]), NOT_FOUND),
        (
            httpx.Response(200, json=["x"]),
            "unexpected response from saferweb: the snapshot is not an object",
        ),
        (httpx.Response(200, text="<html>"), "invalid JSON from saferweb"),
    ],
)
async def test_errors_are_clear(tmp_path: Path, response: httpx.Response, error: str) -> None:
    fake = FakeFmcsa()
    fake.route(PATH, response)
    async with opened(tmp_path, fake, targets=["dot:698887"]) as orc:
        run = await sync_one(orc, "inspections", "dot:698887")
    assert (run.state, run.error) == (RunState.FAILED, error)


async def test_a_missing_key_skips_the_run_without_calling_the_api(tmp_path: Path) -> None:
    fake = FakeFmcsa()
    environ = {k: v for k, v in ENVIRON.items() if k != "SAFERWEB_API_KEY"}
    async with opened(tmp_path, fake, environ=environ, targets=["dot:698887"]) as orc:
        run = await sync_one(orc, "inspections", "dot:698887")
    assert (run.state, run.error) == (
        RunState.SKIPPED,
        "not configured: SAFERWEB_API_KEY is not set",
    )
    assert fake.requests == []
