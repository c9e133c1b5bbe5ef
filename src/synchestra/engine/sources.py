"""What the engine knows about a source: its function and how to schedule and run it.

A source's settings have one definition, :class:`~synchestra.config.SourceConfig`,
whether they come from a ``[[sources]]`` table or from ``Orchestrator.source``;
:func:`build_spec` is the one way from those settings to a :class:`SourceSpec`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from synchestra.config import SourceConfig, SourceSettings, parse_source
from synchestra.connectors.registry import SourceFunction, resolve_connector
from synchestra.engine.retry import RetryPolicy
from synchestra.engine.schedules import IntervalSchedule, Schedule, Timing, parse_cron


@dataclass(frozen=True)
class SourceSpec:
    """A source ready to run: its settings resolved (no defaults here: see SourceConfig)."""

    name: str
    function: SourceFunction
    per_target: bool
    timing: Timing | None
    priority: int
    group: str | None
    api: str | None
    timeout: timedelta
    retry: RetryPolicy
    stale_after: timedelta | None
    full_every: timedelta
    params: Mapping[str, Any]


def build_spec(settings: SourceConfig, function: SourceFunction, timezone: str) -> SourceSpec:
    """The spec of a source; its API defaults to the connector's own (``default_api``)."""
    retry = settings.retry
    return SourceSpec(
        name=settings.name,
        function=function,
        per_target=settings.per_target,
        timing=make_timing(settings, timezone),
        priority=settings.priority,
        group=settings.group,
        api=settings.api or getattr(function, "default_api", None),
        timeout=settings.timeout,
        retry=RetryPolicy(retry.attempts, retry.backoff, retry.max_backoff),
        stale_after=settings.stale_after,
        full_every=settings.full_every,
        params=dict(settings.params),
    )


def make_timing(settings: SourceConfig, timezone: str) -> Timing | None:
    """The timing of a source; None for a source without a schedule (it runs when asked)."""
    base: Schedule
    if settings.schedule is not None:
        base = parse_cron(settings.schedule, timezone)
    elif settings.every is not None:
        base = IntervalSchedule(settings.every)
    else:
        return None
    return Timing(base, offset=settings.offset, spread=settings.spread)


def spec_from_config(source: SourceConfig, timezone: str) -> SourceSpec:
    """A source of a config file, its connector resolved (ConfigError if it cannot be)."""
    return build_spec(source, resolve_connector(source.connector), timezone)


def spec_from_function(
    name: str, function: SourceFunction, settings: SourceSettings, timezone: str
) -> SourceSpec:
    """A source defined in code (``@orc.source``): the same keys and checks as TOML."""
    values: dict[str, Any] = dict(settings)
    if isinstance(values.get("retry"), RetryPolicy):
        policy: RetryPolicy = values["retry"]
        values["retry"] = {
            "attempts": policy.attempts,
            "backoff": policy.backoff,
            "max_backoff": policy.max_backoff,
        }
    connector = f"{function.__module__}:{function.__qualname__}"
    config = parse_source(
        {"name": name, "connector": connector, **values}, origin=f"source {name!r}"
    )
    return build_spec(config, function, timezone)
