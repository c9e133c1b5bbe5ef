"""Turning schedules into queued runs: pure functions the orchestrator's loop calls."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from synchestra.core.models import RunRequest
from synchestra.engine.schedules import next_fire, spread_offsets
from synchestra.engine.sources import SourceSpec


def fire_requests(spec: SourceSpec, fire_at: datetime, targets: Sequence[str]) -> list[RunRequest]:
    """The runs one fire of ``spec`` queues.

    A per-target source queues one run per target; with ``spread`` their
    ``not_before`` times are spaced evenly over the window, in target-key order,
    so a fleet is not hit all at once.
    """
    keys: Sequence[str | None] = sorted(targets) if spec.per_target else [None]
    spread = spec.timing.spread if spec.timing else None
    offsets = spread_offsets(spread, len(keys)) if spread else [None] * len(keys)
    return [
        RunRequest(
            source=spec.name,
            target=key,
            priority=spec.priority,
            group=spec.group,
            api=spec.api,
            not_before=fire_at + offset if offset is not None else fire_at,
            trigger="schedule",
        )
        for key, offset in zip(keys, offsets, strict=True)
    ]


def following_fire(spec: SourceSpec, now: datetime) -> datetime | None:
    """The next fire strictly after ``now``: missed fires during downtime coalesce into one."""
    return next_fire(spec.timing, now) if spec.timing else None
