"""The ERP's four paging styles, chosen per request by the client's parameters.

* ``page`` + ``per_page`` (pages from 1): ``{"data", "meta": {"page", "per_page", "total"}}``
* ``offset`` + ``limit``: ``{"data", "meta": {"offset", "limit", "total"}}``
* ``cursor`` (+ ``limit``): ``{"data", "meta": {"next_cursor", "limit"}}``, null at the end
* ``style=link`` (+ ``per_page``): a bare JSON list and ``Link: <...>; rel="next"``
  while more records follow

Page and offset styles end at a short or empty page; cursor and link styles
say when they end. Records are always in id order; cursor and link pages
continue after the last id seen, so they stay consistent while records change.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Style = Literal["page", "offset", "cursor", "link"]
STYLES: tuple[Style, ...] = ("page", "offset", "cursor", "link")
DEFAULT_SIZE = 100
MAX_SIZE = 1000

Record = dict[str, Any]


class PagingError(ValueError):
    """The paging parameters are unusable; the message says which and why."""


@dataclass(frozen=True)
class Page:
    """One response: its JSON body and any extra headers."""

    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def choose_style(params: Mapping[str, str], forced: Style | None = None) -> Style:
    """The style a request asks for: the path's, else ``style=``, else by its parameters.

    ``cursor`` means cursor, ``page`` or ``per_page`` page, ``offset`` offset;
    with none of them (``limit`` alone, or nothing) the answer is cursor style.
    """
    explicit = _style_named(params.get("style"))
    markers: tuple[tuple[Style, str], ...] = (
        ("cursor", "cursor"),
        ("page", "page"),
        ("offset", "offset"),
    )
    wanted = [style for style, name in markers if name in params]
    if len(wanted) > 1:
        raise PagingError(f"parameters of several paging styles given: {', '.join(wanted)}")
    if forced is not None:
        return forced
    if explicit is not None:
        return explicit
    if wanted:
        return wanted[0]
    return "page" if "per_page" in params else "cursor"


def _style_named(text: str | None) -> Style | None:
    if text is None:
        return None
    for style in STYLES:
        if style == text:
            return style
    raise PagingError(f"style must be one of {', '.join(STYLES)}, not {text!r}")


def paginate(
    style: Style, records: list[Record], params: Mapping[str, str], next_url: Callable[[int], str]
) -> Page:
    """The page of ``records`` (id-ordered) that ``params`` ask for in ``style``.

    ``next_url(after_id)`` builds the link-style URL of the following page.
    """
    if style == "page":
        return _by_page(records, params)
    if style == "offset":
        return _by_offset(records, params)
    if style == "cursor":
        return _by_cursor(records, params)
    return _by_link(records, params, next_url)


def _by_page(records: list[Record], params: Mapping[str, str]) -> Page:
    page = _int(params, "page", 1, minimum=1)
    size = _size(params, "per_page")
    chunk = records[(page - 1) * size : page * size]
    meta = {"page": page, "per_page": size, "total": len(records)}
    return Page({"data": chunk, "meta": meta})


def _by_offset(records: list[Record], params: Mapping[str, str]) -> Page:
    offset = _int(params, "offset", 0, minimum=0)
    size = _size(params, "limit")
    chunk = records[offset : offset + size]
    return Page({"data": chunk, "meta": {"offset": offset, "limit": size, "total": len(records)}})


def _by_cursor(records: list[Record], params: Mapping[str, str]) -> Page:
    size = _size(params, "limit")
    after = decode_cursor(params.get("cursor") or "")
    chunk, more = _after(records, after, size)
    next_cursor = encode_cursor(chunk[-1]["id"]) if more and chunk else None
    return Page({"data": chunk, "meta": {"next_cursor": next_cursor, "limit": size}})


def _by_link(
    records: list[Record], params: Mapping[str, str], next_url: Callable[[int], str]
) -> Page:
    size = _size(params, "per_page", "limit")
    after = _int(params, "after", 0, minimum=0)
    chunk, more = _after(records, after, size)
    headers = {"Link": f'<{next_url(chunk[-1]["id"])}>; rel="next"'} if more and chunk else {}
    return Page(chunk, headers)


def _after(records: list[Record], after: int, size: int) -> tuple[list[Record], bool]:
    """Up to ``size`` records with an id above ``after``, and whether more follow."""
    rest = [record for record in records if record["id"] > after]
    return rest[:size], len(rest) > size


def encode_cursor(last_id: int) -> str:
    """An opaque cursor meaning "after record ``last_id``"."""
    return base64.urlsafe_b64encode(f"after:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The id a cursor continues after (0 for an empty cursor); PagingError if forged."""
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, number = text.partition(":")
        if prefix != "after":
            raise ValueError(text)
        return int(number)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise PagingError(f"invalid cursor {cursor!r}") from None


def _size(params: Mapping[str, str], *names: str) -> int:
    for name in names:
        if name in params:
            size = _int(params, name, DEFAULT_SIZE, minimum=1)
            if size > MAX_SIZE:
                raise PagingError(f"{name} must be at most {MAX_SIZE}, not {size}")
            return size
    return DEFAULT_SIZE


def _int(params: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    text = params.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise PagingError(f"{name} must be an integer, not {text!r}") from None
    if value < minimum:
        raise PagingError(f"{name} must be at least {minimum}, not {value}")
    return value
