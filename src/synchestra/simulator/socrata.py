"""Answer SoQL queries over the simulated ``8mt8-2mdr`` dataset, spelled like SODA 2.x.

Rows are in ``:id`` order (carrier by carrier, in DOT order) unless ``$order``
says otherwise; ordering by a column compares text, as Socrata does for these
all-text columns (so ``insp_date`` sorts lexically). Queries pinned to DOT
numbers only touch those carriers, and ``:id``-ordered pages skip whole
carriers by their row counts, so paging a large fleet stays cheap.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, time
from email.utils import format_datetime
from typing import Any

from synchestra.simulator.dataset import FmcsaData
from synchestra.simulator.soql import ROW_ID, OrderKey, SoqlQuery
from synchestra.simulator.violations import COLUMNS, CarrierSlot

DATASET_ID = "8mt8-2mdr"
DOT_COLUMN = "dot_number"

Row = dict[str, str]


def candidate_slots(data: FmcsaData, query: SoqlQuery) -> list[CarrierSlot]:
    """The carriers a query can touch, in ``:id`` order."""
    pinned = query.values_of(DOT_COLUMN)
    if pinned is None:
        return list(data.slots())
    dots = sorted(int(value) for value in pinned if value.isdigit() and value == str(int(value)))
    return [slot for dot in dots if (slot := data.slot(dot)) is not None]


def run_query(data: FmcsaData, query: SoqlQuery) -> list[Row]:
    """The rows (or the one count row) a query returns."""
    slots = candidate_slots(data, query)
    if query.count:
        return [{"count": str(_count(data, query, slots))}]
    if query.order in ((), (OrderKey(ROW_ID),)):
        rows = _page_in_id_order(data, query, slots)
    else:
        rows = _page_sorted(data, query, slots)
    return [_project(row, query.select) for row in rows]


def _needs_scan(query: SoqlQuery) -> bool:
    """Whether rows must be looked at one by one (a filter beyond the DOT pin)."""
    return any(cond.column != DOT_COLUMN or cond.op == "!=" for cond in query.where)


def _matching(data: FmcsaData, query: SoqlQuery, slot: CarrierSlot) -> Iterator[Row]:
    for row in data.slot_rows(slot):
        if all(cond.matches(row) for cond in query.where):
            yield row


def _count(data: FmcsaData, query: SoqlQuery, slots: list[CarrierSlot]) -> int:
    if not _needs_scan(query):
        return sum(slot.rows for slot in slots)
    return sum(1 for slot in slots for _ in _matching(data, query, slot))


def _page_in_id_order(data: FmcsaData, query: SoqlQuery, slots: list[CarrierSlot]) -> list[Row]:
    skip = query.offset
    page: list[Row] = []
    scan = _needs_scan(query)
    for slot in slots:
        if len(page) >= query.limit:
            break
        if not scan and skip >= slot.rows:
            skip -= slot.rows
            continue
        for row in _matching(data, query, slot):
            if skip:
                skip -= 1
            elif len(page) < query.limit:
                page.append(row)
            else:
                break
    return page


def _page_sorted(data: FmcsaData, query: SoqlQuery, slots: list[CarrierSlot]) -> list[Row]:
    numbered = [
        ((slot.index, position), row)
        for slot in slots
        for position, row in enumerate(data.slot_rows(slot))
        if all(cond.matches(row) for cond in query.where)
    ]
    numbered.sort(key=lambda item: item[0])
    for key in reversed(query.order):  # stable sorts, last key first
        if key.column == ROW_ID:
            numbered.sort(key=lambda item: item[0], reverse=key.descending)
        else:
            column = key.column
            numbered.sort(key=lambda item: item[1].get(column, ""), reverse=key.descending)
    return [row for _, row in numbered[query.offset : query.offset + query.limit]]


def _project(row: Row, select: tuple[str, ...] | None) -> Row:
    """The selected columns; absent (null) values stay absent, as Socrata omits them."""
    if select is None:
        return dict(row)
    return {name: row[name] for name in select if name in row}


def render_rows(rows: list[Row]) -> str:
    """SODA 2.x's layout: one compact object per line, commas leading, ``[]`` when empty."""
    if not rows:
        return "[]\n"
    lines = [json.dumps(row, separators=(",", ":"), ensure_ascii=False) for row in rows]
    return "[" + "\n,".join(lines) + "]\n"


def render_error(body: dict[str, Any]) -> str:
    """Socrata's pretty-printed error JSON (``"code" : "..."``)."""
    return json.dumps(body, indent=2, separators=(",", " : "), ensure_ascii=False) + "\n"


def soda_headers(data: FmcsaData, query: SoqlQuery) -> dict[str, str]:
    """The SODA2 headers clients may look at (fields, types, modification times)."""
    if query.count:
        fields, types = ["count"], ["number"]
    else:
        fields = list(query.select or COLUMNS)
        types = ["text"] * len(fields)
    modified = format_datetime(datetime.combine(data.config.as_of, time(), tzinfo=UTC), usegmt=True)
    return {
        "X-SODA2-Fields": json.dumps(fields, separators=(",", ":")),
        "X-SODA2-Types": json.dumps(types, separators=(",", ":")),
        "X-SODA2-Data-Out-Of-Date": "false",
        "X-SODA2-Truth-Last-Modified": modified,
        "Last-Modified": modified,
    }
