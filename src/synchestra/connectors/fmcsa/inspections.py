"""``fmcsa.inspections``: inspection and out-of-service figures from SaferWebAPI.

``GET /v2/usdot/snapshot/{dot}`` (the key goes in the ``x-api-key`` header,
added by the API's auth) answers with the SAFER Company Snapshot as JSON. No
verbatim SaferWebAPI payload is public; the shape read here is python-safer's
``Company`` dict, which the evidence says SaferWebAPI serves (FORMATS.md §3).

One record of kind ``inspection`` per target, keyed by the USDOT number. Its
``data`` keeps the snapshot's names: the identity and safety-rating fields,
``latest_update`` (SAFER's "as of" date), the US inspection table
(``us_inspections``, or ``united_states_inspections`` when only that one is
sent: the same table with counts as text) and ``united_states_crashes``, each
value with its parsed value beside it. Each inspection category (``vehicle``,
``driver``, ``hazmat``, ``iep``) also gets ``out_of_service_rate``: out of
service / inspections x 100 at full precision (SAFER rounds its percentage to
one decimal), null without inspections.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from synchestra.connectors.context import SyncContext
from synchestra.connectors.fmcsa.alerts import raise_alerts, status_alerts
from synchestra.connectors.fmcsa.keys import dot_number
from synchestra.connectors.fmcsa.parsing import (
    INTEGER,
    PERCENT,
    US_DATE,
    Parser,
    clean,
    to_int,
    with_parsed,
)
from synchestra.connectors.fmcsa.registry import connector
from synchestra.connectors.fmcsa.transport import CarrierNotFound, api_name
from synchestra.core.errors import HTTPFailure, SyncError
from synchestra.upstream.fetch import get, server_text

API = "saferweb"
KIND = "inspection"
INSPECTION_TABLES = ("us_inspections", "united_states_inspections")  # first one present wins
CRASHES = "united_states_crashes"
FIELDS = (
    "usdot",
    "legal_name",
    "dba_name",
    "entity_type",
    "operating_status",
    "usdot_status",
    "operating_authority_status",
    "out_of_service_date",
    "safety_rating",
    "safety_type",
    "safety_rating_date",
    "safety_review_date",
    "latest_update",
)
PARSERS: Mapping[str, Parser] = {  # SAFER dates are MM/DD/YYYY
    "out_of_service_date": US_DATE,
    "safety_rating_date": US_DATE,
    "safety_review_date": US_DATE,
    "latest_update": US_DATE,
}
CATEGORY_PARSERS: Mapping[str, Parser] = {
    "inspections": INTEGER,
    "out_of_service": INTEGER,
    "out_of_service_percent": PERCENT,  # "13.6%"
    "national_average": PERCENT,  # "20.72%" or "N/A"
}
CRASH_PARSERS: Mapping[str, Parser] = {
    name: INTEGER for name in ("fatal", "injury", "tow", "total")
}
_MESSAGE_FIELDS = ("message", "error", "detail")


@connector(API)
async def inspections(ctx: SyncContext) -> None:
    """Fetch the target carrier's snapshot and store its inspection figures."""
    dot = dot_number(ctx.target)
    api = api_name(ctx, API)
    snapshot = await fetch_snapshot(ctx, api, dot)
    counts = await ctx.upsert(KIND, [inspection_record(snapshot, dot, api)], key=lambda _row: dot)
    raise_alerts(ctx, status_alerts(counts.changes, dot))


async def fetch_snapshot(ctx: SyncContext, api: str, dot: str) -> dict[str, Any]:
    """The snapshot object; 404 or an empty body means the carrier is unknown."""
    response = await get(ctx.http, api, f"/v2/usdot/snapshot/{dot}")
    if response.status_code == 404:
        raise CarrierNotFound(dot, api)
    if response.status_code >= 400:
        raise HTTPFailure(response.status_code, api, _message(response))
    try:
        body = response.json()
    except ValueError:
        raise SyncError(f"invalid JSON from {api}") from None
    if not body:
        raise CarrierNotFound(dot, api)
    if not isinstance(body, dict):
        raise SyncError(f"unexpected response from {api}: the snapshot is not an object")
    cleaned: dict[str, Any] = clean(body)
    return cleaned


def inspection_record(snapshot: Mapping[str, Any], dot: str, api: str) -> dict[str, Any]:
    """The record data: identity, rating and dates, inspection table and crashes, parsed."""
    answered = to_int(snapshot.get("usdot"))
    if answered is not None and str(answered) != dot:
        raise SyncError(f"{api} answered with carrier {answered} when asked for {dot}")
    table = next((name for name in INSPECTION_TABLES if isinstance(snapshot.get(name), dict)), None)
    if table is None:
        raise SyncError(f"unexpected response from {api}: no inspection table in the snapshot")
    data = with_parsed({name: snapshot[name] for name in FIELDS if name in snapshot}, PARSERS)
    data[table] = {
        category: category_figures(figures)
        for category, figures in snapshot[table].items()
        if isinstance(figures, dict)
    }
    crashes = snapshot.get(CRASHES)
    if isinstance(crashes, dict):
        data[CRASHES] = with_parsed(crashes, CRASH_PARSERS)
    return data


def category_figures(figures: Mapping[str, Any]) -> dict[str, Any]:
    """One inspection category with parsed counts and percentages and the exact OOS rate."""
    parsed = with_parsed(figures, CATEGORY_PARSERS)
    count, out = parsed["inspections_num"], parsed["out_of_service_num"]
    parsed["out_of_service_rate"] = out / count * 100 if count and out is not None else None
    return parsed


def _message(response: httpx.Response) -> str | None:
    """The error's explanation, if the body is JSON with a message (401/403: a bad key)."""
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return server_text(body)
    return next(
        (text for name in _MESSAGE_FIELDS if (text := server_text(body.get(name))) is not None),
        None,
    )
