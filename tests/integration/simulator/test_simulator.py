"""The simulated APIs over real HTTP on loopback: formats, auth, limits, faults, paging.

Every test runs its own simulator on an ephemeral 127.0.0.1 port. Nothing
here waits for wall-clock time: rate limits use a 60 s window (so a burst is
over the limit however slow the machine), and requests that must be inside
the server are held there by a timeout fault until the test releases them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from paths import FMCSA_SAMPLES
from synchestra.simulator import (
    DEFAULT_SAFERWEB_KEY,
    DEFAULT_WEBKEY,
    ApiConfig,
    ErpSizes,
    FaultConfig,
    Simulator,
    SimulatorConfig,
    TargetFault,
    run_simulator,
)

SAMPLES = FMCSA_SAMPLES
QC_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$")
DATASET = "/resource/8mt8-2mdr.json"
CONFIG = SimulatorConfig(
    carriers=8,
    seed=11,
    big_carriers=1,
    big_carrier_rows=2_345,
    erp_sizes=ErpSizes(customers=0, products=5, prices=20, orders=25),
)


def sample(relative: str) -> Any:
    path = SAMPLES / relative
    if not path.exists():
        missing = f"FMCSA samples not found at {SAMPLES}"
        pytest.fail(missing) if os.environ.get("CI") == "true" else pytest.skip(missing)
    return json.loads(path.read_text())


def json_type(value: Any) -> str:
    """JSON's own type names; ints and floats are both ``number``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def assert_same_shape(ours: list[dict[str, Any]], real: list[dict[str, Any]]) -> None:
    """Same keys, and every value type of ours was seen in the real payloads.

    A key that is null in every real payload could be any type: a string is
    then allowed too (the documented type of such FMCSA fields).
    """
    real_keys = {tuple(sorted(doc)) for doc in real}
    assert {tuple(sorted(doc)) for doc in ours} == real_keys
    for key in real[0]:
        seen = {json_type(doc[key]) for doc in real}
        allowed = seen | ({"string"} if seen == {"null"} else set())
        if "string" in seen and key in NULLABLE:
            allowed.add("null")
        got = {json_type(doc[key]) for doc in ours}
        assert got <= allowed, f"{key}: {got} not in {allowed}"
        nested = [doc[key] for doc in real if isinstance(doc[key], dict)]
        if nested and all(isinstance(doc[key], dict) for doc in ours):
            assert_same_shape([doc[key] for doc in ours], nested)


NULLABLE = {
    "safetyRating",
    "safetyRatingDate",
    "safetyReviewDate",
    "safetyReviewType",
    "reviewDate",
    "reviewType",
    "oosDate",
    "isPassengerCarrier",
    "dbaName",
    "mc_mx_ff_numbers",
    "out_of_service_date",
    "safety_rating",
    "safety_rating_date",
    "safety_review_date",
    "safety_type",
}


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with run_simulator(CONFIG) as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as http:
        yield http


async def qc(
    client: httpx.AsyncClient, sim: Simulator, path: str, key: str | None = DEFAULT_WEBKEY
) -> httpx.Response:
    params = {"webKey": key} if key is not None else {}
    return await client.get(
        f"{sim.base_url('qcmobile')}/qc/services/carriers/{path}", params=params
    )


async def soda(client: httpx.AsyncClient, sim: Simulator, **params: str) -> httpx.Response:
    query = {k.replace("_S_", "$"): v for k, v in params.items()}
    return await client.get(sim.base_url("datahub") + DATASET, params=query)


def where_dot(dot: int) -> str:
    return f"dot_number='{dot}'"


# --- QCMobile -------------------------------------------------------------------


