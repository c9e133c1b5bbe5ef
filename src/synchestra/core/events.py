"""The in-process event bus: immutable events, subscriptions as context managers.

Publishing never blocks the engine: every subscriber has a bounded queue, and a
subscriber that falls behind loses its oldest events (counted in ``dropped``).
The bus also keeps a bounded window of recent events so that a reconnecting
reader (the SSE endpoint's ``Last-Event-ID``) can resume.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType, TracebackType
from typing import Any, Final

EVENT_TYPES: Final = frozenset(
    {
        "run.queued",
        "run.started",
        "run.progress",
        "run.retrying",
        "run.succeeded",
        "run.failed",
        "run.skipped",
        "run.cancelled",
        "run.interrupted",
        "records.changed",
        "health.changed",
        "alert.raised",
    }
)


@dataclass(frozen=True)
class Event:
    """One thing that happened. ``data`` is read-only."""

    type: str
    at: datetime
    data: Mapping[str, Any] = field(default_factory=dict)
    id: int = 0

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {self.type!r}")
        object.__setattr__(self, "data", MappingProxyType(dict(self.data)))

    def to_dict(self) -> dict[str, Any]:
        """The contract's JSON shape: ``type`` and ``at`` beside the fields."""
        return {"type": self.type, "at": iso(self.at), **self.data}


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``, as the contract writes timestamps."""
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")


class Subscription:
    """An async iterator over the events published after it was opened."""

    def __init__(self, bus: EventBus, types: frozenset[str] | None, maxsize: int) -> None:
        self._bus = bus
        self._types = types
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self.dropped = 0

    def offer(self, event: Event) -> None:
        if self._types is not None and event.type not in self._types:
            return
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(event)

    async def get(self) -> Event:
        return await self._queue.get()

    def get_nowait(self) -> Event | None:
        return None if self._queue.empty() else self._queue.get_nowait()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            yield await self._queue.get()

    def __enter__(self) -> Subscription:
        self._bus._subscribers.add(self)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._bus._subscribers.discard(self)


KEPT_LONGER: Final = {"alert.raised": 500, "records.changed": 500}
"""Event types also kept in a window of their own, so that run events cannot push them out."""


class EventBus:
    def __init__(self, *, history: int = 1000) -> None:
        self._subscribers: set[Subscription] = set()
        self._recent: deque[Event] = deque(maxlen=history)
        self._kept = {type_: deque[Event](maxlen=size) for type_, size in KEPT_LONGER.items()}
        self._ids = itertools.count(1)

    def publish(self, type: str, at: datetime, **data: Any) -> Event:
        event = Event(type=type, at=at, data=data, id=next(self._ids))
        self._recent.append(event)
        if type in self._kept:
            self._kept[type].append(event)
        for subscriber in list(self._subscribers):
            subscriber.offer(event)
        return event

    def subscribe(
        self, types: Iterable[str] | None = None, *, maxsize: int = 10_000
    ) -> Subscription:
        """Use as ``with bus.subscribe() as events: async for event in events: ...``."""
        return Subscription(self, frozenset(types) if types is not None else None, maxsize)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def since(self, event_id: int) -> list[Event]:
        """Recent events after ``event_id`` (as far back as the window reaches)."""
        return [event for event in self._recent if event.id > event_id]

    def latest(self, type: str, limit: int = 50) -> list[Event]:
        """The newest events of a type kept longer (see :data:`KEPT_LONGER`), newest first."""
        return list(self._kept[type])[::-1][:limit]
