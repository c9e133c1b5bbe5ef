"""Events: one frozen class per type of the contract's event list.

``GET /api/events`` sends each event as one JSON object, ``{"type", "at", ...}``.
Each class here is one of those types: its wire ``type`` is a class variable,
its dataclass fields (after ``at``) are the object's other keys, in order, and
:meth:`Event.to_dict` renders the object. Timestamps are aware datetimes here
and ISO ``Z`` strings on the wire. Two field markers shape the rendering: a
*spread* field contributes its keys to the event's own (the run every run event
is about, an alert's details), and an *omitted-when-None* field is left out
rather than sent as null (the attempts of a run that ended without one).

``id`` is no field of the wire object: the bus numbers each event as it
publishes it (the SSE ``id:`` line), so an event built by the engine has id 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import Field, dataclass, field, fields
from datetime import datetime
from types import MappingProxyType
from typing import Any, ClassVar, Final

from synchestra.core.durations import iso
from synchestra.core.models import Run, RunState

_SPREAD: Final = MappingProxyType({"spread": True})
_OMIT_NONE: Final = MappingProxyType({"omit_none": True})


@dataclass(frozen=True)
class RunRef:
    """Which run a run event is about: its ``id``, ``source``, ``target`` and ``mode``.

    A run the store names by id only (one merged into another run) has no
    source nor mode: its events then say only ``id``.
    """

    id: str
    source: str | None
    target: str | None = None
    mode: str | None = None

    @classmethod
    def of(cls, run: Run) -> RunRef:
        return cls(str(run.id), run.source, run.target, run.mode.value)

    @classmethod
    def merged(cls, run_id: int) -> RunRef:
        """A run absorbed into another: known by its id only."""
        return cls(str(run_id), None)

    def as_dict(self) -> dict[str, Any]:
        if self.source is None:
            return {"id": self.id}
        return {"id": self.id, "source": self.source, "target": self.target, "mode": self.mode}


def wire(value: Any) -> Any:
    """A field's value as JSON sees it (timestamps ISO, read-only containers copied)."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, RunRef):
        return value.as_dict()
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple):
        return list(value)
    return value


@dataclass(frozen=True, kw_only=True)
class Event:
    """One thing that happened; a subclass per type, built by the engine, numbered by the bus."""

    type: ClassVar[str]
    at: datetime
    id: int = 0

    @property
    def data(self) -> Mapping[str, Any]:
        """The wire object's keys after ``type`` and ``at`` (read-only)."""
        return MappingProxyType(self.payload())

    def to_dict(self) -> dict[str, Any]:
        """The contract's JSON shape: ``type`` and ``at`` beside the fields."""
        return {"type": self.type, "at": iso(self.at), **self.payload()}

    def payload(self) -> dict[str, Any]:
        rendered: dict[str, Any] = {}
        for item in self.wire_fields():
            value = getattr(self, item.name)
            if value is None and item.metadata.get("omit_none"):
                continue
            if item.metadata.get("spread"):
                rendered.update(wire(value))
            else:
                rendered[item.name] = wire(value)
        return rendered

    @classmethod
    def wire_fields(cls) -> list[Field[Any]]:
        """The dataclass fields rendered on the wire (all but ``at`` and ``id``)."""
        return [item for item in fields(cls) if item.name not in ("at", "id")]


# --- runs ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RunEvent(Event):
    """An event about one run; the run's ``id``, ``source``, ``target``, ``mode`` come first."""

    run: RunRef = field(metadata=_SPREAD)


@dataclass(frozen=True, kw_only=True)
class RunQueued(RunEvent):
    type: ClassVar[str] = "run.queued"
    priority: int
    not_before: datetime | None


@dataclass(frozen=True, kw_only=True)
class RunStarted(RunEvent):
    type: ClassVar[str] = "run.started"


@dataclass(frozen=True, kw_only=True)
class RunProgress(RunEvent):
    type: ClassVar[str] = "run.progress"
    done: int
    total: int | None


@dataclass(frozen=True, kw_only=True)
class RunRetrying(RunEvent):
    type: ClassVar[str] = "run.retrying"
    attempts: int
    error: str | None
    retry_at: datetime


@dataclass(frozen=True, kw_only=True)
class RunEnded(RunEvent):
    """A run's last event: ``attempts`` and ``result`` when an attempt recorded the end.

    Without one (a run cancelled before or while it ran, one interrupted by
    recovery, one merged into another) they are absent from the wire object.
    """

    attempts: int | None = field(default=None, metadata=_OMIT_NONE)
    error: str | None
    result: Mapping[str, Any] | None = field(default=None, metadata=_OMIT_NONE)


@dataclass(frozen=True, kw_only=True)
class RunSucceeded(RunEnded):
    type: ClassVar[str] = "run.succeeded"


@dataclass(frozen=True, kw_only=True)
class RunFailed(RunEnded):
    type: ClassVar[str] = "run.failed"


@dataclass(frozen=True, kw_only=True)
class RunSkipped(RunEnded):
    type: ClassVar[str] = "run.skipped"


@dataclass(frozen=True, kw_only=True)
class RunCancelled(RunEnded):
    type: ClassVar[str] = "run.cancelled"


@dataclass(frozen=True, kw_only=True)
class RunInterrupted(RunEnded):
    type: ClassVar[str] = "run.interrupted"


ENDED: Final[Mapping[RunState, type[RunEnded]]] = MappingProxyType(
    {
        RunState.SUCCEEDED: RunSucceeded,
        RunState.FAILED: RunFailed,
        RunState.SKIPPED: RunSkipped,
        RunState.CANCELLED: RunCancelled,
        RunState.INTERRUPTED: RunInterrupted,
    }
)
"""The class of a run's last event, by the state it ended in."""


# --- records, health, alerts -----------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RecordsChanged(Event):
    """One per succeeded run and kind of record that changed: counts, and up to 100 keys."""

    type: ClassVar[str] = "records.changed"
    source: str
    target: str | None
    kind: str
    created: int
    updated: int
    unchanged: int
    deleted: int
    keys: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class HealthChanged(Event):
    """A source's health flipped (see :mod:`synchestra.engine.health`)."""

    type: ClassVar[str] = "health.changed"
    source: str
    healthy: bool
    consecutive_failures: int
    stale: bool


ALERT_KEYS: Final = frozenset({"type", "at", "source", "target", "alert", "message"})
"""The keys an alert's details cannot use: the event's own."""


@dataclass(frozen=True, kw_only=True)
class AlertRaised(Event):
    """An alert a connector raised in a run that succeeded; ``details`` join the top level."""

    type: ClassVar[str] = "alert.raised"
    source: str
    target: str | None
    alert: str
    message: str
    details: Mapping[str, Any] = field(default_factory=dict, metadata=_SPREAD)

    def __post_init__(self) -> None:
        taken = sorted(ALERT_KEYS & set(self.details))
        if taken:
            raise ValueError(f"alert details cannot be named {', '.join(taken)}")
        object.__setattr__(self, "details", MappingProxyType(dict(self.details)))


EVENT_CLASSES: Final[tuple[type[Event], ...]] = (
    RunQueued,
    RunStarted,
    RunProgress,
    RunRetrying,
    RunSucceeded,
    RunFailed,
    RunSkipped,
    RunCancelled,
    RunInterrupted,
    RecordsChanged,
    HealthChanged,
    AlertRaised,
)
"""Every type of event, in the contract's order (``alert.raised`` is ours)."""

EVENT_TYPES: Final = frozenset(cls.type for cls in EVENT_CLASSES)
