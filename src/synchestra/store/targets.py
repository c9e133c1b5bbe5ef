"""Targets: the entities per-target sources are synced for.

Every text stored here must round-trip on both databases: PostgreSQL refuses
NUL characters and text that is not valid UTF-8 (a lone surrogate), where
SQLite would keep the first and fail on the second. :func:`put` refuses such
text, so no stored key, name or attribute holds one, and lookups by a key with a
NUL answer "no such target" without asking the database (PostgreSQL would fail
the query instead of finding nothing).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, Select, String, bindparam, delete, select, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.compiler import SQLCompiler

from synchestra.core.errors import InputError
from synchestra.core.models import Target
from synchestra.store.dialect import insert_for
from synchestra.store.schema import pair_status, runs, targets

_CHUNK = 500
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_COLUMNS = (targets.c.key, targets.c.name, targets.c.attrs)
"""What a :class:`Target` holds: selecting ``created_at`` too would only cost its conversion."""


def storable(text: str) -> bool:
    """Whether both databases store ``text`` as given: no NUL, no lone surrogate."""
    return _UNSTORABLE.search(text) is None


def _refuse_unstorable(target: Target) -> dict[str, str]:
    """The attrs of ``target`` as a plain dict, or InputError for what cannot be stored.

    Attrs are text to text (the API documents them so and serves them as stored).
    """
    attrs: Mapping[Any, Any] = target.attrs
    texts = [target.key, target.name, *attrs.keys(), *attrs.values()]
    if not all(isinstance(text, str) and storable(text) for text in texts):
        raise InputError(
            f"invalid target {target.key!r}: key, name and attrs must be text without NUL "
            "characters or lone surrogates, attrs mapping text to text"
        )
    return dict(attrs)


async def put(conn: AsyncConnection, items: Sequence[Target], now: datetime) -> None:
    """Add targets, or update the name and attrs of existing ones."""
    values = [
        {"key": t.key, "name": t.name, "attrs": _refuse_unstorable(t), "created_at": now}
        for t in items
    ]
    for start in range(0, len(values), _CHUNK):
        statement = insert_for(conn, targets)
        await conn.execute(
            statement.on_conflict_do_update(
                index_elements=[targets.c.key],
                set_={"name": statement.excluded.name, "attrs": statement.excluded.attrs},
            ),
            values[start : start + _CHUNK],
        )


async def get(conn: AsyncConnection, key: str) -> Target | None:
    if "\x00" in key:
        return None  # never stored (see the module docstring)
    row = (await conn.execute(select(*_COLUMNS).where(targets.c.key == key))).first()
    return Target(*row) if row else None


async def get_many(conn: AsyncConnection, wanted: set[str]) -> dict[str, Target]:
    found: dict[str, Target] = {}
    keys = sorted(key for key in wanted if "\x00" not in key)
    for start in range(0, len(keys), _CHUNK):
        rows = await conn.execute(
            select(*_COLUMNS).where(targets.c.key.in_(keys[start : start + _CHUNK]))
        )
        found.update({key: Target(key, name, attrs) for key, name, attrs in rows})
    return found


_PAGE = select(*_COLUMNS).order_by(targets.c.key).limit(bindparam("limit", type_=Integer))
_PAGE_AFTER = _PAGE.where(targets.c.key > bindparam("after", type_=String))


async def page(conn: AsyncConnection, *, limit: int, after: str | None) -> list[Target]:
    """Up to ``limit`` targets in key order, those after ``after`` (any text) when given.

    The HTTP API's target listing reads this under concurrent requests: on SQLite it
    takes the one-call path of :func:`_sqlite_rows`.
    """
    statement, params = (
        (_PAGE, {"limit": limit})
        if after is None
        else (_PAGE_AFTER, {"limit": limit, "after": _without_nul(after)})
    )
    if conn.dialect.name == "sqlite":
        return await _sqlite_targets(conn, statement, params)
    result = await conn.execute(statement, params)
    return [Target(key, name, attrs) for key, name, attrs in result]


async def _sqlite_targets(
    conn: AsyncConnection, statement: Select[Any], params: Mapping[str, Any]
) -> list[Target]:
    rows = await _sqlite_rows(conn, statement, params)
    decoded = _json_objects([attrs for _, _, attrs in rows])
    return [Target(key, name, attrs) for (key, name, _), attrs in zip(rows, decoded, strict=True)]


@functools.cache
def _sqlite_compiled(statement: Select[Any]) -> SQLCompiler:
    """``statement`` compiled for SQLite once (the module's statements are constants)."""
    compiled = statement.compile(dialect=sqlite.dialect())
    assert isinstance(compiled, SQLCompiler)
    return compiled


async def _sqlite_rows(
    conn: AsyncConnection, statement: Select[Any], params: Mapping[str, Any]
) -> list[tuple[Any, ...]]:
    """The raw rows of a one-statement read, in one call on the driver's thread.

    Through SQLAlchemy, a read on aiosqlite is eight hand-offs between the event loop
    and the connection's thread (BEGIN: cursor, execute, close; the query: cursor,
    execute, fetchall, close; the pool's ROLLBACK), and under concurrent requests
    each waits for the GIL: that was most of a page's latency. ``execute_fetchall``
    is one (plus the ROLLBACK). Without BEGIN the statement runs in its own implicit
    transaction, as consistent as one statement needs. Column values come back as
    SQLite stores them (JSON as text), without SQLAlchemy's result processing.
    """
    compiled = _sqlite_compiled(statement)
    values = compiled.construct_params(params)
    positional = [values[name] for name in compiled.positiontup or ()]
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None  # an aiosqlite connection
    rows: list[tuple[Any, ...]] = await driver.execute_fetchall(compiled.string, positional)
    return rows


def _json_objects(texts: Sequence[str]) -> list[dict[str, str]]:
    """The stored JSON texts of attrs, decoded in one call rather than one per row.

    Each text is one JSON value, so joined with commas inside brackets they are one
    JSON array (a page of 100 spends a tenth of the time ``json.loads`` per row would).
    """
    decoded: list[dict[str, str]] = json.loads(f"[{','.join(texts)}]")
    return decoded


def _without_nul(after: str) -> str:
    """``after`` cut at its first NUL: the same stored keys sort after both.

    No stored key holds a NUL, so a key is greater than ``p + "\\0" + rest`` exactly
    when it is greater than ``p``; PostgreSQL could not compare with the former.
    """
    return after.partition("\x00")[0]


async def keys(conn: AsyncConnection) -> list[str]:
    return [row.key for row in await conn.execute(select(targets.c.key).order_by(targets.c.key))]


async def remove(conn: AsyncConnection, key: str, now: datetime) -> bool:
    """Remove a target, its status, and cancel its queued runs; its records stay."""
    if "\x00" in key:
        return False  # never stored (see the module docstring)
    result = await conn.execute(delete(targets).where(targets.c.key == key))
    if not result.rowcount:
        return False
    await conn.execute(delete(pair_status).where(pair_status.c.target == key))
    await conn.execute(
        update(runs)
        .where(runs.c.target == key, runs.c.state == "queued")
        .values(state="cancelled", finished_at=now, error="target removed")
    )
    return True
