"""Per (source, target) status and per-source state: written as runs end, read by status views."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from synchestra.core.models import NO_TARGET, Outcome, RunState
from synchestra.core.status import PairStatus, SourceRow
from synchestra.store.dialect import insert_for
from synchestra.store.schema import pair_status, runs, source_state


async def ensure_sources(conn: AsyncConnection, names: Iterable[str], now: datetime) -> None:
    rows = [{"source": name, "consecutive_failures": 0, "created_at": now} for name in names]
    if rows:
        await conn.execute(
            insert_for(conn, source_state).on_conflict_do_nothing(
                index_elements=[source_state.c.source]
            ),
            rows,
        )


async def record_start(conn: AsyncConnection, sources: Iterable[str], now: datetime) -> None:
    await conn.execute(
        update(source_state).where(source_state.c.source.in_(set(sources))).values(last_started=now)
    )


async def record_outcomes(conn: AsyncConnection, outcomes: Sequence[Outcome]) -> None:
    """Make pair statuses and source states tell how these runs ended (in this order).

    Written in batches: one statement per kind of change, not per run, since the
    engine completes many runs per transaction.
    """
    batches: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for outcome in outcomes:
        values = _pair_values(outcome)
        batches.setdefault(tuple(values), []).append(values)
    for columns, rows in batches.items():
        statement = insert_for(conn, pair_status)
        changes = {c: statement.excluded[c] for c in columns if c not in ("source", "target")}
        await conn.execute(
            statement.on_conflict_do_update(
                index_elements=[pair_status.c.source, pair_status.c.target], set_=changes
            ),
            rows,
        )
    for source, values in _source_changes(outcomes).items():
        await conn.execute(
            update(source_state).where(source_state.c.source == source).values(values)
        )


def _pair_values(outcome: Outcome) -> dict[str, Any]:
    run, at = outcome.run, outcome.finished_at
    values: dict[str, Any] = {
        "source": run.source,
        "target": run.target or NO_TARGET,
        "state": outcome.state.value,
        "last_attempt": at,
        "last_run_id": run.id,
    }
    if outcome.state is RunState.SUCCEEDED:
        values |= {"last_success": at, "error": None, "error_at": None}
        if outcome.watermark_set:
            values["watermark"] = outcome.watermark
        if outcome.full_run:
            values["last_full_run"] = at
    elif outcome.state in (RunState.FAILED, RunState.SKIPPED):
        values |= {"error": outcome.error, "error_at": at}
    return values


def _source_changes(outcomes: Sequence[Outcome]) -> dict[str, dict[str, Any]]:
    """Per source, the new state after these outcomes, failures counted in order."""
    changes: dict[str, dict[str, Any]] = {}
    failures_after_success: dict[str, int] = {}
    for outcome in outcomes:
        name = outcome.run.source
        values = changes.setdefault(name, {})
        values |= {"last_finished": outcome.finished_at, "last_state": outcome.state.value}
        if outcome.state is RunState.SUCCEEDED:
            values["last_success"] = outcome.finished_at
            failures_after_success[name] = 0
            values["reset"] = True
        elif outcome.state is RunState.FAILED:
            values["last_error"] = outcome.error
            failures_after_success[name] = failures_after_success.get(name, 0) + 1
    for name, values in changes.items():
        failed = failures_after_success.get(name, 0)
        if values.pop("reset", False):
            values["consecutive_failures"] = failed
        elif failed:
            values["consecutive_failures"] = source_state.c.consecutive_failures + failed
    return changes


def pair_from_row(row: Row[Any]) -> PairStatus:
    return PairStatus(
        source=row.source,
        target=row.target or None,
        state=row.state,
        last_attempt=row.last_attempt,
        last_success=row.last_success,
        last_full_run=row.last_full_run,
        error=row.error,
        error_at=row.error_at,
        watermark=row.watermark,
    )


async def pair_statuses(conn: AsyncConnection, target: str | None) -> list[PairStatus]:
    rows = await conn.execute(
        select(pair_status)
        .where(pair_status.c.target == (target or NO_TARGET))
        .order_by(pair_status.c.source)
    )
    return [pair_from_row(row) for row in rows]


async def pair(conn: AsyncConnection, source: str, target: str | None) -> PairStatus | None:
    row = (
        await conn.execute(
            select(pair_status).where(
                pair_status.c.source == source, pair_status.c.target == (target or NO_TARGET)
            )
        )
    ).first()
    return pair_from_row(row) if row else None


async def pairs_for(
    conn: AsyncConnection, wanted: list[tuple[str, str | None]]
) -> dict[tuple[str, str | None], PairStatus]:
    """The statuses of these (source, target) pairs that exist."""
    sources = {source for source, _ in wanted}
    target_keys = {target or NO_TARGET for _, target in wanted}
    rows = await conn.execute(
        select(pair_status).where(
            pair_status.c.source.in_(sources), pair_status.c.target.in_(target_keys)
        )
    )
    found = {(p.source, p.target): p for p in map(pair_from_row, rows)}
    return {key: found[key] for key in wanted if key in found}


async def source_rows(conn: AsyncConnection) -> dict[str, SourceRow]:
    """Every source's state with its queue counts and how many of its targets are failing."""
    counts: dict[tuple[str, str], int] = {
        (row.source, row.state): row.n
        for row in await conn.execute(
            select(runs.c.source, runs.c.state, func.count().label("n"))
            .where(runs.c.state.in_([RunState.QUEUED.value, RunState.RUNNING.value]))
            .group_by(runs.c.source, runs.c.state)
        )
    }
    failing = {
        row.source: row.n
        for row in await conn.execute(
            select(pair_status.c.source, func.count().label("n"))
            .where(pair_status.c.state == RunState.FAILED.value)
            .group_by(pair_status.c.source)
        )
    }
    result = {}
    for row in await conn.execute(select(source_state)):
        result[row.source] = SourceRow(
            source=row.source,
            next_fire_at=row.next_fire_at,
            last_started=row.last_started,
            last_finished=row.last_finished,
            last_success=row.last_success,
            last_state=row.last_state,
            last_error=row.last_error,
            consecutive_failures=row.consecutive_failures,
            created_at=row.created_at,
            queued=counts.get((row.source, RunState.QUEUED.value), 0),
            running=counts.get((row.source, RunState.RUNNING.value), 0),
            failing_targets=failing.get(row.source, 0),
        )
    return result


async def set_next_fire(
    conn: AsyncConnection, source: str, next_fire_at: datetime | None, fired_at: datetime | None
) -> None:
    values: dict[str, Any] = {"next_fire_at": next_fire_at}
    if fired_at is not None:
        values["last_fire_at"] = fired_at
    await conn.execute(update(source_state).where(source_state.c.source == source).values(values))


async def set_first_fire(conn: AsyncConnection, source: str, next_fire_at: datetime) -> None:
    """A new source's first fire time, unless another process set one meanwhile."""
    await conn.execute(
        update(source_state)
        .where(source_state.c.source == source, source_state.c.next_fire_at.is_(None))
        .values(next_fire_at=next_fire_at)
    )


async def advance_fire(
    conn: AsyncConnection, source: str, due: datetime, following: datetime | None
) -> bool:
    """Move ``next_fire_at`` from ``due`` to ``following``; False if another process did."""
    result = await conn.execute(
        update(source_state)
        .where(source_state.c.source == source, source_state.c.next_fire_at == due)
        .values(next_fire_at=following, last_fire_at=due)
    )
    return bool(result.rowcount)
