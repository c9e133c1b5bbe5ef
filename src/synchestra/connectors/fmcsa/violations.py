"""``fmcsa.violations``: roadside violations from DataHub dataset ``8mt8-2mdr`` (SMS Input).

The rows of one carrier are read page by page (``$where=dot_number='N'``,
``$order=:id`` so pages are stable, ``$limit``/``$offset`` until a short page),
filtered by ``params.window`` on the client (``insp_date`` is text on the
server, so comparing it there would be alphabetical), then stored as records
of kind ``violation`` keyed ``unique_id|viol_code|viol_unit``.

Repeated rows: the dataset has no row id and the same violation can appear
more than once in one inspection. All rows sharing a key become one record
whose ``row_count`` says how many rows it stands for. When those rows are not
identical, ``data`` holds the most frequent one (ties broken by content, never
by server order) and ``variants`` lists every distinct row with its count.
Rows are collected before anything is stored, so the counts are whole even
when repeats fall on different pages; a second run over the same rows
changes nothing.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from synchestra.connectors.context import SyncContext
from synchestra.connectors.fmcsa import params
from synchestra.connectors.fmcsa.alerts import raise_alerts, violation_alerts
from synchestra.connectors.fmcsa.keys import dot_number
from synchestra.connectors.fmcsa.parsing import FLAG, INTEGER, Parser, clean, sms_date, with_parsed
from synchestra.connectors.fmcsa.registry import connector
from synchestra.connectors.fmcsa.socrata import API, fetch_page
from synchestra.connectors.fmcsa.transport import api_name
from synchestra.core.errors import RetryableError, SyncError
from synchestra.core.models import Mode

KIND = "violation"
DATASET = "8mt8-2mdr"
PATH = f"/resource/{DATASET}.json"
KEY_FIELDS = ("unique_id", "viol_code", "viol_unit")
MAX_ROWS = 2_000_000  # far above any carrier's 24 months; stops a server that ignores $offset


@dataclass
class Fetched:
    rows: list[dict[str, Any]] = field(default_factory=list)
    pages: int = 0
    not_rows: int = 0


@connector(API)
async def violations(ctx: SyncContext) -> dict[str, int]:
    """Fetch the target carrier's violations, collapse repeats, store them."""
    dot = dot_number(ctx.target)
    size = params.page_size(ctx.params)
    today = ctx.now().date()
    start = params.window_start(ctx.params, today)
    fetched = await fetch_rows(ctx, api_name(ctx, API), dot, size)
    parsers: Mapping[str, Parser] = {
        "insp_date": sms_date(today),
        "oos_indicator": FLAG,  # "true" / "false"
        "oos_weight": INTEGER,
        "severity_weight": INTEGER,
        "time_weight": INTEGER,
        "total_severity_wght": INTEGER,
    }
    dated = [with_parsed(row, parsers) for row in fetched.rows]
    kept = [row for row in dated if in_window(row, start)]
    records, keyless = collapse(kept)
    counts = await ctx.upsert(KIND, records, key=KEY_FIELDS)
    if ctx.last_success is not None:  # the first sync is the baseline, not news
        raise_alerts(ctx, violation_alerts(counts.changes, counts.created, dot))
    if ctx.mode is Mode.FULL:
        ctx.delete_missing(KIND)
    return {
        "pages": fetched.pages,
        "rows": len(fetched.rows),
        "violations": len(records),
        "repeated_rows": len(kept) - keyless - len(records),
        "outside_window": len(dated) - len(kept),
        "rows_without_key": keyless + fetched.not_rows,
    }


async def fetch_rows(ctx: SyncContext, api: str, dot: str, size: int) -> Fetched:
    """Every row of carrier ``dot``, one page at a time, text cleaned.

    A dataset republished mid-read (its last-modified stamp changes between
    pages) could mix two months' rows: that read is abandoned and retried.
    """
    fetched = Fetched()
    version: str | None = None
    while True:
        query = {
            "$where": f"dot_number='{dot}'",  # dot is 1-8 digits: nothing to escape
            "$order": ":id",
            "$limit": size,
            "$offset": fetched.pages * size,
        }
        page = await fetch_page(ctx, api, PATH, query)
        if fetched.pages and version and page.version and page.version != version:
            raise RetryableError(f"{api} republished dataset {DATASET} during the read")
        version = version or page.version
        fetched.pages += 1
        rows = [clean(row) for row in page.rows if isinstance(row, dict)]
        fetched.not_rows += len(page.rows) - len(rows)
        fetched.rows.extend(rows)
        ctx.progress(fetched.pages)
        ctx.log.debug("page %d: %d rows", fetched.pages, len(page.rows))
        if len(page.rows) < size:
            return fetched
        if len(fetched.rows) > MAX_ROWS:
            raise SyncError(f"{api} sent more than {MAX_ROWS} rows for carrier {dot}; stopped")


def in_window(row: Mapping[str, Any], start: date | None) -> bool:
    """Whether ``row`` is inside the window; a row whose date cannot be read is kept."""
    parsed = row.get("insp_date_iso")
    return start is None or parsed is None or date.fromisoformat(parsed) >= start


def collapse(rows: Iterable[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """One record per key (see the module's rule on repeats), and the rows without a key."""
    groups: dict[tuple[str, ...], Counter[str]] = {}
    keyless = 0
    for row in rows:
        key = tuple(_key_part(row.get(name)) for name in KEY_FIELDS)
        if not all(key):
            keyless += 1
            continue
        canonical = json.dumps(row, sort_keys=True, separators=(",", ":"))
        groups.setdefault(key, Counter())[canonical] += 1
    return [_record(counts) for counts in groups.values()], keyless


def _record(counts: Counter[str]) -> dict[str, Any]:
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    data: dict[str, Any] = json.loads(ranked[0][0])
    data["row_count"] = sum(counts.values())
    if len(ranked) > 1:
        data["variants"] = [
            {"row": json.loads(text), "count": count} for text, count in sorted(counts.items())
        ]
    return data


def _key_part(value: Any) -> str:
    if isinstance(value, str):
        return value
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else ""
