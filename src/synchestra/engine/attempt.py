"""Running one attempt of one run, and turning how it ended into an :class:`Outcome`.

Whatever the source does (raise, hang, return garbage) ends here as an outcome
of its own run: this is where error isolation happens.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable
from contextlib import suppress
from datetime import timedelta
from typing import Any, TypeVar

from synchestra.connectors.context import SyncContext
from synchestra.core.clock import Clock
from synchestra.core.durations import format_duration
from synchestra.core.errors import NotConfigured, SynchestraError, SyncTimeout
from synchestra.core.models import Outcome, RunState
from synchestra.core.redact import Redactor
from synchestra.engine.retry import decide
from synchestra.engine.sources import SourceSpec
from synchestra.upstream.errors import from_httpx

T = TypeVar("T")


async def with_timeout(awaitable: Awaitable[T], limit: timedelta, clock: Clock) -> T:
    """Await ``awaitable``, cancelling it when ``limit`` passes on ``clock``.

    Not ``asyncio.timeout``: that follows the event loop's clock, which tests
    cannot move.
    """
    work = asyncio.ensure_future(awaitable)
    timer = asyncio.ensure_future(clock.sleep(limit.total_seconds()))
    try:
        await asyncio.wait({work, timer}, return_when=asyncio.FIRST_COMPLETED)
        if work.done():
            return work.result()
        raise SyncTimeout(f"timed out after {format_duration(limit)}")
    finally:
        for task in (work, timer):
            if not task.done():
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task


def describe(error: BaseException, redactor: Redactor) -> str:
    """The one-line error that run records, status and events show (secrets removed)."""
    if isinstance(error, SynchestraError):
        text = str(error)
    else:
        text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return redactor.redact(text)[:2000]


async def attempt(
    spec: SourceSpec,
    ctx: SyncContext,
    *,
    clock: Clock,
    rng: random.Random,
    redactor: Redactor,
) -> Outcome:
    """Run ``spec`` once with ``ctx``; never raises except on cancellation."""
    run = ctx.run
    try:
        returned = await with_timeout(spec.function(ctx), spec.timeout, clock)
    except NotConfigured as error:
        return Outcome(run, RunState.SKIPPED, clock.now(), error=describe(error, redactor))
    except Exception as error:  # isolation: any failure is this run's alone
        return _failure(spec, ctx, error, clock, rng, redactor)
    return Outcome(
        run,
        RunState.SUCCEEDED,
        clock.now(),
        result=_result(ctx, returned),
        watermark=ctx.watermark,
        watermark_set=ctx.watermark_changed,
        full_run=ctx.mode.value == "full",
        deletes=tuple(ctx.scope(kind) for kind in ctx.pending_deletes),
    )


def _failure(
    spec: SourceSpec,
    ctx: SyncContext,
    error: Exception,
    clock: Clock,
    rng: random.Random,
    redactor: Redactor,
) -> Outcome:
    now = clock.now()
    error = from_httpx(error)
    message = describe(error, redactor)
    decision = decide(spec.retry, ctx.run.attempts, error, rng)
    result = _result(ctx, None)
    if decision.retry:
        return Outcome(
            ctx.run, RunState.QUEUED, now, message, result, retry_at=now + decision.delay
        )
    return Outcome(ctx.run, RunState.FAILED, now, message, result)


def _result(ctx: SyncContext, returned: Any) -> dict[str, Any]:
    counts: dict[str, Any] = ctx.totals().as_dict()
    if isinstance(returned, dict):
        counts |= _json_safe({str(k): v for k, v in returned.items()})
    return counts


def _json_safe(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` as the database can store them: what JSON cannot hold becomes text.

    A source returning garbage must not break the transaction that records every
    finished run (nor the loop that runs it).
    """
    try:
        safe: dict[str, Any] = json.loads(json.dumps(values, default=str, allow_nan=False))
    except (ValueError, RecursionError):  # NaN, infinities, circular references
        safe = {key: repr(value)[:200] for key, value in values.items()}
    return safe
