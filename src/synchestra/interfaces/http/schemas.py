"""Request and response bodies of the HTTP API (they make ``/openapi.json`` truthful)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator
from typing_extensions import TypedDict

from synchestra.core.durations import parse_duration
from synchestra.core.models import Mode, RunState
from synchestra.store.targets import storable


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SyncRequest(_Request):
    """``POST /api/sync/{source}``."""

    targets: list[str] | None = None
    all_targets: bool = False
    mode: Mode = Mode.AUTO
    priority: int | None = None


class FullSyncRequest(_Request):
    """``POST /api/sync/{source}/full``: as :class:`SyncRequest`, the mode being ``full``."""

    targets: list[str] | None = None
    all_targets: bool = False
    priority: int | None = None


class SyncManyRequest(_Request):
    """``POST /api/sync``: several sources at once (every source when ``sources`` is null)."""

    sources: list[str] | None = None
    all_targets: bool = True
    targets: list[str] | None = None
    mode: Mode = Mode.AUTO
    priority: int | None = None


class TargetSyncRequest(_Request):
    """``POST /api/targets/{key}/sync``."""

    sources: list[str] | None = None
    max_age: str | None = Field(
        default=None, description='only sources whose last success is older, e.g. "6h"'
    )

    @field_validator("max_age")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)  # a ValueError naming the accepted forms
        return value


class TargetCreate(_Request):
    """``POST /api/targets``."""

    key: str
    name: str = ""
    attrs: dict[str, str] = Field(default_factory=dict)

    # PostgreSQL cannot store a NUL nor (as no UTF-8 can) a lone surrogate, which JSON
    # escapes let through: refused here, they are a 422 naming the field, not a 500.
    @field_validator("name")
    @classmethod
    def _storable_name(cls, value: str) -> str:
        if not storable(value):
            raise ValueError(_UNSTORABLE)
        return value

    @field_validator("attrs")
    @classmethod
    def _storable_attrs(cls, value: dict[str, str]) -> dict[str, str]:
        if not all(storable(text) for item in value.items() for text in item):
            raise ValueError(_UNSTORABLE)
        return value


_UNSTORABLE = "must be text without NUL characters or lone surrogates"


# --- answers -----------------------------------------------------------------


class ErrorBody(BaseModel):
    error: str
    detail: Any = None


class QueuedRun(BaseModel):
    id: str
    source: str
    target: str | None
    state: RunState
    deduplicated: bool


class QueuedRuns(BaseModel):
    runs: list[QueuedRun]


class RunOut(BaseModel):
    id: str
    source: str
    target: str | None
    state: RunState
    mode: Mode
    priority: int
    queued_at: str | None
    started_at: str | None
    finished_at: str | None
    attempts: int
    error: str | None
    result: dict[str, Any]
    worker: str | None


class RunList(BaseModel):
    runs: list[RunOut]


class WorkerOut(BaseModel):
    id: str
    host: str
    pid: int
    roles: list[str]
    started_at: str
    heartbeat_at: str
    running: int
    capacity: int
    version: str
    scheduler: bool
    live: bool


class WorkerList(BaseModel):
    workers: list[WorkerOut]


# TypedDicts, not models: a page of targets is serialized from plain dicts in one pass
# (TARGET_PAGE); the OpenAPI schema is the same either way (a docstring would add to it).
class TargetOut(TypedDict):
    key: str
    name: str
    attrs: dict[str, str]


class TargetPage(TypedDict):
    targets: list[TargetOut]
    next_cursor: str | None


TARGET_PAGE: TypeAdapter[TargetPage] = TypeAdapter(TargetPage)
"""Serializes ``GET /api/targets`` answers (``warnings="error"``: a value of the wrong
type fails instead of being sent)."""


class TargetError(BaseModel):
    source: str
    error: str | None
    at: str | None


class PairOut(BaseModel):
    state: str
    last_attempt: str | None
    last_success: str | None
    error: str | None


class TargetStatus(BaseModel):
    target: str
    name: str
    last_run: str | None
    success: bool
    errors: list[TargetError]
    sources: dict[str, PairOut]


class RecordOut(BaseModel):
    kind: str
    key: str
    target: str | None
    source: str
    data: dict[str, Any]
    first_seen: str | None
    last_seen: str | None
    changed_at: str | None
    deleted_at: str | None
    previous: dict[str, Any] | None = Field(
        default=None,
        description="with changed_since: the record's data at that instant, "
        "or null when it did not exist then (created since); absent otherwise",
    )


class RecordPage(BaseModel):
    records: list[RecordOut]
    next_cursor: str | None


class SourceHealthOut(BaseModel):
    healthy: bool
    state: str
    last_success: str | None
    consecutive_failures: int
    stale: bool


class ProcessesHealthOut(BaseModel):
    live: int
    scheduler: str | None


class Health(BaseModel):
    status: Literal["ok", "degraded", "down"]
    all_healthy: bool
    sources: dict[str, SourceHealthOut]
    workers: ProcessesHealthOut | None = None


class SourceStatus(BaseModel):
    source: str
    status: Literal["idle", "queued", "running", "completed", "error"]
    started_at: str | None
    completed_at: str | None
    error: str | None
    next_run_at: str | None
    queued: int
    running: int


class ApiEta(BaseModel):
    runs_left: int
    seconds: float | None
    bound: Literal["rate", "concurrency", "workers", "unknown"]


class Eta(BaseModel):
    """When the queue should be empty, from the backlog and the APIs' quotas (docs/engine.md)."""

    runs_left: int
    seconds: float | None = Field(description="null when it cannot be estimated yet")
    finishes_at: str | None
    by_api: dict[str, ApiEta] = Field(description='per API; "-" for sources without one')


class SyncStatus(BaseModel):
    sources: list[SourceStatus]
    health: Health
    eta: Eta


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route: these error statuses, each with the error body."""
    return {code: {"model": ErrorBody, "description": _MEANING[code]} for code in codes}


_MEANING = {
    401: "no bearer token",
    403: "wrong bearer token",
    404: "not found",
    422: "invalid request: `detail` lists the fields",
    503: "down",
}
