"""``http.collection``: mirror a paged JSON collection (an ERP's customers, orders, ...).

Everything comes from the source's ``params`` (see ``docs/collection.md``),
checked before any request (:mod:`.spec`); pages are read by :mod:`.paging`.

Modes (``auto`` is resolved by the engine before the run starts):

* **full** reads every page without the watermark parameter and asks the
  engine to mark deleted the records it did not see; the engine does so only
  when the run succeeds, so a read that fails half-way deletes nothing.
* **incremental** sends ``watermark.param = stored watermark - lag`` and
  deletes nothing. The watermark itself is sent, never moved past: a server
  that filters "at or after" then returns the records stamped exactly at it
  again (they count as unchanged) rather than losing one written in the same
  instant after the last read. Without a ``watermark`` config it reads
  everything, like full, but deletes nothing.

Both modes store, on success only, the largest ``watermark.field`` seen
(compared as instants) as the new watermark. Every paging loop is bounded: a
provider that repeats a cursor or a link, sends the same page twice in a row,
or never ends after :data:`MAX_PAGES` pages fails the run, naming the fault.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from synchestra.connectors.collection.paging import MAX_PAGES, Pager, Request, fetch, new_pager
from synchestra.connectors.collection.spec import Spec, parse_spec
from synchestra.connectors.context import SyncContext
from synchestra.core.durations import iso
from synchestra.core.errors import ConfigError, SyncError
from synchestra.core.models import Mode

__all__ = ["collection"]


# --- watermarks -------------------------------------------------------------------------


def parse_instant(value: Any) -> datetime | None:
    """An ISO 8601 string as an aware UTC instant (naive: UTC); None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def format_instant(moment: datetime) -> str:
    """ISO 8601 UTC with a ``Z``, as the watermark is stored and sent."""
    return str(iso(moment.astimezone(UTC)))


def since_of(ctx: SyncContext, spec: Spec) -> datetime | None:
    """What an incremental run asks for: the stored watermark minus the lag; else None."""
    if ctx.mode is not Mode.INCREMENTAL or spec.watermark is None:
        return None
    stored = parse_instant(ctx.watermark)
    if stored is None:
        if ctx.watermark is not None:
            ctx.log.warning("stored watermark %r is not an ISO 8601 instant", ctx.watermark)
        return None
    return stored - spec.watermark.lag


# --- the connector ------------------------------------------------------------------------


@dataclass
class Tally:
    """What a run read, for its result and its new watermark."""

    pages: int = 0
    records: int = 0
    without_key: int = 0
    without_watermark: int = 0
    newest: datetime | None = None


async def collection(ctx: SyncContext) -> dict[str, Any]:
    """Read the collection page by page, upserting each; then delete and advance per the mode."""
    spec = parse_spec(ctx.params)
    if ctx.target is not None:
        raise ConfigError(
            "http.collection mirrors one collection, not one per target: set per_target = false"
        )
    if ctx.api is None:
        raise ConfigError(f"source {ctx.source!r}: http.collection needs an api (its base URL)")
    since = since_of(ctx, spec)
    query = dict(spec.query)
    if since is not None and spec.watermark is not None:
        query[spec.watermark.param] = format_instant(since)
    tally = await read_all(ctx, spec, new_pager(spec, query, ctx.http.base_url, ctx.api))
    if ctx.mode is not Mode.INCREMENTAL:
        ctx.delete_missing(spec.kind)
    _advance_watermark(ctx, spec, tally)
    return {
        "mode": ctx.mode.value,
        "pages": tally.pages,
        "records": tally.records,
        "records_without_key": tally.without_key,
        "records_without_watermark": tally.without_watermark,
        "since": None if since is None else format_instant(since),
    }


async def read_all(ctx: SyncContext, spec: Spec, pager: Pager) -> Tally:
    """Every page, each upserted as it arrives (committed at once, so progress is kept)."""
    api = ctx.api or "api"
    tally = Tally()
    request: Request | None = pager.first()
    previous: list[Any] | None = None
    while request is not None:
        if tally.pages >= MAX_PAGES:
            raise SyncError(
                f"stopped after {MAX_PAGES} pages of {spec.path} from {api}: the collection "
                "never ended (a paging loop of the provider?)"
            )
        page = await fetch(ctx, api, spec, request, tally.pages + 1)
        tally.pages += 1
        if page.items and page.items == previous:
            raise SyncError(
                f"{api} sent the same {len(page.items)} records as pages {page.number - 1} and "
                f"{page.number} of {spec.path}: its paging does not advance (check params.paging)"
            )
        await store_page(ctx, spec, page.items, tally)
        ctx.progress(tally.records)
        ctx.log.debug("page %d: %d records", page.number, len(page.items))
        previous = page.items
        request = pager.after(page)
    return tally


async def store_page(ctx: SyncContext, spec: Spec, items: list[Any], tally: Tally) -> None:
    """Upsert a page's records; those without a usable key are skipped and counted."""
    rows: list[dict[str, Any]] = []
    for item in items:
        if not isinstance(item, dict) or not _usable_key(item.get(spec.key)):
            tally.without_key += 1
            continue
        _note_stamp(spec, item, tally)
        rows.append(_kept(item, spec.fields))
    if rows:
        await ctx.upsert(spec.kind, rows, key=spec.key)
    tally.records += len(rows)


def _usable_key(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value)
    return isinstance(value, int) and not isinstance(value, bool)


def _kept(item: dict[str, Any], fields: frozenset[str] | None) -> dict[str, Any]:
    if fields is None:
        return item
    return {name: value for name, value in item.items() if name in fields}


def _note_stamp(spec: Spec, item: Mapping[str, Any], tally: Tally) -> None:
    """Track the newest watermark field (read before ``fields`` may drop it)."""
    if spec.watermark is None:
        return
    stamp = parse_instant(item.get(spec.watermark.field))
    if stamp is None:
        tally.without_watermark += 1
    elif tally.newest is None or stamp > tally.newest:
        tally.newest = stamp


def _advance_watermark(ctx: SyncContext, spec: Spec, tally: Tally) -> None:
    """The largest stamp seen becomes the watermark (the engine stores it on success only).

    A full run saw everything, so its newest stamp is the truth; an incremental
    one never moves the watermark back (a lag re-reads older records). No
    record seen: the stored watermark stays.
    """
    if spec.watermark is None or tally.newest is None:
        return
    newest = tally.newest
    stored = parse_instant(ctx.watermark)
    if ctx.mode is Mode.INCREMENTAL and stored is not None:
        newest = max(newest, stored)
    ctx.set_watermark(format_instant(newest))
