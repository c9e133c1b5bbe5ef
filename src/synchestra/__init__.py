"""synchestra: keeps local copies of external APIs' data fresh.

Schedules, queues and runs syncs of sources for targets, with priorities,
mutual-exclusion groups, per-API rate limits, retries and per-source error
isolation, and keeps every run's outcome and status in a database.
"""

from __future__ import annotations

from synchestra.clock import Clock, FakeClock, SystemClock
from synchestra.context import SyncContext
from synchestra.errors import (
    ConfigError,
    HTTPFailure,
    InputError,
    NotConfigured,
    RetryableError,
    SyncError,
    SynchestraError,
    SyncTimeout,
)
from synchestra.events import Event, EventBus
from synchestra.models import Mode, Run, RunState, Target
from synchestra.orchestrator import Orchestrator
from synchestra.retry import RetryPolicy
from synchestra.summary import SyncSummary

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
