"""Synced records: idempotent upserts with change detection by content hash."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, String, any_, bindparam, or_, select, text, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from synchestra.core.errors import InputError
from synchestra.core.models import NO_TARGET
from synchestra.core.records import (
    MAX_CHANGED_KEYS,
    Change,
    ChangeCounts,
    Record,
    RecordQuery,
    RecordScope,
)
from synchestra.store import versions
from synchestra.store.schema import records
from synchestra.store.targets import storable

_CHUNK = 500
ANALYZE_AFTER = 20_000
"""Records created in one call after which PostgreSQL re-reads the table's statistics.

Without them (a first big load), it plans the lookup of stored hashes as a scan of
the whole scope with ``key`` as a filter, which makes a large load quadratic;
``ANALYZE`` inside the transaction counts its own new rows."""


def content_hash(data: Mapping[str, Any]) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


RECORD_LOCK_SPACE = 0x5A1C
"""The first key of the two-int advisory locks that serialise upserts of one scope."""


async def upsert(
    conn: AsyncConnection,
    scope: RecordScope,
    rows: Sequence[tuple[str, Mapping[str, Any]]],
    now: datetime,
) -> ChangeCounts:
    """Insert new records, update changed ones, touch unchanged ones.

    ``rows`` are (key, data); a key repeated in one call keeps its last data.
    A record that was marked deleted and reappears counts as updated.
    """
    latest = {key: dict(data) for key, data in rows}
    _refuse_unstorable(scope.kind, latest)
    await _lock_scope(conn, scope)
    counts = ChangeCounts()
    keys = list(latest)
    since_analyze = 0
    for start in range(0, len(keys), _CHUNK):
        chunk = {k: latest[k] for k in keys[start : start + _CHUNK]}
        added = await _upsert_chunk(conn, scope, chunk, now)
        counts.add(added)
        since_analyze += added.created
        if since_analyze >= ANALYZE_AFTER and conn.dialect.name == "postgresql":
            await conn.execute(text("ANALYZE records"))
            since_analyze = 0
    return counts


def _refuse_unstorable(kind: str, keys: Iterable[str]) -> None:
    """InputError for a kind or key holding a NUL or a lone surrogate.

    PostgreSQL cannot store either and SQLite takes a NUL: refused up front, a source
    fails alike on both databases, with a message rather than a driver error.
    """
    bad = next((text for text in (kind, *keys) if not storable(text)), None)
    if bad is not None:
        raise InputError(
            f"invalid record kind or key {bad!r}: use text without NUL characters "
            "or lone surrogates"
        )


async def _lock_scope(conn: AsyncConnection, scope: RecordScope) -> None:
    """One upsert per (kind, target) at a time, across processes.

    Two processes storing the same new key at once would both find it missing
    and both insert it (a unique violation on PostgreSQL). SQLite's writer lock
    already serialises them; on PostgreSQL a transaction-level advisory lock on
    the scope does (its own key space: the claim and migration locks use the
    one-bigint form).
    """
    if conn.dialect.name == "postgresql":
        await conn.execute(
            text("SELECT pg_advisory_xact_lock(:space, hashtext(:scope))"),
            {"space": RECORD_LOCK_SPACE, "scope": f"{scope.kind}\x1f{scope.target or ''}"},
        )


async def _upsert_chunk(
    conn: AsyncConnection, scope: RecordScope, chunk: dict[str, dict[str, Any]], now: datetime
) -> ChangeCounts:
    target = scope.target or NO_TARGET
    stored = {
        row.key: row
        for row in await conn.execute(
            select(records.c.id, records.c.key, records.c.hash, records.c.deleted_at).where(
                records.c.kind == scope.kind,
                records.c.target == target,
                key_among(conn, list(chunk)),
            )
        )
    }
    new: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    same: list[int] = []
    for key, data in chunk.items():
        digest = content_hash(data)
        row = stored.get(key)
        if row is None:
            new.append(
                {
                    "kind": scope.kind,
                    "key": key,
                    "target": target,
                    "source": scope.source,
                    "data": data,
                    "hash": digest,
                    "first_seen": now,
                    "last_seen": now,
                    "changed_at": now,
                    "deleted_at": None,
                    "run_id": scope.run_id,
                    "run_attempt": scope.attempt,
                }
            )
        elif row.hash != digest or row.deleted_at is not None:
            changed.append({"b_id": row.id, "b_key": key, "data": data, "hash": digest})
        else:
            same.append(row.id)
    if new:
        await conn.execute(records.insert(), new)
    previous: dict[int, dict[str, Any]] = {}
    if changed:
        previous = await versions.archive(conn, [row["b_id"] for row in changed], now)
        await conn.execute(
            update(records)
            .where(records.c.id == bindparam("b_id"))
            .values(
                data=bindparam("data"),
                hash=bindparam("hash"),
                changed_at=now,
                last_seen=now,
                deleted_at=None,
                run_id=scope.run_id,
                run_attempt=scope.attempt,
                source=scope.source,
            ),
            changed,
        )
    if same:
        await conn.execute(
            update(records)
            .where(records.c.id.in_(same))
            .values(last_seen=now, run_id=scope.run_id, run_attempt=scope.attempt)
        )
    changes = [Change(str(row["key"]), None, row["data"]) for row in new[:MAX_CHANGED_KEYS]]
    changes += [
        Change(str(row["b_key"]), previous.get(row["b_id"]), row["data"])
        for row in changed[: MAX_CHANGED_KEYS - len(changes)]
    ]
    return ChangeCounts(
        created=len(new), updated=len(changed), unchanged=len(same), changes=changes
    )


def key_among(conn: AsyncConnection, keys: list[str]) -> ColumnElement[bool]:
    """``key IN (...)``; on PostgreSQL ``key = ANY($1)``, one array parameter.

    With a list of 500 parameters PostgreSQL plans a new statement text at every
    chunk (~0.1-0.2 s each, the whole cost of an upsert); one array parameter
    keeps one prepared statement.
    """
    if conn.dialect.name == "postgresql":
        return records.c.key == any_(bindparam("keys", keys, type_=postgresql.ARRAY(String)))
    return records.c.key.in_(keys)


async def mark_missing_deleted(conn: AsyncConnection, scope: RecordScope, now: datetime) -> int:
    """Mark deleted the records of this scope that this attempt of the run did not see.

    "Seen" is per attempt: a record only a failed earlier attempt fetched is gone.
    """
    result = await conn.execute(
        update(records)
        .where(
            records.c.kind == scope.kind,
            records.c.target == (scope.target or NO_TARGET),
            records.c.source == scope.source,
            records.c.deleted_at.is_(None),
            or_(
                records.c.run_id.is_(None),
                records.c.run_id != scope.run_id,
                records.c.run_attempt.is_(None),
                records.c.run_attempt != scope.attempt,
            ),
        )
        .values(deleted_at=now, changed_at=now)
    )
    return int(result.rowcount or 0)


def encode_cursor(record_id: int) -> str:
    return base64.urlsafe_b64encode(f"r{record_id}".encode()).decode().rstrip("=")


MAX_ID = 2**63 - 1
"""The largest record id either database holds (a 64-bit integer): a cursor past it
would fail the query, on PostgreSQL and SQLite alike, instead of being refused."""


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        digits = raw.removeprefix("r")
        if digits == raw or not (digits.isascii() and digits.isdigit()) or int(digits) > MAX_ID:
            raise ValueError(raw)
        return int(digits)
    except ValueError:
        raise InputError(f"invalid cursor {cursor!r}: pass the next_cursor of a listing") from None


def record_from_row(row: Row[Any]) -> Record:
    return Record(
        id=row.id,
        kind=row.kind,
        key=row.key,
        target=row.target or None,
        source=row.source,
        data=row.data,
        first_seen=row.first_seen,
        last_seen=row.last_seen,
        changed_at=row.changed_at,
        deleted_at=row.deleted_at,
    )


async def list_records(
    conn: AsyncConnection, query: RecordQuery
) -> tuple[list[Record], str | None]:
    """One page of records in id order, and the cursor of the next page (or None)."""
    if query.limit < 1:
        raise InputError(f"invalid limit {query.limit}: must be at least 1")
    after_id = decode_cursor(query.cursor) if query.cursor is not None else None
    if "\x00" in query.kind or "\x00" in (query.target or ""):
        # No stored kind or target holds a NUL (upsert and targets.put refuse them), so
        # none matches; PostgreSQL would fail the query instead of finding nothing.
        return [], None
    statement = select(records).where(records.c.kind == query.kind)
    if query.target is not None:
        statement = statement.where(records.c.target == query.target)
    if query.changed_since is not None:
        changed = records.c.changed_at > query.changed_since
        if query.include_deleted:  # a deletion since then is a change too
            changed = or_(changed, records.c.deleted_at > query.changed_since)
        statement = statement.where(changed)
    if not query.include_deleted:
        statement = statement.where(records.c.deleted_at.is_(None))
    if after_id is not None:
        statement = statement.where(records.c.id > after_id)
    rows = list(await conn.execute(statement.order_by(records.c.id).limit(query.limit + 1)))
    more = len(rows) > query.limit
    page = [record_from_row(row) for row in rows[: query.limit]]
    return page, encode_cursor(page[-1].id) if more and page else None
