"""The contract's documents, rendered from the engine's typed values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from synchestra.core.models import Enqueued, Mode, Run, RunState, Target
from synchestra.engine.eta import ApiEta, QueueEta
from synchestra.engine.health import SourceHealth, aggregate
from synchestra.engine.status import (
    SourceStatus,
    SyncStatus,
    TargetFailure,
    TargetSource,
    TargetStatus,
)
from synchestra.engine.summary import SyncSummary
from synchestra.interfaces.documents import (
    eta_document,
    health_document,
    queued_document,
    record_document,
    run_document,
    sync_status_document,
    target_document,
    target_status_document,
)

AT = datetime(2026, 12, 1, 6, 0, 4, 123000, tzinfo=UTC)
AT_TEXT = "2026-12-01T06:00:04.123000Z"


def _health() -> SyncStatus:
    verdicts = {
        "b": SourceHealth(False, "error", None, 3, False),
        "a": SourceHealth(True, "completed", AT, 0, False),
    }
    sources = (SourceStatus("a", "completed", AT, AT, None, AT, 1, 2), SourceStatus("b", "error"))
    return SyncStatus(sources, aggregate(verdicts))


def test_health_is_sorted_and_aggregated() -> None:
    document = health_document(_health().health)
    assert document == {
        "status": "degraded",
        "all_healthy": False,
        "sources": {
            "a": {
                "healthy": True,
                "state": "completed",
                "last_success": AT_TEXT,
                "consecutive_failures": 0,
                "stale": False,
            },
            "b": {
                "healthy": False,
                "state": "error",
                "last_success": None,
                "consecutive_failures": 3,
                "stale": False,
            },
        },
    }
    assert list(document["sources"]) == ["a", "b"]
    assert health_document(aggregate({}))["status"] == "ok"


def test_the_sync_status_has_an_eta_only_when_estimated() -> None:
    status = _health()
    document = sync_status_document(status)
    assert "eta" not in document
    assert document["sources"][0] == {
        "source": "a",
        "status": "completed",
        "started_at": AT_TEXT,
        "completed_at": AT_TEXT,
        "error": None,
        "next_run_at": AT_TEXT,
        "queued": 1,
        "running": 2,
    }
    assert document["sources"][1]["started_at"] is None
    eta = QueueEta(3, 12.34, AT, {"erp": ApiEta(3, 12.34, "rate"), None: ApiEta(0, 0.0, "workers")})
    with_eta = sync_status_document(SyncStatus(status.sources, status.health, eta))
    assert with_eta["eta"] == eta_document(eta)


def test_the_eta_rounds_seconds_and_names_sources_without_an_api() -> None:
    eta = QueueEta(
        3, 12.34, AT, {None: ApiEta(1, None, "unknown"), "erp": ApiEta(2, 12.34, "rate")}
    )
    assert eta_document(eta) == {
        "runs_left": 3,
        "seconds": 12.3,
        "finishes_at": AT_TEXT,
        "by_api": {
            "-": {"runs_left": 1, "seconds": None, "bound": "unknown"},
            "erp": {"runs_left": 2, "seconds": 12.3, "bound": "rate"},
        },
    }


def test_a_target_status_document() -> None:
    status = TargetStatus(
        target="dot:1",
        name="Acme",
        last_run=AT,
        success=False,
        errors=(TargetFailure("census", "boom", AT),),
        sources={
            "census": TargetSource("failed", AT, None, "boom"),
            "basics": TargetSource("running", None, AT, None),
        },
    )
    assert target_status_document(status) == {
        "target": "dot:1",
        "name": "Acme",
        "last_run": AT_TEXT,
        "success": False,
        "errors": [{"source": "census", "error": "boom", "at": AT_TEXT}],
        "sources": {
            "census": {
                "state": "failed",
                "last_attempt": AT_TEXT,
                "last_success": None,
                "error": "boom",
            },
            "basics": {
                "state": "running",
                "last_attempt": None,
                "last_success": AT_TEXT,
                "error": None,
            },
        },
    }


def _run() -> Run:
    return Run(
        id=7,
        source="census",
        target=None,
        mode=Mode.FULL,
        priority=2,
        state=RunState.SUCCEEDED,
        attempts=1,
        group=None,
        api="datahub",
        trigger="manual",
        queued_at=AT,
        not_before=AT,
        started_at=AT + timedelta(seconds=1),
        result={"created": 3},
    )


def test_runs_and_queued_runs() -> None:
    run = _run()
    assert run_document(run) == {
        "id": "7",
        "source": "census",
        "target": None,
        "state": "succeeded",
        "mode": "full",
        "priority": 2,
        "queued_at": AT_TEXT,
        "started_at": "2026-12-01T06:00:05.123000Z",
        "finished_at": None,
        "attempts": 1,
        "error": None,
        "result": {"created": 3},
        "worker": None,
    }
    assert queued_document([Enqueued(run, True)]) == {
        "runs": [
            {
                "id": "7",
                "source": "census",
                "target": None,
                "state": "succeeded",
                "deduplicated": True,
            }
        ]
    }
    summary = SyncSummary(1, 1, 0, 0, [], [run])
    assert summary.as_dict()["runs"] == [run_document(run)]


def test_targets_and_records() -> None:
    assert target_document(Target("dot:1", "Acme", {"state": "TX"})) == {
        "key": "dot:1",
        "name": "Acme",
        "attrs": {"state": "TX"},
    }
    row = SimpleNamespace(
        kind="carrier",
        key="1",
        target="",
        source="census",
        data={"name": "Acme"},
        first_seen=AT,
        last_seen=AT,
        changed_at=AT,
        deleted_at=None,
    )
    document = record_document(row)
    assert document["target"] is None and document["deleted_at"] is None
    assert document["first_seen"] == AT_TEXT and document["data"] == {"name": "Acme"}
