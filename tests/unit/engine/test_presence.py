"""A process's presence: renewals, what they learn, and fencing itself when it cannot renew."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from synchestra.core.clock import FakeClock
from synchestra.core.workers import Beat, WorkerInfo
from synchestra.engine.presence import Presence

LEASE = timedelta(seconds=30)


class FlakyStore:
    """The presence's view of a store: registrations and renewals, which may fail."""

    def __init__(self) -> None:
        self.registered: list[str] = []
        self.answer: Beat | Exception = Beat(alive=True)

    async def register_worker(self, info: WorkerInfo) -> None:
        if isinstance(self.answer, Exception):
            raise self.answer
        self.registered.append(info.id)

    async def heartbeat(self, worker_id: str, **_: Any) -> Beat:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def presence(store: FlakyStore, clock: FakeClock) -> tuple[Presence, list[str]]:
    me = Presence(store, clock, capacity=4, lease=LEASE, heartbeat=timedelta(seconds=10))  # type: ignore[arg-type]
    happened: list[str] = []
    me.on_lost = lambda: happened.append("lost")
    me.on_cancel = lambda ids: happened.append(f"cancel {list(ids)}")
    return me, happened


async def test_a_process_that_cannot_renew_for_a_lease_stops_its_runs(clock: FakeClock) -> None:
    store = FlakyStore()
    me, happened = presence(store, clock)
    await me._register()
    first = me.worker_id
    store.answer = ConnectionRefusedError("the database is away")
    clock.set(clock.now() + LEASE)
    await me.beat()
    assert happened == [] and me.joined  # not past the lease yet
    clock.set(clock.now() + timedelta(seconds=1))
    await me.beat()
    assert happened == ["lost"] and not me.joined
    store.answer = Beat(alive=True, term=3)
    await me.beat()  # the database is back: a new process id, the old one's runs recovered
    assert me.joined and me.worker_id != first
    assert store.registered == [first, me.worker_id]
    assert me.term is not None and me.term.term == 3


async def test_a_process_declared_dead_stops_its_runs_and_rejoins(clock: FakeClock) -> None:
    store = FlakyStore()
    me, happened = presence(store, clock)
    await me._register()
    store.answer = Beat(alive=False)
    await me.beat()
    assert happened == ["lost"] and not me.joined
    store.answer = Beat(alive=True, cancel=(7,))
    await me.beat()
    assert happened == ["lost", "cancel [7]"] and me.joined
