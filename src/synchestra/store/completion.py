"""How attempts leave the running state, and what a claimed run starts with.

The engine hands the store its finished attempts once per loop turn; here each
becomes a retry (back to the queue, absorbing a queued duplicate), an
interruption (ended and queued again) or an end (the run and its statuses
written in batches, a successful full run's deletions applied). Every function
runs inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence, Set
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from synchestra.core.claims import Claimed, ClaimLimits, Turn
from synchestra.core.models import Enqueued, Outcome, Run, RunRequest, RunState
from synchestra.core.workers import Fence, WorkerInfo
from synchestra.store import queue, records, status, targets, workers
from synchestra.store.runs import fetch_runs

INTERRUPTED = "interrupted: the process running it stopped"
DEAD_RETENTION = timedelta(hours=1)
"""How long a dead process stays listed (``live: false``) before its row goes."""


def fence_of(run: Run) -> Fence:
    """Who may write for ``run``: its claimer, in the attempt it claimed."""
    return Fence(run.id, run.attempts, run.worker or "")


async def complete(conn: AsyncConnection, outcomes: Sequence[Outcome], aging: timedelta) -> Turn:
    """Record how these attempts ended; the :class:`Turn` says what that did besides.

    Fenced: an outcome whose run this process no longer owns in that attempt
    (another process recovered it) writes nothing, not even its status,
    watermark or deletions; the turn lists it under ``lost``.
    """
    turn = Turn()
    ended: list[Outcome] = []
    owned = await queue.still_owned(conn, [fence_of(outcome.run) for outcome in outcomes])
    turn.lost = [outcome.run.id for outcome in outcomes if outcome.run.id not in owned]
    for outcome in (outcome for outcome in outcomes if outcome.run.id in owned):
        if outcome.retry_at is not None:
            absorbed = await queue.requeue(
                conn,
                outcome.run,
                not_before=outcome.retry_at,
                error=outcome.error,
                now=outcome.finished_at,
                aging=aging,
            )
            if absorbed is None:
                turn.cancelled.append(outcome.run.id)
            else:
                turn.merged += [(run_id, outcome.run.id) for run_id in absorbed]
        elif outcome.state is RunState.INTERRUPTED:
            again = await interrupt(conn, outcome, aging)
            if again is None:
                turn.cancelled.append(outcome.run.id)
            else:
                turn.requeued.append(again)
        else:
            ended.append(outcome)
    ended = [await _apply_deletes(conn, outcome, turn) for outcome in ended]
    await queue.finish_many(conn, ended)
    await status.record_outcomes(conn, ended)
    return turn


async def claim_with_inputs(
    conn: AsyncConnection,
    *,
    now: datetime,
    capacity: int,
    limits: ClaimLimits,
    owner: str,
) -> list[Claimed]:
    """Claim up to ``capacity`` runs (the caller holds the claim lock) with their inputs.

    The targets and pair statuses are read in a few statements per batch, not per run.
    """
    claimed = await queue.claim(conn, now=now, capacity=capacity, limits=limits, owner=owner)
    if not claimed:
        return []
    await status.record_start(conn, {r.source for r in claimed}, now)
    keys = {run.target for run in claimed if run.target is not None}
    found = await targets.get_many(conn, keys)
    pairs = await status.pairs_for(conn, [run.pair for run in claimed])
    return [
        Claimed(run, found.get(run.target) if run.target else None, pairs.get(run.pair))
        for run in claimed
    ]


async def cancel(conn: AsyncConnection, run_id: int, now: datetime) -> Run | None:
    """End a queued run ``cancelled``; flag a running one; None when there is no such run."""
    found = await fetch_runs(conn, [run_id])
    if not found:
        return None
    run = found[0]
    # A claim may commit between the read and the write (PostgreSQL): the run is
    # then running, and its worker is asked instead.
    if run.state is RunState.QUEUED and await queue.cancel_queued(conn, run.id, now):
        pass
    elif run.state in (RunState.QUEUED, RunState.RUNNING):
        await queue.request_cancel(conn, run_id)
    return (await fetch_runs(conn, [run_id]))[0]


async def recover(
    conn: AsyncConnection,
    *,
    me: str,
    now: datetime,
    lease: timedelta,
    gone: Callable[[WorkerInfo], bool],
    running_here: Set[int] | None,
    aging: timedelta,
) -> list[tuple[Run, Enqueued | None]]:
    """Declare silent processes dead and interrupt the runs no live process owns.

    ``now`` is the database's time; the caller holds the claim lock.
    """
    await workers.declare_dead(
        conn, me=me, now=now, lease=lease, gone=gone, retention=DEAD_RETENTION
    )
    recovered = []
    orphans = await queue.orphans(conn, await workers.live_ids(conn))
    if running_here is not None:
        mine = await queue.running_of(conn, me)
        orphans += [run for run in mine if run.id not in running_here]
    for run in orphans:
        outcome = Outcome(run=run, state=RunState.INTERRUPTED, finished_at=now, error=INTERRUPTED)
        recovered.append((run, await interrupt(conn, outcome, aging)))
    return recovered


async def interrupt(conn: AsyncConnection, outcome: Outcome, aging: timedelta) -> Enqueued | None:
    """End a run as ``interrupted`` and queue the same sync again, unless it was cancelled."""
    run = outcome.run
    if await queue.cancel_requested(conn, run.id):
        await _finish(conn, replace(outcome, state=RunState.CANCELLED, error="cancelled"))
        return None
    await _finish(conn, outcome)
    request = RunRequest(
        source=run.source,
        target=run.target,
        mode=run.mode,
        priority=run.priority,
        group=run.group,
        api=run.api,
        trigger="recovery",
    )
    (again,) = await queue.enqueue(conn, [request], outcome.finished_at, aging)
    await queue.continue_with(conn, run.id, again.run.id)
    return again


async def _apply_deletes(conn: AsyncConnection, outcome: Outcome, turn: Turn) -> Outcome:
    """Mark deleted what a successful full attempt did not see; count it in its result."""
    if outcome.state is not RunState.SUCCEEDED or not outcome.deletes:
        return outcome
    deleted = {
        scope.kind: await records.mark_missing_deleted(conn, scope, outcome.finished_at)
        for scope in outcome.deletes
    }
    result = dict(outcome.result)
    result["deleted"] = int(result.get("deleted", 0)) + sum(deleted.values())
    recorded = replace(outcome, result=result)
    turn.deleted[outcome.run.id] = deleted
    turn.recorded[outcome.run.id] = recorded
    return recorded


async def _finish(conn: AsyncConnection, outcome: Outcome) -> None:
    await queue.finish_many(conn, [outcome])
    await status.record_outcomes(conn, [outcome])