async def test_carrier_envelope_matches_the_real_payloads(
    sim: Simulator, client: httpx.AsyncClient
) -> None:
    real = [
        sample("qcmobile/carrier_125550_2025-09-03.json"),
        sample("qcmobile/carrier_158121_2021-02-28.json"),
    ]
    bodies = [(await qc(client, sim, str(dot))).json() for dot in sim.data.dots]
    assert_same_shape(bodies, real)
    for body in bodies:
        assert QC_TIME.match(body["retrievalDate"])
        carrier = body["content"]["carrier"]
        assert list(carrier) == sorted(carrier)  # alphabetical, as the real service sends
        assert carrier == sim.data.carrier(carrier["dotNumber"])


async def test_oos_rates_go_on_the_wire_with_38_decimals(
    sim: Simulator, client: httpx.AsyncClient
) -> None:
    texts = [(await qc(client, sim, str(dot))).text for dot in sim.data.dots]
    long_rates = [m for text in texts for m in re.findall(r'OosRate":(\d+\.\d+)', text)]
    assert long_rates and all(len(rate.split(".")[1]) <= 38 for rate in long_rates)
    assert any(len(rate.split(".")[1]) == 38 for rate in long_rates)


async def test_basics_match_the_real_payloads(sim: Simulator, client: httpx.AsyncClient) -> None:
    real = [
        sample("qcmobile/basics_125550_2025-09-03.json"),
        sample("qcmobile/basics_44110_2021-03-02.json"),
    ]
    bodies = [(await qc(client, sim, f"{dot}/basics")).json() for dot in sim.data.dots]
    entries = [entry for body in bodies for entry in body["content"]]
    assert_same_shape(entries, [entry for body in real for entry in body["content"]])
    basics = [entry["basic"] for entry in entries]
    assert all(len(body["content"]) == 5 for body in bodies)
    assert {b["basicsType"]["basicsId"] for b in basics} == {11, 12, 13, 14, 15}
    percentiles = {b["basicsPercentile"] for b in basics}
    assert "Not Public" in percentiles and any(re.fullmatch(r"\d{1,2}%", p) for p in percentiles)
    assert all(p == "Not Public" or re.fullmatch(r"\d{1,2}%", p) for p in percentiles)
    assert {b["exceededFMCSAInterventionThreshold"] for b in basics} <= {"Y", "N", "-1"}
    assert all(QC_TIME.match(b["basicsRunDate"]) for b in basics)


async def test_webkey_missing_or_unknown_is_a_404_with_string_content(
    sim: Simulator, client: httpx.AsyncClient
) -> None:
    real = sample("qcmobile/error_webkey_not_found_http404_2021-02-28.json")
    dot = str(sim.data.dots[0])
    missing = await qc(client, sim, dot, key=None)
    unknown = await qc(client, sim, dot, key="not-a-key")
    assert (missing.status_code, missing.json()["content"]) == (404, "Must provide Webkey")
    assert (unknown.status_code, unknown.json()["content"]) == (404, "Webkey not found")
    assert set(unknown.json()) == set(real) and unknown.json()["_links"] == real["_links"]
    assert QC_TIME.match(unknown.json()["retrievalDate"])


async def test_unknown_dot_gets_null_or_empty_content(
    sim: Simulator, client: httpx.AsyncClient
) -> None:
    carrier = await qc(client, sim, "42")
    basics = await qc(client, sim, "42/basics")
    assert (carrier.status_code, carrier.json()["content"]) == (200, None)
    assert (basics.status_code, basics.json()["content"]) == (200, [])


async def test_maintenance_page_is_html_with_status_200(
    sim: Simulator, client: httpx.AsyncClient
) -> None:
    sim.configure(
        "qcmobile", ApiConfig(keys=(DEFAULT_WEBKEY,), faults=FaultConfig(maintenance=True))
    )
    response = await qc(client, sim, str(sim.data.dots[0]))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<title>FMCSA System Maintenance Page</title>" in response.text
    assert sim.counters()["qcmobile"].faults == {"maintenance": 1}


# --- DataHub (Socrata) ------------------------------------------------------------


