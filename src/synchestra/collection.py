"""``http.collection``: mirror a paged JSON collection (an ERP's customers, orders, ...).

Everything comes from the source's ``params`` (see ``docs/collection.md``),
checked before any request: a bad or missing one fails the run with a
:class:`ConfigError` naming it, instead of a half-done read.

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
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import httpx

from synchestra.context import SyncContext
from synchestra.durations import parse_duration
from synchestra.errors import ConfigError, SyncError
from synchestra.events import iso
from synchestra.fetch import ApiError, decode_json, get, server_text, try_json
from synchestra.models import Mode

MAX_PAGES = 100_000
"""Pages one run reads at most: far above any real collection, it stops a provider's loop."""

STYLES = ("page", "offset", "cursor", "link")
TOP_LEVEL = ("path", "kind", "key", "records", "fields", "paging", "watermark", "params")
PAGING_KEYS: dict[str, tuple[str, ...]] = {
    "page": ("style", "param", "size_param", "size", "start"),
    "offset": ("style", "param", "size_param", "size"),
    "cursor": ("style", "param", "next"),
    "link": ("style",),
}
WATERMARK_KEYS = ("field", "param", "lag")
_MISSING = object()

Query = dict[str, str]


# --- params ---------------------------------------------------------------------


@dataclass(frozen=True)
class Paging:
    """How to ask for the next page; ``style`` None means one request."""

    style: str | None = None
    param: str = ""
    size_param: str = ""
    size: int = 0
    start: int = 0
    next: tuple[str, ...] = ()


@dataclass(frozen=True)
class Watermark:
    field: str
    param: str
    lag: timedelta


@dataclass(frozen=True)
class Spec:
    """The validated params of one source."""

    path: str
    kind: str
    key: str
    records: tuple[str, ...] | None
    fields: frozenset[str] | None
    paging: Paging
    watermark: Watermark | None
    query: Query


def parse_spec(params: Mapping[str, Any]) -> Spec:
    """The params as a :class:`Spec`, or ConfigError naming the first bad one."""
    _no_unknown(params, TOP_LEVEL, "params")
    path = _path(params)
    kind = _text(params, "kind", "params")
    key = _text(params, "key", "params")
    records = params.get("records")
    fields = params.get("fields")
    spec = Spec(
        path=path,
        kind=kind,
        key=key,
        records=None if records is None else _dotted(records, "params.records"),
        fields=None if fields is None else _fields(fields, key),
        paging=_paging(params.get("paging")),
        watermark=_watermark(params.get("watermark")),
        query=_query(params.get("params")),
    )
    _no_clash(spec)
    return spec


def _path(params: Mapping[str, Any]) -> str:
    """The collection's path under the API's base URL: never a URL of its own."""
    path = _text(params, "path", "params")
    if "://" in path or path.startswith("//") or "?" in path or "#" in path:
        raise ConfigError(
            f"params.path: {path!r} must be a path under the API's base URL, such as "
            "'/api/orders' (no host; query parameters go in params.params)"
        )
    return path


def _paging(value: Any) -> Paging:
    if value is None:
        return Paging()
    table = _table(value, "params.paging")
    style = table.get("style")
    if style not in STYLES:
        raise ConfigError(f"params.paging.style: one of {', '.join(STYLES)}, not {style!r}")
    _no_unknown(table, PAGING_KEYS[style], "params.paging", f" of style {style}")
    where = "params.paging"
    if style == "page":
        return Paging(
            style,
            param=_text(table, "param", where, "page"),
            size_param=_text(table, "size_param", where, "per_page"),
            size=_whole(table, "size", where, 100, minimum=1),
            start=_whole(table, "start", where, 1, minimum=0),
        )
    if style == "offset":
        return Paging(
            style,
            param=_text(table, "param", where, "offset"),
            size_param=_text(table, "size_param", where, "limit"),
            size=_whole(table, "size", where, 100, minimum=1),
        )
    if style == "cursor":
        next_path = _dotted(_text(table, "next", where), f"{where}.next")
        return Paging(style, param=_text(table, "param", where), next=next_path)
    return Paging(style)


