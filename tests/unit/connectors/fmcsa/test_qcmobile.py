"""fmcsa.carrier and fmcsa.csa_scores against QCMobile's real payloads and its failures."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from fmcsa_helpers import WEBKEY, FakeFmcsa, opened, records, sample, sync_one
from synchestra.connectors.registry import resolve_connector
from synchestra.core.models import RunState

CARRIER_2025 = "qcmobile/carrier_125550_2025-09-03.json"
CARRIER_2021 = "qcmobile/carrier_158121_2021-02-28.json"
BASICS_2021 = "qcmobile/basics_44110_2021-03-02.json"
BASICS_2025 = "qcmobile/basics_125550_2025-09-03.json"
WEBKEY_404 = "qcmobile/error_webkey_not_found_http404_2021-02-28.json"
MAINTENANCE = (
    b"<!DOCTYPE html>\r\n<html><head><title>FMCSA System Maintenance Page</title></head>"
    b"<body><h1>The system is down for scheduled maintenance.</h1></body></html>"
)


def test_builtins_carry_their_default_api() -> None:
    expected = {
        "fmcsa.carrier": "qcmobile",
        "fmcsa.csa_scores": "qcmobile",
        "fmcsa.violations": "datahub",
        "fmcsa.inspections": "saferweb",
    }
    for name, api in expected.items():
        assert getattr(resolve_connector(name), "default_api", None) == api


# --- fmcsa.carrier ------------------------------------------------------------------


async def test_carrier_from_the_2025_payload(tmp_path: Path) -> None:
    fake = FakeFmcsa()
    fake.route("/qc/services/carriers/125550", httpx.Response(200, json=sample(CARRIER_2025)))
    async with opened(tmp_path, fake, targets=["dot:125550"]) as orc:
        run = await sync_one(orc, "carrier", "dot:125550")
        assert run.state is RunState.SUCCEEDED, run.error
        assert orc.sources["carrier"].api == "qcmobile"
        assert run.result == {"created": 1, "updated": 0, "unchanged": 0, "deleted": 0}
        stored = await records(orc, "carrier", "dot:125550")

    (request,) = fake.requests
    assert request.url.path == "/qc/services/carriers/125550"
    assert request.url.params["webKey"] == WEBKEY  # added by the API's auth
    assert list(stored) == ["125550"]
    data = stored["125550"]
    assert data["legalName"] == "ATLAS VAN LINES INC"
    assert data["dbaName"] is None
    assert data["dotNumber"] == 125550
    assert (data["allowedToOperate"], data["allowedToOperate_bool"]) == ("Y", True)
    assert (data["bipdInsuranceRequired"], data["bipdInsuranceRequired_bool"]) == ("u", None)
    assert data["bondInsuranceRequired_bool"] is True
    assert (data["bipdInsuranceOnFile"], data["bipdInsuranceOnFile_num"]) == ("1000", 1000)
    assert data["cargoInsuranceOnFile_num"] == 5
    assert data["vehicleOosRateNationalAverage_num"] == 20.72
    assert data["vehicleOosRate"] == 26.27986348122867
    assert (data["totalPowerUnits"], data["totalDrivers"]) == (3243, 2417)
    assert (data["crashTotal"], data["fatalCrash"], data["injCrash"]) == (59, 0, 20)
    assert (data["safetyRating"], data["safetyRatingDate_iso"]) == ("S", "2024-11-13")
    assert data["oosDate_iso"] is None
    assert data["mcs150Outdated_bool"] is False
    assert data["carrierOperation"] == {
        "carrierOperationCode": "A",
        "carrierOperationDesc": "Interstate",
    }
    assert "retrievalDate" not in data and "_links" not in data


async def test_carrier_from_the_2021_payload_and_a_second_run_changes_nothing(
    tmp_path: Path,
) -> None:
    fake = FakeFmcsa()
    fake.route("/qc/services/carriers/158121", httpx.Response(200, json=sample(CARRIER_2021)))
    async with opened(tmp_path, fake, targets=["158121"]) as orc:  # a bare-number key works
        first = await sync_one(orc, "carrier", "158121")
        second = await sync_one(orc, "carrier", "158121")
        data = (await records(orc, "carrier", "158121"))["158121"]
    assert first.result["created"] == 1
    assert second.result == {"created": 0, "updated": 0, "unchanged": 1, "deleted": 0}
    assert data["legalName"] == "VERIHA TRUCKING INC"
    assert data["driverOosRate"] == pytest.approx(1.1583011583)  # 38 digits on the wire
    assert data["hazmatOosRate"] == 10
    assert data["safetyRatingDate_iso"] == "1996-04-25"


async def test_webkey_not_found_is_a_final_error_with_qcmobiles_message(tmp_path: Path) -> None:
    fake = FakeFmcsa()
    fake.route("/qc/", httpx.Response(404, json=sample(WEBKEY_404)))
    sources = {"carrier": {"retry": {"attempts": 3, "backoff": "0s"}}}
    async with opened(tmp_path, fake, sources=sources, targets=["dot:125550"]) as orc:
        run = await sync_one(orc, "carrier", "dot:125550")
    assert run.state is RunState.FAILED
    assert run.error == "HTTP 404 from qcmobile: Webkey not found"
    assert run.attempts == 1  # not retried: the key will not become valid
    assert len(fake.requests) == 1


async def test_maintenance_page_is_retried_and_stores_nothing(tmp_path: Path) -> None:
    fake = FakeFmcsa()
    page = httpx.Response(200, content=MAINTENANCE, headers={"Content-Type": "text/html"})
    fake.route("/qc/", page)
    sources = {"carrier": {"retry": {"attempts": 2, "backoff": "0s"}}}
    async with opened(tmp_path, fake, sources=sources, targets=["dot:125550"]) as orc:
        run = await sync_one(orc, "carrier", "dot:125550")
        stored = await records(orc, "carrier")
    assert run.state is RunState.FAILED
    assert run.error == "qcmobile is under maintenance"
    assert run.attempts == 2  # transient: retried
    assert len(fake.requests) == 2
    assert stored == {}


@pytest.mark.parametrize(
    "body",
    [
        {"content": None},
        {"content": {}},
        {"content": []},
        {"content": {"_links": {}}},
        {"content": {"carrier": None}},
    ],
)
async def test_no_carrier_in_the_content_is_not_found(tmp_path: Path, body: Any) -> None:
    fake = FakeFmcsa()
    fake.route("/qc/", httpx.Response(200, json={**body, "retrievalDate": "x"}))
    async with opened(tmp_path, fake, targets=["dot:99999"]) as orc:
        run = await sync_one(orc, "carrier", "dot:99999")
    assert (run.state, run.error) == (RunState.FAILED, "carrier 99999 not found in qcmobile")


@pytest.mark.parametrize(
    ("response", "error", "attempts"),
    [
        (httpx.Response(503, text="busy"), "HTTP 503 from qcmobile", 2),
        (httpx.Response(404, json={"content": None}), "carrier 1 not found in qcmobile", 1),
        (
            httpx.Response(500, json={"content": "Internal error"}),
            "HTTP 500 from qcmobile: Internal error",
            2,
        ),
        (httpx.Response(200, text="not json"), "invalid JSON from qcmobile", 1),
        (
            httpx.Response(200, json={"content": "Must provide Webkey"}),
            "error from qcmobile: Must provide Webkey",
            1,
        ),
        (
            httpx.Response(200, json=[1, 2]),
            "unexpected response from qcmobile: no 'content' envelope",
            1,
        ),
    ],
)
async def test_other_answers_give_clear_errors(
    tmp_path: Path, response: httpx.Response, error: str, attempts: int
) -> None:
    fake = FakeFmcsa()
    fake.route("/qc/", response)
    sources = {"carrier": {"retry": {"attempts": 2, "backoff": "0s"}}}
    async with opened(tmp_path, fake, sources=sources, targets=["dot:1"]) as orc:
        run = await sync_one(orc, "carrier", "dot:1")
    assert (run.state, run.error, run.attempts) == (RunState.FAILED, error, attempts)


async def test_network_errors_are_retried_and_name_no_url(tmp_path: Path) -> None:
    fake = FakeFmcsa()

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot connect to {request.url}", request=request)

    fake.route("/qc/", refuse)
    sources = {"carrier": {"retry": {"attempts": 2, "backoff": "0s"}}}
    async with opened(tmp_path, fake, sources=sources, targets=["dot:1"]) as orc:
        run = await sync_one(orc, "carrier", "dot:1")
    assert run.error == "network error from qcmobile: ConnectError"
    assert run.attempts == 2


async def test_a_carrier_other_than_the_one_asked_for_is_refused(tmp_path: Path) -> None:
    fake = FakeFmcsa()
    fake.route("/qc/", httpx.Response(200, json=sample(CARRIER_2025)))
    async with opened(tmp_path, fake, targets=["dot:7"]) as orc:
        run = await sync_one(orc, "carrier", "dot:7")
        assert await records(orc, "carrier") == {}
    assert run.error == "qcmobile answered with carrier 125550 when asked for 7"


# --- fmcsa.csa_scores -------------------------------------------------------------


async def test_basics_from_the_2021_payload(tmp_path: Path) -> None:
    fake = FakeFmcsa()
    fake.route("/qc/services/carriers/44110/basics", httpx.Response(200, json=sample(BASICS_2021)))
    async with opened(tmp_path, fake, targets=["dot:44110"]) as orc:
        run = await sync_one(orc, "csa_scores", "dot:44110")
        stored = await records(orc, "basic", "dot:44110")
    assert run.state is RunState.SUCCEEDED, run.error
    assert run.result == {"created": 5, "updated": 0, "unchanged": 0, "deleted": 0, "basics": 5}
    (request,) = fake.requests
    assert request.url.path == "/qc/services/carriers/44110/basics"
    assert request.url.params["webKey"] == WEBKEY
    by_id = {data["basicsId"]: (key, data) for key, data in stored.items()}
    assert sorted(by_id) == [11, 12, 13, 14, 15]
    key, unsafe = by_id[11]
    assert key.startswith("44110|11|2017-01-27|") and len(key.split("|")[3]) == 12
    assert (unsafe["basicsPercentile"], unsafe["basicsPercentile_num"]) == ("18%", 18.0)
    assert (unsafe["measureValue"], unsafe["measureValue_num"]) == ("1.02", 1.02)
    assert unsafe["basicsViolationThreshold_num"] == 50.0
    assert unsafe["exceededFMCSAInterventionThreshold_bool"] is False
    assert unsafe["basicsRunDate"] == "2017-01-27T05:00:00.000+0000"
    assert unsafe["basicsRunDate_iso"] == "2017-01-27T05:00:00Z"
    assert unsafe["basicsCode"] == "Unsafe Driving"
    assert unsafe["dotNumber"] == 44110
    assert (unsafe["totalInspectionWithViolation"], unsafe["totalViolation"]) == (155, 170)
    hos = by_id[12][1]
    assert hos["exceededFMCSAInterventionThreshold_bool"] is True
    assert hos["onRoadPerformanceThresholdViolationIndicator_bool"] is True
    assert by_id[14][1]["basicsShortDesc"] == "Controlled Substances/Alcohol"  # U+200B gone
    assert by_id[14][1]["basicsPercentile_num"] == 0.0


async def test_basics_of_a_property_carrier_are_not_public(tmp_path: Path) -> None:
    fake = FakeFmcsa()
    fake.route("/qc/", httpx.Response(200, json=sample(BASICS_2025)))
    async with opened(tmp_path, fake, targets=["dot:125550"]) as orc:
        await sync_one(orc, "csa_scores", "dot:125550")
        stored = await records(orc, "basic", "dot:125550")
    by_id = {data["basicsId"]: data for data in stored.values()}
    assert len(by_id) == 5
    for data in by_id.values():
        assert data["basicsPercentile"] == "Not Public"
        assert data["basicsPercentile_num"] is None
        assert data["exceededFMCSAInterventionThreshold"] == "-1"
        assert data["exceededFMCSAInterventionThreshold_bool"] is None
        assert data["onRoadPerformanceThresholdViolationIndicator_bool"] is None
    assert by_id[13]["seriousViolationFromInvestigationPast12MonthIndicator_bool"] is True
    assert by_id[15]["measureValue_num"] == 3.75
    assert by_id[14]["basicsShortDesc"] == "Controlled Substances/Alcohol"  # &#8203; gone


async def test_basics_keep_history_one_record_per_state(tmp_path: Path) -> None:
    payload = sample(BASICS_2021)
    fake = FakeFmcsa()
    fake.route("/qc/", lambda _request: httpx.Response(200, json=payload))
    async with opened(tmp_path, fake, targets=["dot:44110"]) as orc:
        await sync_one(orc, "csa_scores", "dot:44110", mode="full")
        again = await sync_one(orc, "csa_scores", "dot:44110", mode="full")
        assert (again.result["created"], again.result["unchanged"]) == (0, 5)

        # the same values spelt with &#8203; instead of U+200B: not a change
        respelt = json.loads(json.dumps(payload).replace("\\u200b", "&#8203;"))
        assert respelt != payload
        payload = respelt
        same = await sync_one(orc, "csa_scores", "dot:44110", mode="full")
        assert (same.result["created"], same.result["unchanged"]) == (0, 5)

        # next month: Unsafe Driving moves
        payload = copy.deepcopy(payload)
        payload["content"][0]["basic"].update(basicsPercentile="23%", measureValue="1.31")
        moved = await sync_one(orc, "csa_scores", "dot:44110", mode="full")
        assert moved.result == {
            "created": 1,
            "updated": 0,
            "unchanged": 4,
            "deleted": 0,  # history is never deleted, even by a full run
            "basics": 5,
        }
        stored = await records(orc, "basic", "dot:44110")
    assert len(stored) == 6
    unsafe = sorted(
        (data["basicsPercentile_num"] for data in stored.values() if data["basicsId"] == 11),
    )
    assert unsafe == [18.0, 23.0]


async def test_basics_error_handling_matches_the_carrier(tmp_path: Path) -> None:
    fake = FakeFmcsa()
    fake.route("/qc/", httpx.Response(200, json={"content": None}))
    async with opened(tmp_path, fake, targets=["dot:44110"]) as orc:
        run = await sync_one(orc, "csa_scores", "dot:44110")
        fake.route("/qc/", httpx.Response(200, json={"content": []}))
        empty = await sync_one(orc, "csa_scores", "dot:44110")
        fake.route("/qc/", httpx.Response(404, json=sample(WEBKEY_404)))
        refused = await sync_one(orc, "csa_scores", "dot:44110")
    assert run.error == "carrier 44110 not found in qcmobile"
    assert empty.state is RunState.SUCCEEDED and empty.result["basics"] == 0
    assert refused.error == "HTTP 404 from qcmobile: Webkey not found"