async def test_violation_rows_are_all_text_like_the_real_rows(
    sim: Simulator, client: httpx.AsyncClient
) -> None:
    real = sample("datahub-socrata/8mt8-2mdr_violations_dot1021580_captured-2026-09-08.json")
    dot = next(d for d in sim.data.dots if sim.data.violations(d))
    rows = (await soda(client, sim, _S_where=where_dot(dot))).json()
    assert rows and all(list(row) == list(real[0]) for row in rows)
    assert all(isinstance(value, str) for row in rows for value in row.values())
    for row in rows:
        assert re.fullmatch(r"\d\d-[A-Z]{3}-\d\d", row["insp_date"])
        datetime.strptime(row["insp_date"], "%d-%b-%y")
        assert row["dot_number"] == str(dot) and row["oos_indicator"] in ("true", "false")


async def test_soql_paging_past_2000_rows_is_consistent(
    sim: Simulator, client: httpx.AsyncClient
) -> None:
    dot = sim.data.big_dots[0]
    pages: list[list[dict[str, str]]] = []
    for offset in range(0, 5_000, 1_000):
        response = await soda(
            client,
            sim,
            _S_where=where_dot(dot),
            _S_order=":id",
            _S_limit="1000",
            _S_offset=str(offset),
        )
        pages.append(response.json())
        if len(pages[-1]) < 1_000:
            break
    assert [len(page) for page in pages] == [1_000, 1_000, 345]
    rows = [row for page in pages for row in page]
    assert rows == sim.data.violations(dot)
    assert any(a == b for a, b in itertools.pairwise(rows)), "expected exact repeats"
    count = await soda(client, sim, _S_select="count(*)", _S_where=where_dot(dot))
    assert count.json() == [{"count": "2345"}]


async def test_soql_order_limit_and_in_filters(sim: Simulator, client: httpx.AsyncClient) -> None:
    dots = [d for d in sim.data.dots if sim.data.violations(d)][:2]
    both = await soda(
        client, sim, _S_where=f"dot_number in ('{dots[0]}', '{dots[1]}')", _S_limit="50000"
    )
    assert both.json() == sim.data.violations(dots[0]) + sim.data.violations(dots[1])
    ordered = await soda(client, sim, _S_where=where_dot(dots[0]), _S_order="insp_date DESC")
    dates = [row["insp_date"] for row in ordered.json()]
    assert dates == sorted(dates, reverse=True)  # text order, as on Socrata
    simple = await soda(client, sim, dot_number=str(dots[1]), _S_limit="3")
    assert simple.json() == sim.data.violations(dots[1])[:3]
    assert (await soda(client, sim, _S_where=where_dot(42))).json() == []
    assert json.loads(both.headers["x-soda2-fields"])[0] == "unique_id"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"_S_limit": "bjb"}, "query.compiler.malformed"),
        ({"_S_where": "dot_number = "}, "query.compiler.malformed"),
        ({"_S_where": "states = 'TX'"}, "query.soql.no-such-column"),
        ({"_S_order": "nope"}, "query.soql.no-such-column"),
        ({"_S_where": "dot_number = 1000001"}, "query.soql.type-mismatch"),
        ({"_S_limit": "50001"}, "query.compiler.malformed"),
    ],
)
async def test_bad_soql_gets_socrata_error_bodies(
    sim: Simulator, client: httpx.AsyncClient, params: dict[str, str], code: str
) -> None:
    real = sample("datahub-socrata/socrata_error_bodies_real_examples.json")
    real_keys = {key for entry in real if "body" in entry for key in entry["body"]}
    response = await soda(client, sim, **params)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == code and body["error"] is True and body["message"]
    assert set(body) <= real_keys
    assert '"code" : ' in response.text  # pretty-printed, as Socrata does


