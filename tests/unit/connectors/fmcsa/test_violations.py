"""fmcsa.violations against DataHub (Socrata) rows: paging, repeats, windows, errors."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from fmcsa_helpers import APP_TOKEN, FakeFmcsa, opened, records, sample, sync_one
from synchestra.core.models import RunState

ROWS_1021580 = "datahub-socrata/8mt8-2mdr_violations_dot1021580_captured-2026-09-08.json"
ROW_511440 = "datahub-socrata/8mt8-2mdr_violation_row_dot511440_captured-2026-09-14.json"
ERRORS = "datahub-socrata/socrata_error_bodies_real_examples.json"
PATH = "/resource/8mt8-2mdr.json"
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


class Dataset:
    """A fake ``8mt8-2mdr``: serves ``rows`` for ``$where=dot_number='N'`` by ``$limit/$offset``."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.queries: list[dict[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        query = dict(request.url.params)
        self.queries.append(query)
        assert query["$order"] == ":id"
        dot = query["$where"].removeprefix("dot_number='").removesuffix("'")
        mine = [row for row in self.rows if row["dot_number"] == dot]
        start, limit = int(query.get("$offset", "0")), int(query["$limit"])
        return httpx.Response(200, json=mine[start : start + limit])


def generated(dot: str, count: int) -> list[dict[str, Any]]:
    """``count`` distinct violation rows of carrier ``dot``, in the real rows' shape."""
    template = sample(ROWS_1021580)[0]
    rows = []
    for index in range(count):
        inspection, unit = divmod(index, 4)
        rows.append(
            {
                **template,
                "unique_id": str(800_000_000 + inspection),
                "dot_number": dot,
                "viol_code": f"3962{index % 7}",
                "viol_unit": ("1", "2", "D", "C")[unit],
                "insp_date": f"{1 + index % 28:02d}-{MONTHS[index % 12]}-{24 + index % 2}",
            }
        )
    return rows


def key_of(row: dict[str, Any]) -> str:
    return f"{row['unique_id']}|{row['viol_code']}|{row['viol_unit']}"


async def test_the_real_rows_with_parsed_values(tmp_path: Path) -> None:
    dataset = Dataset(sample(ROWS_1021580) + sample(ROW_511440))
    fake = FakeFmcsa()
    fake.route(PATH, dataset)
    async with opened(tmp_path, fake, targets=["dot:1021580"]) as orc:
        run = await sync_one(orc, "violations", "dot:1021580")
        stored = await records(orc, "violation", "dot:1021580")
    assert run.state is RunState.SUCCEEDED, run.error
    assert orc.sources["violations"].api == "datahub"
    (request,) = fake.requests
    assert request.url.path == PATH
    assert request.headers["X-App-Token"] == APP_TOKEN
    assert dataset.queries == [
        {"$where": "dot_number='1021580'", "$order": ":id", "$limit": "1000", "$offset": "0"}
    ]
    assert sorted(stored) == ["762095205|39383CELGPB|1", "762377967|39383CELGPB|1"]
    data = stored["762095205|39383CELGPB|1"]
    assert data == {
        **sample(ROWS_1021580)[0],
        "insp_date_iso": "2025-05-14",
        "oos_indicator_bool": True,
        "oos_weight_num": 2,
        "severity_weight_num": 1,
        "time_weight_num": 1,
        "total_severity_wght_num": 3,
        "row_count": 1,
    }
    assert run.result["pages"] == 1 and run.result["repeated_rows"] == 0


async def test_paging_loses_nothing_collapses_repeats_and_a_second_run_is_unchanged(
    tmp_path: Path,
) -> None:
    rows = generated("1021580", 2300)
    # exact repeats, some on other pages than their original (row 3 again at the end)
    repeats = [rows[3], rows[3], rows[10], rows[1999]]
    # one key cited twice with different content: OOS once, not OOS once
    variant = {**rows[42], "oos_indicator": "false", "oos_weight": "0"}
    everything = [*rows[:1000], repeats[0], *rows[1000:], *repeats[1:], variant]
    noise = generated("511440", 30)  # another carrier's rows are never asked for
    dataset = Dataset(noise + everything)
    fake = FakeFmcsa()
    fake.route(PATH, dataset)
    sources = {"violations": {"params": {"page_size": 500}}}
    async with opened(tmp_path, fake, sources=sources, targets=["dot:1021580"]) as orc:
        with orc.bus.subscribe(["run.progress"]) as progress:
            first = await sync_one(orc, "violations", "dot:1021580")
            pages = [progress.get_nowait() for _ in range(5)]
        stored = await records(orc, "violation", "dot:1021580")
        second = await sync_one(orc, "violations", "dot:1021580")

    assert len(everything) == 2305
    assert [int(q["$offset"]) for q in dataset.queries[:5]] == [0, 500, 1000, 1500, 2000]
    assert {q["$limit"] for q in dataset.queries} == {"500"}
    assert [event.data["done"] for event in pages if event] == [1, 2, 3, 4, 5]
    assert first.result == {
        "created": 2300,
        "updated": 0,
        "unchanged": 0,
        "deleted": 0,
        "pages": 5,
        "rows": 2305,
        "violations": 2300,
        "repeated_rows": 5,
        "outside_window": 0,
        "rows_without_key": 0,
    }
    assert sorted(stored) == sorted(key_of(row) for row in rows)  # nothing lost or doubled
    counts = Counter(key_of(row) for row in everything)
    assert {key: data["row_count"] for key, data in stored.items()} == dict(counts)
    assert stored[key_of(rows[3])]["row_count"] == 3
    assert "variants" not in stored[key_of(rows[3])]
    mixed = stored[key_of(rows[42])]
    assert mixed["row_count"] == 2
    assert [(v["row"]["oos_indicator"], v["count"]) for v in mixed["variants"]] == [
        ("false", 1),
        ("true", 1),
    ]
    assert mixed["oos_indicator"] == "false"  # tie: the first by content, not by server order
    assert second.state is RunState.SUCCEEDED
    assert (second.result["created"], second.result["updated"]) == (0, 0)
    assert (second.result["unchanged"], second.result["deleted"]) == (2300, 0)


