"""The values the engine, the store and the interfaces pass around.

Plain frozen dataclasses: they carry no behaviour beyond small derived
properties, so every layer can build and compare them freely.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from synchestra.core.errors import InputError
from synchestra.core.records import RecordScope

NO_TARGET = ""
"""How the store spells "no target" (a source that is not per-target)."""


class RunState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    INTERRUPTED = "interrupted"

    @property
    def terminal(self) -> bool:
        return self not in (RunState.QUEUED, RunState.RUNNING)


class Mode(StrEnum):
    FULL = "full"
    INCREMENTAL = "incremental"
    AUTO = "auto"


def parse_mode(text: str) -> Mode:
    try:
        return Mode(text)
    except ValueError:
        raise InputError(
            f"invalid mode {text!r}: expected one of full, incremental, auto"
        ) from None


def parse_instant(text: str) -> datetime:
    """An ISO 8601 instant with its time zone (``...Z`` or ``+hh:mm``), as aware UTC."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(
            f"invalid time {text!r}: expected ISO 8601, e.g. 2026-11-23T06:00:00Z"
        ) from None
    if value.tzinfo is None:
        raise InputError(f"invalid time {text!r}: give a time zone, e.g. a trailing Z")
    return value.astimezone(UTC)


_TARGET_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@/+-]{0,199}$")


def validate_target_key(key: str) -> str:
    """Refuse keys that could not be shown, typed or put in a URL path safely."""
    if not _TARGET_KEY.fullmatch(key) or ".." in key:
        raise InputError(
            f"invalid target key {key!r}: use 1-200 letters, digits and _ . : @ / + -, "
            "starting with a letter or digit"
        )
    return key


@dataclass(frozen=True)
class Target:
    key: str
    name: str = ""
    attrs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RunRequest:
    """A wish to run ``source`` for ``target``: what enqueue receives."""

    source: str
    target: str | None
    mode: Mode = Mode.AUTO
    priority: int = 0
    group: str | None = None
    api: str | None = None
    not_before: datetime | None = None
    trigger: str = "manual"


@dataclass(frozen=True)
class Run:
    id: int
    source: str
    target: str | None
    mode: Mode
    priority: int
    state: RunState
    attempts: int
    group: str | None
    api: str | None
    trigger: str
    queued_at: datetime
    not_before: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    result: Mapping[str, Any] = field(default_factory=dict)
    worker: str | None = None
    """The process that runs it or ran it (``synchestra workers`` ids); None while queued."""
    continued_by: int | None = None
    """The run that carries this one's sync on: a retry that absorbed it, or the re-run
    queued when it was interrupted."""

    @property
    def pair(self) -> tuple[str, str | None]:
        return (self.source, self.target)


@dataclass(frozen=True)
class Enqueued:
    run: Run
    deduplicated: bool


@dataclass(frozen=True)
class Outcome:
    """How an attempt ended, as the worker reports it to the store."""

    run: Run
    state: RunState
    finished_at: datetime
    error: str | None = None
    result: Mapping[str, Any] = field(default_factory=dict)
    retry_at: datetime | None = None
    """When set, the run goes back to the queue (``state`` is ignored)."""
    watermark: Any = None
    watermark_set: bool = False
    full_run: bool = False
    deletes: tuple[RecordScope, ...] = ()
    """Record scopes whose records this attempt did not see are marked deleted, in
    the transaction that records the success: a run that fails, or ends otherwise,
    deletes nothing."""


@dataclass(frozen=True)
class Backlog:
    """How many runs of one API are queued and running (the ETA's input)."""

    queued: int = 0
    running: int = 0

    @property
    def left(self) -> float:
        """Runs still to do: a running run is taken as half done."""
        return self.queued + self.running / 2
