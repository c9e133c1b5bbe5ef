"""The bus: it numbers the events it publishes, filters by type and remembers recent ones."""

from __future__ import annotations

from datetime import UTC, datetime

from synchestra.core.bus import KEPT_LONGER, EventBus
from synchestra.core.events import AlertRaised, RecordsChanged, RunProgress, RunRef, RunStarted

AT = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
RUN = RunRef("1", "violations", None, "full")


def alert(number: int) -> AlertRaised:
    return AlertRaised(at=AT, source="violations", target=None, alert="a", message=str(number))


def test_publish_numbers_a_copy_and_leaves_the_event_as_built() -> None:
    bus = EventBus()
    built = RunStarted(at=AT, run=RUN)
    first, second = bus.publish(built), bus.publish(built)
    assert (built.id, first.id, second.id) == (0, 1, 2)
    assert first.to_dict() == second.to_dict() == built.to_dict()
    assert isinstance(first, RunStarted)


async def test_a_subscription_keeps_only_the_types_it_asked_for() -> None:
    bus = EventBus()
    with bus.subscribe([RunStarted.type, "alert.raised"]) as events:
        bus.publish(RunProgress(at=AT, run=RUN, done=1, total=2))
        bus.publish(RunStarted(at=AT, run=RUN))
        bus.publish(alert(1))
        assert [(await events.get()).id, (await events.get()).id] == [2, 3]
        assert events.get_nowait() is None
    assert bus.subscriber_count == 0


def test_a_subscriber_that_falls_behind_loses_its_oldest_events() -> None:
    bus = EventBus()
    with bus.subscribe(maxsize=2) as events:
        for _ in range(3):
            bus.publish(RunStarted(at=AT, run=RUN))
        assert events.dropped == 1
        kept = [events.get_nowait(), events.get_nowait()]
        assert [event.id for event in kept if event is not None] == [2, 3]


def test_since_replays_the_window_and_latest_keeps_alerts_apart() -> None:
    bus = EventBus(history=3)
    bus.publish(alert(1))
    for _ in range(3):
        bus.publish(RunProgress(at=AT, run=RUN, done=1, total=None))
    assert [event.id for event in bus.since(0)] == [2, 3, 4]  # the alert left the window
    assert [event.id for event in bus.since(3)] == [4]
    assert [event.data["message"] for event in bus.latest("alert.raised")] == ["1"]
    assert bus.latest(RecordsChanged.type) == []
    assert set(KEPT_LONGER) == {AlertRaised.type, RecordsChanged.type}
