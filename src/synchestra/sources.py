"""What the engine knows about a source: its function and how to schedule and run it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from synchestra.connectors import SourceFunction
from synchestra.retry import RetryPolicy
from synchestra.schedule import Timing


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
