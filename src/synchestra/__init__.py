"""synchestra: keeps local copies of external APIs' data fresh.

Schedules, queues and runs syncs of sources for targets, with priorities,
mutual-exclusion groups, per-API rate limits, retries and per-source error
isolation, and keeps every run's outcome and status in a database.
"""

from __future__ import annotations

from synchestra.connectors.context import SyncContext
from synchestra.core.bus import EventBus
from synchestra.core.clock import Clock, FakeClock, SystemClock
from synchestra.core.errors import (
    ConfigError,
    HTTPFailure,
    InputError,
    NotConfigured,
    RetryableError,
    SyncError,
    SynchestraError,
    SyncTimeout,
)
from synchestra.core.events import Event
from synchestra.core.models import Mode, Run, RunState, Target
from synchestra.engine.orchestrator import Orchestrator
from synchestra.engine.retry import RetryPolicy
from synchestra.engine.summary import SyncSummary

__all__ = [
    "Clock",
    "ConfigError",
    "Event",
    "EventBus",
    "FakeClock",
    "HTTPFailure",
    "InputError",
    "Mode",
    "NotConfigured",
    "Orchestrator",
    "RetryPolicy",
    "RetryableError",
    "Run",
    "RunState",
    "SyncContext",
    "SyncError",
    "SyncSummary",
    "SyncTimeout",
    "SynchestraError",
    "SystemClock",
    "Target",
]
