"""The in-process event bus: it numbers events, fans them out and remembers recent ones.

Publishing never blocks the engine: every subscriber has a bounded queue, and a
subscriber that falls behind loses its oldest events (counted in ``dropped``).
The bus also keeps a bounded window of recent events so that a reconnecting
reader (the SSE endpoint's ``Last-Event-ID``) can resume.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections import deque
from collections.abc import AsyncIterator, Iterable
from types import TracebackType
from typing import Final, TypeVar

from synchestra.core.events import AlertRaised, Event, RecordsChanged

E = TypeVar("E", bound=Event)


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


KEPT_LONGER: Final = {AlertRaised.type: 500, RecordsChanged.type: 500}
"""Event types also kept in a window of their own, so that run events cannot push them out."""


class EventBus:
    def __init__(self, *, history: int = 1000) -> None:
        self._subscribers: set[Subscription] = set()
        self._recent: deque[Event] = deque(maxlen=history)
        self._kept = {type_: deque[Event](maxlen=size) for type_, size in KEPT_LONGER.items()}
        self._ids = itertools.count(1)

    def publish(self, event: E) -> E:
        """Number ``event`` (its ``id``), remember it and offer it to every subscriber."""
        event = dataclasses.replace(event, id=next(self._ids))
        self._recent.append(event)
        if event.type in self._kept:
            self._kept[event.type].append(event)
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
