"""What the engine knows about a source: its function and how to schedule and run it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from synchestra.config import Config, SourceConfig
from synchestra.connectors.registry import SourceFunction, resolve_connector
from synchestra.core.durations import parse_duration
from synchestra.core.errors import InputError
from synchestra.engine.retry import RetryPolicy
from synchestra.engine.schedules import IntervalSchedule, Timing, parse_cron


@dataclass(frozen=True)
class SourceSpec:
    name: str
    function: SourceFunction
    per_target: bool = False
    timing: Timing | None = None
    priority: int = 0
    group: str | None = None
    api: str | None = None
    timeout: timedelta = timedelta(minutes=10)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    stale_after: timedelta | None = None
    full_every: timedelta = timedelta(hours=24)
    params: Mapping[str, Any] = field(default_factory=dict)


def make_timing(
    schedule: str | None,
    every: str | timedelta | None,
    offset: str | timedelta,
    spread: str | timedelta,
    timezone: str,
) -> Timing | None:
    """The timing of a source from its settings; None for a source without a schedule."""
    if schedule is None and every is None:
        return None
    if schedule is not None and every is not None:
        raise InputError("give a source either schedule or every, not both")
    base = (
        parse_cron(schedule, timezone)
        if schedule is not None
        else IntervalSchedule(_duration(every))
    )
    return Timing(base, offset=_duration(offset), spread=_duration(spread))


def _duration(value: str | timedelta | None) -> timedelta:
    if value is None:
        return timedelta(0)
    return value if isinstance(value, timedelta) else parse_duration(value)


def spec_from_config(source: SourceConfig, config: Config) -> SourceSpec:
    """A source of the config, its connector resolved (ConfigError if it cannot be)."""
    function = resolve_connector(source.connector)
    return SourceSpec(
        name=source.name,
        function=function,
        per_target=source.per_target,
        timing=make_timing(
            source.schedule, source.every, source.offset, source.spread, config.timezone
        ),
        priority=source.priority,
        group=source.group,
        api=source.api or getattr(function, "default_api", None),
        timeout=source.timeout,
        retry=RetryPolicy(source.retry.attempts, source.retry.backoff, source.retry.max_backoff),
        stale_after=source.stale_after,
        full_every=source.full_every,
        params=dict(source.params),
    )