async def test_the_order_of_rows_on_the_server_does_not_change_the_records(
    tmp_path: Path,
) -> None:
    rows = generated("1021580", 40)
    rows += [{**rows[5], "oos_indicator": "false"}, rows[7]]
    dataset = Dataset(rows)
    fake = FakeFmcsa()
    fake.route(PATH, dataset)
    async with opened(tmp_path, fake, targets=["dot:1021580"]) as orc:
        await sync_one(orc, "violations", "dot:1021580")
        dataset.rows = list(reversed(rows))  # Socrata's :id order after a republish
        again = await sync_one(orc, "violations", "dot:1021580")
    assert (again.result["created"], again.result["updated"], again.result["unchanged"]) == (
        0,
        0,
        40,
    )


async def test_a_full_page_at_the_end_needs_one_more_empty_page(tmp_path: Path) -> None:
    dataset = Dataset(generated("1021580", 1000))
    fake = FakeFmcsa()
    fake.route(PATH, dataset)
    sources = {"violations": {"params": {"page_size": 500}}}
    async with opened(tmp_path, fake, sources=sources, targets=["dot:1021580"]) as orc:
        run = await sync_one(orc, "violations", "dot:1021580")
    assert [q["$offset"] for q in dataset.queries] == ["0", "500", "1000"]
    assert (run.result["pages"], run.result["created"]) == (3, 1000)


async def test_violations_gone_from_the_source_are_deleted_by_a_full_run_only(
    tmp_path: Path,
) -> None:
    rows = generated("1021580", 10)
    dataset = Dataset(rows)
    fake = FakeFmcsa()
    fake.route(PATH, dataset)
    async with opened(tmp_path, fake, targets=["dot:1021580"]) as orc:
        await sync_one(orc, "violations", "dot:1021580")
        dataset.rows = rows[:6]  # the monthly refresh aged four out
        incremental = await sync_one(orc, "violations", "dot:1021580", mode="incremental")
        full = await sync_one(orc, "violations", "dot:1021580", mode="full")
        left = await records(orc, "violation", "dot:1021580")
    assert incremental.result["deleted"] == 0
    assert (full.result["deleted"], full.result["unchanged"]) == (4, 6)
    assert sorted(left) == sorted(key_of(row) for row in rows[:6])


@pytest.mark.parametrize(
    ("window", "kept"),
    [
        (None, 3),
        ("3y", 3),
        ("2y", 2),  # from 2024-01-05: 28-AUG-24 and 14-MAY-25
        ("365d", 1),  # from 2025-01-05
        ("26w", 0),  # from 2025-07-07
    ],
)
async def test_the_date_window_is_applied_on_the_client(
    tmp_path: Path, window: str | None, kept: int
) -> None:
    rows = sample(ROWS_1021580)[:1] + [
        {**row, "dot_number": "1021580"} for row in sample(ROW_511440)
    ]
    rows.append({**rows[0], "unique_id": "1", "insp_date": "30-DEC-23"})
    fake = FakeFmcsa()
    fake.route(PATH, Dataset(rows))
    params = {"window": window} if window else {}
    sources = {"violations": {"params": params}}
    async with opened(tmp_path, fake, sources=sources, targets=["dot:1021580"]) as orc:
        run = await sync_one(orc, "violations", "dot:1021580")  # the fake clock: 2026-01-05
    assert (run.result["violations"], run.result["outside_window"]) == (kept, 3 - kept)
    assert "$where" in fake.requests[0].url.params
    assert "insp_date" not in fake.requests[0].url.params["$where"]


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"page_size": 0}, "params.page_size: invalid value 0"),
        ({"page_size": 50_001}, "params.page_size: invalid value 50001"),
        ({"page_size": "500"}, "params.page_size: invalid value '500'"),
        ({"window": "3x"}, "params.window: invalid window '3x'"),
        ({"window": 3}, "params.window: invalid window 3"),
    ],
)
async def test_bad_params_fail_before_any_request(
    tmp_path: Path, params: dict[str, Any], error: str
) -> None:
    fake = FakeFmcsa()
    sources = {"violations": {"params": params}}
    async with opened(tmp_path, fake, sources=sources, targets=["dot:1021580"]) as orc:
        run = await sync_one(orc, "violations", "dot:1021580")
    assert run.state is RunState.FAILED
    assert run.error is not None and run.error.startswith(error)
    assert fake.requests == []