async def test_unknown_simple_filter_is_unrecognized(
    sim: Simulator, client: httpx.AsyncClient
) -> None:
    real = sample("datahub-socrata/socrata_error_bodies_real_examples.json")[0]["body"]
    response = await soda(client, sim, docket_number="123")
    assert response.status_code == 400 and response.json() == real


async def test_app_token_is_optional_but_checked_when_keys_are_set(
    sim: Simulator, client: httpx.AsyncClient
) -> None:
    sim.configure("datahub", ApiConfig(keys=("good-token",)))
    url = sim.base_url("datahub") + DATASET
    assert (await client.get(url)).status_code == 200
    assert (await client.get(url, headers={"X-App-Token": "good-token"})).status_code == 200
    refused = await client.get(url, headers={"X-App-Token": "bad"})
    assert refused.status_code == 403 and refused.json()["code"] == "permission_denied"


# --- SaferWebAPI ------------------------------------------------------------------


async def test_saferweb_snapshot_needs_the_api_key_and_has_python_safer_keys(
    sim: Simulator, client: httpx.AsyncClient
) -> None:
    real = sample("saferwebapi-related/python-safer_Company.to_json_usdot698887.json")
    url = f"{sim.base_url('saferweb')}/v2/usdot/snapshot/{sim.data.dots[2]}"
    missing = await client.get(url)
    wrong = await client.get(url, headers={"x-api-key": "nope"})
    assert (missing.status_code, wrong.status_code) == (401, 403)
    assert "message" in missing.json() and "message" in wrong.json()
    snapshots = [
        (
            await client.get(
                url.rsplit("/", 1)[0] + f"/{dot}", headers={"x-api-key": DEFAULT_SAFERWEB_KEY}
            )
        ).json()
        for dot in sim.data.dots
    ]
    assert_same_shape(snapshots, [real])
    us = snapshots[0]["us_inspections"]["vehicle"]
    raw = snapshots[0]["united_states_inspections"]["vehicle"]
    assert isinstance(us["inspections"], int) and raw["inspections"] == str(us["inspections"])
    unknown = await client.get(
        url.rsplit("/", 1)[0] + "/42", headers={"x-api-key": DEFAULT_SAFERWEB_KEY}
    )
    assert unknown.status_code == 404


# --- limits -------------------------------------------------------------------------


