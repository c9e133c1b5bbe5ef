"""Record ingest: 200,000 violation-shaped records, with change detection, on SQLite and PostgreSQL.

Three ways to write the same rows into the same ``records`` table, side by side:

- **synchestra**: ``Store.upsert_records`` (content hash per record, one SELECT
  of the stored hashes per chunk of 500, then bulk INSERT / UPDATE), timed for
  a first load (all created), a second pass (all unchanged) and a pass where
  10 % of the records changed;
- **per-row ORM**: what an application often writes by hand: an ORM class over
  the table and, per record, ``SELECT`` it by key, then update it or add it,
  with the same hash, one transaction. Timed on a sample and extrapolated (its
  cost is linear by construction);
- **raw**: the lower bound: the driver's ``executemany`` (SQLite) or ``COPY``
  (asyncpg) of the same rows, JSON serialised, no change detection.

Each database is fresh (PostgreSQL: a database of its own, dropped after).
Prints one JSON document; the goal is synchestra >= 20x the per-row ORM and
within 2x of raw.

    .venv/bin/python bench/ingest.py [--records 200000] [--sample 10000]
                                     [--databases sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase

from synchestra.core.records import RecordScope
from synchestra.store import Store
from synchestra.store.records import content_hash
from synchestra.store.schema import records

PG = "postgresql://postgres@127.0.0.1:5432"
KIND, TARGET, SOURCE = "violation", "dot:1000001", "violations"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


class Base(DeclarativeBase):
    pass


class Record(Base):
    """The per-row approach's ORM class, mapped on synchestra's own table."""

    __table__ = records


def violation(n: int, version: int = 0) -> tuple[str, dict[str, Any]]:
    """A record shaped like a DataHub violation row with its parsed fields."""
    day = 1 + n % 28
    data = {
        "unique_id": str(700_000_000 + n // 3),
        "insp_date": f"{day:02d}-AUG-24",
        "insp_date_iso": f"2024-08-{day:02d}",
        "dot_number": "1000001",
        "viol_code": f"39{n % 97:02d}A{n % 7}",
        "basic_desc": ("Unsafe Driving", "Vehicle Maintenance", "HOS Compliance")[n % 3],
        "oos_indicator": "true" if n % 11 == 0 else "false",
        "oos_indicator_bool": n % 11 == 0,
        "oos_weight": "0",
        "severity_weight": str(1 + n % 10),
        "severity_weight_num": 1 + n % 10,
        "time_weight": str(1 + version),
        "total_severity_wght": str((1 + n % 10) * (1 + version)),
        "section_desc": "Inoperable Required Lamp lower left, low beam",
        "group_desc": "Lighting",
        "viol_unit": "D",
        "row_count": 1,
    }
    return f"{data['unique_id']}|{data['viol_code']}|{n}", data


def dataset(count: int, changed_every: int | None = None) -> list[tuple[str, dict[str, Any]]]:
    return [
        violation(n, 1 if changed_every and n % changed_every == 0 else 0) for n in range(count)
    ]


async def timed(action: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = await action()
    return time.perf_counter() - started, result


# --- the three ways ---------------------------------------------------------------------------


async def synchestra_passes(url: str, count: int) -> dict[str, Any]:
    store = await Store.open(url)
    scope = RecordScope(kind=KIND, target=TARGET, source=SOURCE, run_id=1)
    passes = {}
    try:
        for name, rows in (
            ("first_load", dataset(count)),
            ("unchanged", dataset(count)),
            ("ten_percent_changed", dataset(count, changed_every=10)),
        ):
            started = time.perf_counter()
            counts = await store.upsert_records(scope, rows, NOW)
            seconds = time.perf_counter() - started
            passes[name] = {
                "seconds": round(seconds, 3),
                "records_per_s": round(count / seconds),
                "counts": {k: v for k, v in counts.as_dict().items() if k != "keys"},
            }
    finally:
        await store.close()
    return passes


async def per_row_orm(url: str, count: int) -> dict[str, Any]:
    """SELECT by key, then update or add, per record; one commit at the end."""
    store = await Store.open(url)  # the same schema, migrated
    sessions = async_sessionmaker(store.engine, expire_on_commit=False)
    rows = dataset(count)

    async def load() -> None:
        async with sessions() as session, session.begin():
            for key, data in rows:
                await _merge_one(session, key, data)

    try:
        seconds, _ = await timed(load)
    finally:
        await store.close()
    return {"records": count, "seconds": round(seconds, 3), "records_per_s": round(count / seconds)}


async def _merge_one(session: AsyncSession, key: str, data: dict[str, Any]) -> None:
    digest = content_hash(data)
    by_key: Any = select(Record).where(
        records.c.kind == KIND, records.c.target == TARGET, records.c.key == key
    )
    found: Any = await session.scalar(by_key)
    if found is None:
        session.add(
            Record(
                kind=KIND,
                key=key,
                target=TARGET,
                source=SOURCE,
                data=data,
                hash=digest,
                first_seen=NOW,
                last_seen=NOW,
                changed_at=NOW,
                run_id=1,
                run_attempt=1,
            )
        )
    elif found.hash != digest:
        found.data, found.hash, found.changed_at, found.last_seen = data, digest, NOW, NOW
    else:
        found.last_seen = NOW
    await session.flush()


def _raw_tuples(count: int, sqlite: bool) -> list[tuple[Any, ...]]:
    now: Any = NOW.replace(tzinfo=None).isoformat(" ") if sqlite else NOW
    return [
        (KIND, key, TARGET, SOURCE, json.dumps(data), "-" * 64, now, now, now, 1, 1)
        for key, data in dataset(count)
    ]


RAW_COLUMNS = (
    "kind",
    "key",
    "target",
    "source",
    "data",
    "hash",
    "first_seen",
    "last_seen",
    "changed_at",
    "run_id",
    "run_attempt",
)


async def raw_sqlite(path: Path, count: int) -> dict[str, Any]:
    store = await Store.open(f"sqlite:///{path}")  # create the schema
    await store.close()

    async def load() -> None:
        connection = sqlite3.connect(path)
        with connection:
            placeholders = ", ".join("?" for _ in RAW_COLUMNS)
            connection.executemany(
                f"INSERT INTO records ({', '.join(RAW_COLUMNS)}) VALUES ({placeholders})",
                _raw_tuples(count, sqlite=True),
            )
        connection.close()

    seconds, _ = await timed(load)
    return {"records": count, "seconds": round(seconds, 3), "records_per_s": round(count / seconds)}


async def raw_postgres(url: str, count: int) -> dict[str, Any]:
    store = await Store.open(url)
    await store.close()

    async def load() -> None:
        connection = await asyncpg.connect(url)
        try:
            await connection.copy_records_to_table(
                "records", records=_raw_tuples(count, sqlite=False), columns=RAW_COLUMNS
            )
        finally:
            await connection.close()

    seconds, _ = await timed(load)
    return {"records": count, "seconds": round(seconds, 3), "records_per_s": round(count / seconds)}


# --- databases ---------------------------------------------------------------------------------


@asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    name = f"syn_bench_{uuid.uuid4().hex}"
    admin = await asyncpg.connect(f"{PG}/postgres")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{PG}/{name}"
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def on_sqlite(count: int, sample: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        ours = await synchestra_passes(f"sqlite:///{folder}/ours.db", count)
        orm = await per_row_orm(f"sqlite:///{folder}/orm.db", sample)
        raw = await raw_sqlite(Path(folder) / "raw.db", count)
    return compare(ours, orm, raw, count, sample)


async def on_postgres(count: int, sample: int) -> dict[str, Any]:
    async with postgres_database() as url:
        ours = await synchestra_passes(url, count)
    async with postgres_database() as url:
        orm = await per_row_orm(url, sample)
    async with postgres_database() as url:
        raw = await raw_postgres(url, count)
    return compare(ours, orm, raw, count, sample)


def compare(
    ours: dict[str, Any], orm: dict[str, Any], raw: dict[str, Any], count: int, sample: int
) -> dict[str, Any]:
    load = ours["first_load"]["seconds"]
    orm_seconds = orm["seconds"] * count / sample
    return {
        "synchestra": ours,
        "per_row_orm": {**orm, "extrapolated_seconds_for_all": round(orm_seconds, 1)},
        "raw": raw,
        "first_load_speedup_vs_per_row_orm": round(orm_seconds / load, 1),
        "first_load_slowdown_vs_raw": round(load / raw["seconds"], 2),
        "goal": "speedup >= 20, slowdown <= 2",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--sample", type=int, default=10_000, help="records for the per-row ORM")
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args()
    runs = {"sqlite": on_sqlite, "postgresql": on_postgres}
    results = {}
    for name in args.databases.split(","):
        results[name] = asyncio.run(runs[name](args.records, min(args.sample, args.records)))
    document = {
        "benchmark": "ingest",
        "machine": f"{os.cpu_count()} cores (shared)",
        "records": args.records,
        "results": results,
    }
    json.dump(document, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