def socrata_error(index: int) -> bytes:
    entry = sample(ERRORS)[index]
    text = entry.get("body_text_verbatim")
    return text.encode() if text else json.dumps(entry["body"]).encode()


@pytest.mark.parametrize(
    ("status", "body", "error", "attempts"),
    [
        (
            400,
            socrata_error(3),
            "HTTP 400 from datahub: No such column: states (query.soql.no-such-column)",
            1,
        ),
        (
            400,
            socrata_error(0),
            "HTTP 400 from datahub: Unrecognized arguments [docket_number]",
            1,
        ),
        (
            400,
            socrata_error(2),
            'HTTP 400 from datahub: Could not parse SoQL query "select * limit bjb" at line 1 '
            "character 16 (query.compiler.malformed)",
            1,
        ),
        (403, b"<html>forbidden</html>", "HTTP 403 from datahub", 1),
        (
            500,
            socrata_error(5),
            "HTTP 500 from datahub: Only simple comparison filters are "
            "allowed (query.execution.queryTooComplex)",
            2,
        ),
        (503, b"", "HTTP 503 from datahub", 2),
        (202, b"", "HTTP 202 from datahub: the query is still being processed", 2),
        (
            200,
            b'{"error": true, "message": "Unrecognized arguments [x]"}',
            "error from datahub: Unrecognized arguments [x]",
            1,
        ),
        (200, b"{}", "unexpected response from datahub: expected a list of rows", 1),
        (200, b"<html>", "invalid JSON from datahub", 1),
    ],
)
async def test_socrata_errors_are_clear_and_only_transient_ones_are_retried(
    tmp_path: Path, status: int, body: bytes, error: str, attempts: int
) -> None:
    fake = FakeFmcsa()
    fake.route(PATH, httpx.Response(status, content=body))
    sources = {"violations": {"retry": {"attempts": 2, "backoff": "0s"}}}
    async with opened(tmp_path, fake, sources=sources, targets=["dot:1021580"]) as orc:
        run = await sync_one(orc, "violations", "dot:1021580")
    assert (run.state, run.error, run.attempts) == (RunState.FAILED, error, attempts)


async def test_no_results_error_ends_the_paging(tmp_path: Path) -> None:
    rows = generated("1021580", 4)
    fake = FakeFmcsa()

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.params["$offset"] == "0":
            return httpx.Response(200, json=rows)
        return httpx.Response(400, content=socrata_error(4))  # "No results found."

    fake.route(PATH, answer)
    sources = {"violations": {"params": {"page_size": 4}}}
    async with opened(tmp_path, fake, sources=sources, targets=["dot:1021580"]) as orc:
        run = await sync_one(orc, "violations", "dot:1021580")
    assert (run.state, run.result["pages"], run.result["created"]) == (RunState.SUCCEEDED, 2, 4)


async def test_a_dataset_republished_mid_read_is_read_again(tmp_path: Path) -> None:
    rows = generated("1021580", 6)
    fake = FakeFmcsa()
    stamps = iter(["Tue, 12 Aug 2026 10:00:00 GMT", "Sat, 13 Sep 2026 10:00:00 GMT"] * 2)

    def answer(request: httpx.Request) -> httpx.Response:
        start = int(request.url.params["$offset"])
        headers = {"X-SODA2-Truth-Last-Modified": next(stamps)}
        return httpx.Response(200, json=rows[start : start + 4], headers=headers)

    fake.route(PATH, answer)
    sources = {
        "violations": {"params": {"page_size": 4}, "retry": {"attempts": 2, "backoff": "0s"}}
    }
    async with opened(tmp_path, fake, sources=sources, targets=["dot:1021580"]) as orc:
        run = await sync_one(orc, "violations", "dot:1021580")
        assert await records(orc, "violation") == {}
    assert run.error == "datahub republished dataset 8mt8-2mdr during the read"
    assert run.attempts == 2


async def test_rows_without_a_key_are_counted_not_stored(tmp_path: Path) -> None:
    rows: list[Any] = generated("1021580", 3)
    broken = {k: v for k, v in rows[0].items() if k != "viol_unit"}
    fake = FakeFmcsa()
    fake.route(PATH, httpx.Response(200, json=[*rows, broken, "garbage"]))
    async with opened(tmp_path, fake, targets=["dot:1021580"]) as orc:
        run = await sync_one(orc, "violations", "dot:1021580")
    assert (run.result["violations"], run.result["rows_without_key"]) == (3, 2)
