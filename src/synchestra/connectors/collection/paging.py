"""Reading a collection page by page: one pager per paging style, each loop bounded.

A provider that repeats a cursor or a link, sends the same page twice in a
row, or never ends after :data:`MAX_PAGES` pages fails the run, naming the
fault; a ``Link`` to another host (or outside the API's base path) is refused,
since the credential goes with every request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from synchestra.connectors.collection.spec import Paging, Query, Spec
from synchestra.connectors.context import SyncContext
from synchestra.core.errors import HTTPFailure, SyncError
from synchestra.upstream.fetch import decode_json, get, server_text, try_json

MAX_PAGES = 100_000
"""Pages one run reads at most: far above any real collection, it stops a provider's loop."""


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
        raise HTTPFailure(response.status_code, api, _detail(try_json(response)))
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