async def test_rate_limit_answers_429_with_retry_after(
    sim: Simulator, client: httpx.AsyncClient
) -> None:
    sim.configure("saferweb", ApiConfig(keys=(DEFAULT_SAFERWEB_KEY,), rate=2, rate_window=60))
    url = f"{sim.base_url('saferweb')}/v2/usdot/snapshot/{sim.data.dots[0]}"
    headers = {"x-api-key": DEFAULT_SAFERWEB_KEY}
    responses = await asyncio.gather(*(client.get(url, headers=headers) for _ in range(7)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 200, 429, 429, 429, 429, 429]
    for refused in (r for r in responses if r.status_code == 429):
        assert 1 <= int(refused.headers["retry-after"]) <= 60
    counters = sim.counters()["saferweb"]
    assert (counters.requests, counters.rate_limited, counters.too_many_requests) == (7, 5, 5)
    assert counters.responses == {200: 2, 429: 5}
    sim.reset("saferweb")
    assert (await client.get(url, headers=headers)).status_code == 200


async def test_concurrency_cap_refuses_and_peaks_are_counted_per_target(
    sim: Simulator, client: httpx.AsyncClient
) -> None:
    hold_orders = FaultConfig(targets=(TargetFault("orders", kind="timeout"),))
    sim.configure("erp", ApiConfig(concurrency=2, faults=hold_orders))
    base = sim.base_url("erp")
    held = [asyncio.create_task(client.get(f"{base}/api/orders")) for _ in range(2)]
    await sim.wait_for_held("erp", 2)
    refused = await client.get(f"{base}/api/products")
    assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
    sim.release_held()
    assert [r.status_code for r in await asyncio.gather(*held)] == [504, 504]
    counters = sim.counters()["erp"]
    assert counters.over_concurrency == 1 and counters.too_many_requests == 1
    assert counters.peak_concurrency == 3
    assert counters.peak_concurrency_by_target == {"orders": 2, "products": 1}
    assert counters.in_flight == 0 and counters.faults == {"target": 2}


async def test_latency_delays_each_answer(sim: Simulator, client: httpx.AsyncClient) -> None:
    sim.configure("erp", ApiConfig(latency=0.05))
    started = time.perf_counter()
    assert (await client.get(f"{sim.base_url('erp')}/api/products")).status_code == 200
    assert time.perf_counter() - started >= 0.05


# --- faults -------------------------------------------------------------------------


async def test_targeted_faults_hit_only_their_api_and_target(
    sim: Simulator, client: httpx.AsyncClient
) -> None:
    bad, good = sim.data.dots[1], sim.data.dots[2]
    aimed = FaultConfig(targets=(TargetFault(str(bad), status=502),))
    sim.configure("qcmobile", ApiConfig(keys=(DEFAULT_WEBKEY,), faults=aimed))
    sim.configure("datahub", ApiConfig(faults=FaultConfig(targets=(TargetFault(str(good), 500),))))
    assert [(await qc(client, sim, f"{bad}{p}")).status_code for p in ("", "/basics")] == [502, 502]
    assert (await qc(client, sim, str(good))).status_code == 200
    assert (await soda(client, sim, _S_where=where_dot(good))).status_code == 500
    assert (await soda(client, sim, _S_where=where_dot(bad))).status_code == 200
    failed = await qc(client, sim, str(bad))
    assert isinstance(failed.json()["content"], str)  # errors keep the API's dialect
    counters = sim.counters()
    assert counters["qcmobile"].faults == {"target": 3}
    assert counters["qcmobile"].requests_by_target == {str(bad): 3, str(good): 1}
    assert counters["datahub"].faults == {"target": 1}
    assert counters["saferweb"].requests == 0


async def test_bursts_fail_the_next_requests_then_recover(
    sim: Simulator, client: httpx.AsyncClient
) -> None:
    sim.configure("erp", ApiConfig(faults=FaultConfig(burst=2, burst_status=503)))
    url = f"{sim.base_url('erp')}/api/orders"
    assert [(await client.get(url)).status_code for _ in range(3)] == [503, 503, 200]
    sim.fail_next("erp", 1, status=500)
    assert [(await client.get(url)).status_code for _ in range(2)] == [500, 200]
    assert sim.counters()["erp"].faults == {"burst": 3}


async def test_a_burst_can_start_after_some_good_requests(
    sim: Simulator, client: httpx.AsyncClient
) -> None:
    url = f"{sim.base_url('erp')}/api/orders"
    sim.fail_next("erp", 1, status=502, after=2)  # the third request: page 3 of a read
    assert [(await client.get(url)).status_code for _ in range(4)] == [200, 200, 502, 200]
    assert sim.counters()["erp"].faults == {"burst": 1}


async def test_random_errors_come_from_the_seeded_rng(client: httpx.AsyncClient) -> None:
    config = CONFIG.with_api("erp", ApiConfig(faults=FaultConfig(error_rate=0.5)))
    runs = []
    for _ in range(2):
        async with run_simulator(config) as sim:
            url = f"{sim.base_url('erp')}/api/products"
            runs.append([(await client.get(url)).status_code for _ in range(12)])
    assert runs[0] == runs[1]
    assert 200 in runs[0] and set(runs[0]) - {200} <= {500, 502, 503} and set(runs[0]) != {200}


async def test_malformed_and_truncated_json(sim: Simulator, client: httpx.AsyncClient) -> None:
    url = f"{sim.base_url('erp')}/api/products"
    good = (await client.get(url)).content
    sim.configure("erp", ApiConfig(faults=FaultConfig(truncated_rate=1.0)))
    truncated = await client.get(url)
    sim.configure("erp", ApiConfig(faults=FaultConfig(malformed_rate=1.0)))
    malformed = await client.get(url)
    for response in (truncated, malformed):
        assert response.status_code == 200
        with pytest.raises(json.JSONDecodeError):
            json.loads(response.content)
    assert good.startswith(truncated.content) and len(truncated.content) < len(good)
    assert malformed.content.startswith(good)


async def test_timeout_fault_holds_until_released_then_504(
    sim: Simulator, client: httpx.AsyncClient
) -> None:
    sim.configure("saferweb", ApiConfig(faults=FaultConfig(timeout_rate=1.0)))
    url = f"{sim.base_url('saferweb')}/v2/usdot/snapshot/{sim.data.dots[0]}"
    pending = asyncio.create_task(client.get(url, headers={"x-api-key": "k"}))
    await sim.wait_for_held("saferweb", 1)
    assert not pending.done()
    sim.release_held()
    assert (await pending).status_code == 504
    assert sim.counters()["saferweb"].faults == {"timeout": 1}


# --- ERP --------------------------------------------------------------------------


async def fetch_all(
    client: httpx.AsyncClient, sim: Simulator, collection: str, style: str, size: int, **extra: str
) -> tuple[list[dict[str, Any]], int]:
    """Every record of a collection the way a client of ``style`` pages; and the request count."""
    base = f"{sim.base_url('erp')}/api/{collection}"
    records: list[dict[str, Any]] = []
    url: str | None = base
    params: dict[str, str] = dict(extra)
    for requests in range(1, 100):
        if style == "page":
            params.update(page=str(requests), per_page=str(size))
        elif style == "offset":
            params.update(offset=str(len(records)), limit=str(size))
        elif style == "link" and requests == 1:
            params.update(style="link", per_page=str(size))
        elif style == "cursor":
            params["limit"] = str(size)
        assert url is not None
        response = await client.get(
            url, params=params if requests == 1 or style != "link" else None
        )
        assert response.status_code == 200, response.text
        body = response.json()
        page = body if style == "link" else body["data"]
        records += page
        if style == "link":
            url = response.links.get("next", {}).get("url")
            if url is None:
                return records, requests
        elif style == "cursor":
            cursor = body["meta"]["next_cursor"]
            if cursor is None:
                return records, requests
            params["cursor"] = cursor
        elif len(page) < size:
            return records, requests
    raise AssertionError("paging did not end")


@pytest.mark.parametrize("style", ["page", "offset", "cursor", "link"])
async def test_erp_paging_styles_with_zero_one_and_many_pages(
    sim: Simulator, client: httpx.AsyncClient, style: str
) -> None:
    # customers: empty; products: 5 (one page); orders: 25 (three); prices: 20 (two, exactly full)
    for collection, pages in (("customers", 1), ("products", 1), ("orders", 3), ("prices", 2)):
        records, requests = await fetch_all(client, sim, collection, style, 10)
        assert records == sim.erp.records(collection), collection
        exact_fit = bool(records) and len(records) % 10 == 0
        extra = 1 if style in ("page", "offset") and exact_fit else 0  # an empty page ends it
        assert requests == pages + extra, collection


async def test_erp_updated_since_and_mutations(sim: Simulator, client: httpx.AsyncClient) -> None:
    orders = sim.erp.records("orders")
    newest = max(r["updated_at"] for r in orders)
    median = sorted(r["updated_at"] for r in orders)[len(orders) // 2]
    recent, _ = await fetch_all(client, sim, "orders", "cursor", 7, updated_since=median)
    assert recent == [r for r in orders if r["updated_at"] >= median]

    created = sim.erp.create("orders", {"status": "new", "total": "1.00", "currency": "USD"})
    changed = sim.erp.update("orders", 3, {"status": "shipped"})
    sim.erp.delete("orders", 4)
    assert created["id"] == 26 and created["updated_at"] > newest
    assert changed["updated_at"] > created["updated_at"] and changed["status"] == "shipped"
    since = (
        datetime.fromisoformat(newest.replace("Z", "+00:00")) + timedelta(seconds=1)
    ).isoformat()
    fresh, _ = await fetch_all(client, sim, "orders", "page", 10, updated_since=since)
    assert [r["id"] for r in fresh] == [3, 26]
    everything, _ = await fetch_all(client, sim, "orders", "offset", 10)
    assert 4 not in {r["id"] for r in everything} and len(everything) == 25


async def test_erp_update_with_an_explicit_stamp_reuses_that_instant(
    sim: Simulator, client: httpx.AsyncClient
) -> None:
    first = sim.erp.update("orders", 1, {"status": "shipped"})
    stamp = datetime.fromisoformat(first["updated_at"].replace("Z", "+00:00"))
    same = sim.erp.update("orders", 2, {"status": "shipped"}, stamp=stamp)
    assert same["updated_at"] == first["updated_at"]
    recent, _ = await fetch_all(client, sim, "orders", "cursor", 10, updated_since=str(stamp))
    assert [r["id"] for r in recent] == [1, 2]
    later = sim.erp.update("orders", 3, {"status": "shipped"})
    assert later["updated_at"] > first["updated_at"]  # fresh stamps stay after it


async def test_erp_bad_parameters_are_400_and_unknown_collections_404(
    sim: Simulator, client: httpx.AsyncClient
) -> None:
    base = f"{sim.base_url('erp')}/api"
    for params in ({"page": "0"}, {"per_page": "5000"}, {"cursor": "zzz"}, {"updated_since": "x"}):
        response = await client.get(f"{base}/orders", params=params)
        assert response.status_code == 400 and "error" in response.json(), params
    both = await client.get(f"{base}/orders", params={"page": "1", "offset": "0"})
    assert both.status_code == 400
    assert (await client.get(f"{base}/invoices")).status_code == 404


# --- counters, determinism, lifecycle ------------------------------------------------


async def test_counters_endpoint_and_reset(sim: Simulator, client: httpx.AsyncClient) -> None:
    await client.get(f"{sim.base_url('erp')}/api/products")
    document = (await client.get(sim.counters_url)).json()
    erp = document["apis"]["erp"]
    assert erp["requests"] == 1 and erp["responses"] == {"200": 1}
    assert erp["peak_concurrency_by_target"] == {"products": 1}
    assert erp["config"]["rate"] is None and set(document["apis"]) == {
        "qcmobile",
        "datahub",
        "saferweb",
        "erp",
    }
    reset = (await client.post(f"{sim.counters_url}/reset")).json()
    assert reset["apis"]["erp"]["requests"] == 0
    assert sim.counters()["erp"].requests == 0


async def test_same_seed_same_answers(client: httpx.AsyncClient) -> None:
    answers = []
    for seed in (5, 5, 6):
        async with run_simulator(CONFIG, seed=seed) as sim:
            dot = sim.data.dots[3]
            carrier = (await qc(client, sim, str(dot))).json()["content"]
            rows = (await soda(client, sim, _S_where=where_dot(dot))).text
            orders = (await client.get(f"{sim.base_url('erp')}/api/orders")).text
            answers.append((carrier, rows, orders))
    assert answers[0] == answers[1] and answers[0] != answers[2]


async def test_shutdown_leaves_no_tasks_and_frees_the_port(client: httpx.AsyncClient) -> None:
    before = asyncio.all_tasks()
    async with run_simulator(CONFIG) as sim:
        url = f"{sim.base_url('erp')}/api/products"
        assert (await client.get(url)).status_code == 200
        port = sim.port
    assert asyncio.all_tasks() == before
    with pytest.raises(httpx.ConnectError):
        await client.get(f"http://127.0.0.1:{port}/erp/api/products")
