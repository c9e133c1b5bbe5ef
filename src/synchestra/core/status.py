"""What the store reports about sync status: per (source, target) pair, per source, per page.

Values read by health, metrics, the status documents and the dashboard; the
store builds them from its tables and hands out nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from synchestra.core.models import Run, Target


@dataclass(frozen=True)
class PairStatus:
    """How the last attempt of one source for one target (None: no target) went."""

    source: str
    target: str | None
    state: str
    last_attempt: datetime | None
    last_success: datetime | None
    last_full_run: datetime | None
    error: str | None
    error_at: datetime | None
    watermark: Any


@dataclass(frozen=True)
class SourceRow:
    """One source's state, with its queue counts and how many of its targets are failing."""

    source: str
    next_fire_at: datetime | None
    last_started: datetime | None
    last_finished: datetime | None
    last_success: datetime | None
    last_state: str | None
    last_error: str | None
    consecutive_failures: int
    created_at: datetime
    queued: int = 0
    running: int = 0
    failing_targets: int = 0


@dataclass(frozen=True)
class GridPage:
    """One page of targets with what the grid colours its cells by."""

    total: int
    """How many targets match the search (on every page)."""
    targets: list[Target]
    pairs: list[PairStatus]
    active: list[Run]
