"""The params of an ``http.collection`` source, checked before any request.

A bad or missing param fails the run with a :class:`ConfigError` naming it
(``params.paging.style: one of page, offset, cursor, link``), instead of a
half-done read; unknown keys are refused too, so that a typo is not ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from synchestra.core.durations import parse_duration
from synchestra.core.errors import ConfigError

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