def _watermark(value: Any) -> Watermark | None:
    if value is None:
        return None
    where = "params.watermark"
    table = _table(value, where)
    _no_unknown(table, WATERMARK_KEYS, where)
    lag_text = _text(table, "lag", where, "0s")
    try:
        lag = parse_duration(lag_text)
    except ValueError as error:
        raise ConfigError(f"{where}.lag: {error}") from None
    return Watermark(_text(table, "field", where), _text(table, "param", where), lag)


def _fields(value: Any, key: str) -> frozenset[str]:
    """The fields to keep; the key field is always kept."""
    if not isinstance(value, list) or not value:
        raise ConfigError(f"params.fields: a non-empty list of field names, not {value!r}")
    for name in value:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"params.fields: field names are non-empty strings, not {name!r}")
    return frozenset([*value, key])


def _query(value: Any) -> Query:
    """Fixed query parameters, sent with every request that is not a followed link."""
    if value is None:
        return {}
    table = _table(value, "params.params")
    query: Query = {}
    for name, item in table.items():
        if isinstance(item, bool):
            query[name] = "true" if item else "false"
        elif isinstance(item, str | int | float):
            query[name] = str(item)
        else:
            raise ConfigError(
                f"params.params.{name}: a string, number or boolean, not {type(item).__name__}"
            )
    return query


def _no_clash(spec: Spec) -> None:
    """A query parameter set in two places would be sent with one of the values only."""
    owners: dict[str, str] = {name: f"params.params.{name}" for name in spec.query}
    paging = spec.paging
    claimed = [
        (paging.param, "params.paging.param"),
        (paging.size_param, "params.paging.size_param"),
    ]
    if spec.watermark is not None:
        claimed.append((spec.watermark.param, "params.watermark.param"))
    for name, where in claimed:
        if not name:
            continue
        if name in owners:
            raise ConfigError(f"{where}: {name!r} is also set by {owners[name]}; keep one")
        owners[name] = where


def _table(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: a table, not {value!r}")
    return value


def _no_unknown(table: Mapping[str, Any], known: tuple[str, ...], where: str, of: str = "") -> None:
    """A misspelt key would otherwise be ignored silently (``watermak``: no incremental runs)."""
    for name in table:
        if name not in known:
            raise ConfigError(
                f"{where}.{name}: unknown parameter{of}; expected one of {', '.join(known)}"
            )


def _text(table: Mapping[str, Any], name: str, where: str, default: Any = _MISSING) -> str:
    value = table.get(name, default)
    if value is _MISSING:
        raise ConfigError(f"{where}.{name}: required")
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}.{name}: a non-empty string, not {value!r}")
    return value


def _whole(table: Mapping[str, Any], name: str, where: str, default: int, *, minimum: int) -> int:
    value = table.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{where}.{name}: a whole number of at least {minimum}, not {value!r}")
    return value


def _dotted(value: Any, where: str) -> tuple[str, ...]:
    parts = tuple(value.split(".")) if isinstance(value, str) else ()
    if not parts or not all(parts):
        raise ConfigError(f"{where}: a dotted path such as 'data' or 'meta.next', not {value!r}")
    return parts


# --- requests and pages ---------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One GET: a path or URL, and its query (None: a followed link carries its own)."""

    url: str
    query: Query | None


@dataclass(frozen=True)
class Page:
    number: int
    items: list[Any]
    body: Any
    response: httpx.Response


async def fetch(ctx: SyncContext, api: str, spec: Spec, request: Request, number: int) -> Page:
    """One page: GET, error statuses with the API's own message, the records list."""
    response = await get(ctx.http, api, request.url, request.query)
    if not response.is_success:
        raise ApiError(response.status_code, api, _detail(try_json(response)))
    body = decode_json(response, api)
    return Page(number, records_in(body, spec.records, api, spec.path), body, response)


def _detail(body: Any) -> str | None:
    if isinstance(body, dict):
        return server_text(body.get("error")) or server_text(body.get("message"))
    return None


def records_in(body: Any, path: tuple[str, ...] | None, api: str, where: str) -> list[Any]:
    """The list at ``path`` in ``body`` (the body itself without one), or SyncError naming it."""
    value = dig(body, path or ())
    if isinstance(value, list):
        return value
    if path is None:
        raise SyncError(
            f"the body of {where} from {api} is {_json_kind(value)}, not a list: "
            "set params.records to the dotted path of the list"
        )
    dotted = ".".join(path)
    raise SyncError(
        f"params.records: the body of {where} from {api} has {_json_kind(value)} "
        f"at {dotted!r}, not a list of records"
    )


