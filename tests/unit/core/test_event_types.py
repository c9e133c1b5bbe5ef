"""The event classes against the contract: one class per type, each rendering its wire shape."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import synchestra
from synchestra.core import events
from synchestra.core.events import (
    ENDED,
    EVENT_CLASSES,
    EVENT_TYPES,
    AlertRaised,
    Event,
    HealthChanged,
    RecordsChanged,
    RunCancelled,
    RunEvent,
    RunFailed,
    RunInterrupted,
    RunProgress,
    RunQueued,
    RunRef,
    RunRetrying,
    RunSkipped,
    RunStarted,
    RunSucceeded,
)
from synchestra.core.models import RunState

# /work/shared/CONTRACT.md, "HTTP API", `GET /api/events`: the types it lists, in its order.
CONTRACT_TYPES = [
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
]
OURS = ["alert.raised"]  # docs/fmcsa.md, "Compliance alerts"

# The contract's `records.changed`: source, target, kind, the four counts, keys.
RECORDS_CHANGED_FIELDS = [
    "source",
    "target",
    "kind",
    "created",
    "updated",
    "unchanged",
    "deleted",
    "keys",
]
# The contract's alerts (and docs/fmcsa.md): source, target, alert, message, then the details.
ALERT_FIELDS = ["source", "target", "alert", "message"]
RUN_FIELDS = ["id", "source", "target", "mode"]

AT = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
WHEN = "2024-03-01T12:00:00Z"
LATER = AT + timedelta(seconds=30)
RUN = RunRef("7", "violations", "dot:1", "incremental")
RUN_WIRE = {"id": "7", "source": "violations", "target": "dot:1", "mode": "incremental"}


def concrete_subclasses(cls: type[Event]) -> set[type[Event]]:
    """Every class below ``cls`` that names a wire type."""
    found = set()
    for sub in cls.__subclasses__():
        if "type" in vars(sub):
            found.add(sub)
        found |= concrete_subclasses(sub)
    return found


def test_there_is_one_class_per_type_of_the_contract_plus_alerts() -> None:
    types = [cls.type for cls in EVENT_CLASSES]
    assert types == CONTRACT_TYPES + OURS
    assert frozenset(CONTRACT_TYPES + OURS) == EVENT_TYPES
    assert concrete_subclasses(Event) == set(EVENT_CLASSES)  # none left out of the list


def test_every_final_state_has_its_event_class() -> None:
    finals = {state for state in RunState if state.terminal}
    assert set(ENDED) == finals
    assert all(ENDED[state].type == f"run.{state.value}" for state in finals)


def test_records_changed_says_what_the_contract_names_and_nothing_more() -> None:
    assert [item.name for item in RecordsChanged.wire_fields()] == RECORDS_CHANGED_FIELDS
    event = RecordsChanged(
        at=AT,
        source="orders",
        target=None,
        kind="order",
        created=2,
        updated=1,
        unchanged=5,
        deleted=0,
        keys=("7", "8", "9"),
    )
    assert event.to_dict() == {
        "type": "records.changed",
        "at": WHEN,
        "source": "orders",
        "target": None,
        "kind": "order",
        "created": 2,
        "updated": 1,
        "unchanged": 5,
        "deleted": 0,
        "keys": ["7", "8", "9"],
    }
    assert list(event.to_dict()) == ["type", "at", *RECORDS_CHANGED_FIELDS]


def test_an_alert_puts_its_details_beside_the_fields_the_contract_names() -> None:
    assert [item.name for item in AlertRaised.wire_fields()][:4] == ALERT_FIELDS
    event = AlertRaised(
        at=AT,
        source="csa_scores",
        target="dot:1",
        alert="basic.changed",
        message="carrier 1: Unsafe Driving 40 -> 71",
        details={"before": 40, "after": 71},
    )
    wire = event.to_dict()
    assert list(wire) == ["type", "at", *ALERT_FIELDS, "before", "after"]
    assert wire == {
        "type": "alert.raised",
        "at": WHEN,
        "source": "csa_scores",
        "target": "dot:1",
        "alert": "basic.changed",
        "message": "carrier 1: Unsafe Driving 40 -> 71",
        "before": 40,
        "after": 71,
    }


@pytest.mark.parametrize("name", ["source", "target", "type", "at", "alert", "message"])
def test_alert_details_cannot_take_the_name_of_a_field(name: str) -> None:
    with pytest.raises(ValueError, match=name):
        AlertRaised(at=AT, source="s", target=None, alert="a", message="m", details={name: 1})


# What each publisher of the engine sends today (the wire format, which must not change).
WIRE_SHAPES: list[tuple[Event, dict[str, Any]]] = [
    (
        RunQueued(at=AT, run=RUN, priority=5, not_before=LATER),
        {**RUN_WIRE, "priority": 5, "not_before": "2024-03-01T12:00:30Z"},
    ),
    (
        RunQueued(at=AT, run=RUN, priority=0, not_before=None),
        {**RUN_WIRE, "priority": 0, "not_before": None},
    ),
    (RunStarted(at=AT, run=RUN), RUN_WIRE),
    (RunProgress(at=AT, run=RUN, done=3, total=None), {**RUN_WIRE, "done": 3, "total": None}),
    (
        RunRetrying(at=AT, run=RUN, attempts=2, error="HTTP 503 from qcmobile", retry_at=LATER),
        {
            **RUN_WIRE,
            "attempts": 2,
            "error": "HTTP 503 from qcmobile",
            "retry_at": "2024-03-01T12:00:30Z",
        },
    ),
    *(
        (
            cls(at=AT, run=RUN, attempts=1, error=error, result={"created": 1}),
            {**RUN_WIRE, "attempts": 1, "error": error, "result": {"created": 1}},
        )
        for cls, error in [
            (RunSucceeded, None),
            (RunFailed, "boom"),
            (RunSkipped, "not configured"),
            (RunCancelled, "cancelled"),
            (RunInterrupted, "interrupted: shutting down"),
        ]
    ),
    (RunCancelled(at=AT, run=RUN, error="cancelled"), {**RUN_WIRE, "error": "cancelled"}),
    (
        RunCancelled(at=AT, run=RunRef.merged(8), error="merged into run 7"),
        {"id": "8", "error": "merged into run 7"},
    ),
    (RunInterrupted(at=AT, run=RUN, error=None), {**RUN_WIRE, "error": None}),
    (
        HealthChanged(
            at=AT, source="violations", healthy=False, consecutive_failures=3, stale=False
        ),
        {"source": "violations", "healthy": False, "consecutive_failures": 3, "stale": False},
    ),
]


@pytest.mark.parametrize(
    ("event", "fields"), WIRE_SHAPES, ids=[event.type for event, _ in WIRE_SHAPES]
)
def test_to_dict_is_the_wire_shape(event: Event, fields: dict[str, Any]) -> None:
    wire = event.to_dict()
    assert wire == {"type": event.type, "at": WHEN, **fields}
    assert list(wire) == ["type", "at", *fields]  # the keys in the publishers' order
    assert dict(event.data) == fields


def test_every_type_has_a_wire_shape_above() -> None:
    shaped = {event.type for event, _ in WIRE_SHAPES}
    assert shaped | {"records.changed", "alert.raised"} == EVENT_TYPES


def test_a_run_event_begins_with_its_run() -> None:
    assert all(issubclass(cls, RunEvent) for cls in EVENT_CLASSES if cls.type.startswith("run."))
    for event, _ in WIRE_SHAPES:
        if isinstance(event, RunEvent) and event.run.source is not None:
            assert list(event.to_dict())[2:6] == RUN_FIELDS


def test_events_are_frozen_and_their_data_read_only() -> None:
    event = RunStarted(at=AT, run=RUN)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.at = LATER  # type: ignore[misc]
    with pytest.raises(TypeError):
        event.data["source"] = "other"  # type: ignore[index]
    assert event.id == 0  # numbered by the bus, not by whoever builds it


def test_the_package_root_exports_the_base_class_and_the_bus() -> None:
    assert synchestra.Event is events.Event
    assert all(issubclass(cls, synchestra.Event) for cls in EVENT_CLASSES)
    assert synchestra.EventBus().publish(RunStarted(at=AT, run=RUN)).id == 1