def _json_kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return "a string" if isinstance(value, str) else f"a {type(value).__name__}"


def dig(body: Any, path: tuple[str, ...]) -> Any:
    """The value at a dotted path, or None when any step is missing."""
    value = body
    for part in path:
        value = value.get(part) if isinstance(value, dict) else None
    return value


# --- paging styles ------------------------------------------------------------------


class Pager(Protocol):
    """A paging style: the first request, then each next one (None: the last page was read)."""

    def first(self) -> Request: ...

    def after(self, page: Page) -> Request | None: ...


@dataclass
class Single:
    """No paging: one request."""

    path: str
    query: Query

    def first(self) -> Request:
        return Request(self.path, self.query)

    def after(self, page: Page) -> Request | None:
        return None


@dataclass
class Numbered:
    """``page`` and ``offset`` styles: a position parameter; a short or empty page ends."""

    path: str
    query: Query
    paging: Paging
    position: int = 0

    def first(self) -> Request:
        self.position = self.paging.start
        return self._request()

    def after(self, page: Page) -> Request | None:
        if len(page.items) < self.paging.size:
            return None
        self.position += 1 if self.paging.style == "page" else len(page.items)
        return self._request()

    def _request(self) -> Request:
        paging = self.paging
        numbers = {paging.param: str(self.position), paging.size_param: str(paging.size)}
        return Request(self.path, {**self.query, **numbers})


@dataclass
class Cursor:
    """``cursor`` style: the body names the next cursor; null, absent or empty ends."""

    path: str
    query: Query
    paging: Paging
    api: str
    seen: set[str] = field(default_factory=set)

    def first(self) -> Request:
        return Request(self.path, self.query)

    def after(self, page: Page) -> Request | None:
        value = dig(page.body, self.paging.next)
        if value is None or value == "":
            return None
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise SyncError(
                f"params.paging.next: {'.'.join(self.paging.next)!r} in page {page.number} "
                f"of {self.path} from {self.api} is {_json_kind(value)}, not a cursor"
            )
        cursor = str(value)
        if cursor in self.seen:
            raise SyncError(
                f"{self.api} sent the cursor {cursor[:60]!r} a second time (page {page.number} "
                f"of {self.path}): an endless paging loop, a bug of the provider"
            )
        self.seen.add(cursor)
        return Request(self.path, {**self.query, self.paging.param: cursor})


@dataclass
class Link:
    """``link`` style: follow ``Link: <...>; rel="next"``, never off the API's base URL."""

    path: str
    query: Query
    base: httpx.URL
    api: str
    seen: set[str] = field(default_factory=set)

    def first(self) -> Request:
        return Request(self.path, self.query)

    def after(self, page: Page) -> Request | None:
        target = page.response.links.get("next", {}).get("url")
        if not target:
            return None
        url = page.response.url.join(target)  # a relative link is relative to this page
        self._check_within_base(url, page.number)
        if str(url) in self.seen:
            raise SyncError(
                f"{self.api} sent the same next link a second time (page {page.number} of "
                f"{self.path}): an endless paging loop, a bug of the provider"
            )
        self.seen.add(str(url))
        return Request(str(url), None)

    def _check_within_base(self, url: httpx.URL, number: int) -> None:
        """Credentials travel with every request: a link must not take them elsewhere."""
        base = self.base
        if (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port):
            origin = f"{url.scheme}://{url.host}" + (f":{url.port}" if url.port else "")
            raise SyncError(
                f"{self.api} sent a next link to another host ({origin}) in page {number} "
                f"of {self.path}: refused, paging never leaves the API's base URL"
            )
        if not url.path.startswith(base.path):
            raise SyncError(
                f"{self.api} sent a next link outside the API's base URL ({base.path}) in "
                f"page {number} of {self.path}: refused"
            )


def new_pager(spec: Spec, query: Query, base: httpx.URL, api: str) -> Pager:
    paging = spec.paging
    if paging.style in ("page", "offset"):
        return Numbered(spec.path, query, paging)
    if paging.style == "cursor":
        return Cursor(spec.path, query, paging, api)
    if paging.style == "link":
        return Link(spec.path, query, base, api)
    return Single(spec.path, query)


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
