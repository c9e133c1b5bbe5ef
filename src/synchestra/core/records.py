"""Synced records as the store hands them out, and what an upsert reports.

Plain values: the store takes and returns these (never database rows), so a
source, the engine and the interfaces read records without knowing SQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

MAX_CHANGED_KEYS = 100
"""How many created or updated records an upsert (or a run) reports one by one."""


@dataclass(frozen=True)
class Record:
    """One stored record: the latest data a source fetched under (kind, target, key).

    ``first_seen`` is when it first appeared, ``last_seen`` the last run that
    fetched it, ``changed_at`` the last time it appeared, changed or was deleted,
    ``deleted_at`` None while the source still has it.
    """

    id: int
    """The store's id: what listing cursors and :meth:`versions_at` go by."""
    kind: str
    key: str
    target: str | None
    """None: a record of a source that is not per-target."""
    source: str
    data: Mapping[str, Any]
    first_seen: datetime
    last_seen: datetime
    changed_at: datetime
    deleted_at: datetime | None = None


@dataclass(frozen=True)
class RecordScope:
    """Whose records: a kind, for a target (or none), written by one attempt of one run."""

    kind: str
    target: str | None
    source: str
    run_id: int
    attempt: int = 1


@dataclass(frozen=True)
class RecordQuery:
    """Which records a listing returns, one page at a time (``cursor``: the previous page's)."""

    kind: str
    target: str | None = None
    changed_since: datetime | None = None
    include_deleted: bool = False
    limit: int = 100
    cursor: str | None = None


@dataclass(frozen=True)
class Change:
    """One record created or updated: its data before (None: created) and after."""

    key: str
    before: Mapping[str, Any] | None
    after: Mapping[str, Any]


@dataclass
class ChangeCounts:
    """What upserts did: counts, and the first ``MAX_CHANGED_KEYS`` changes themselves."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    changes: list[Change] = field(default_factory=list)
    """Records created or updated, the first ``MAX_CHANGED_KEYS`` of them."""

    @property
    def changed_keys(self) -> list[str]:
        return [change.key for change in self.changes]

    def add(self, other: ChangeCounts) -> None:
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.deleted += other.deleted
        room = MAX_CHANGED_KEYS - len(self.changes)
        self.changes.extend(other.changes[: max(room, 0)])

    def as_dict(self) -> dict[str, int]:
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "deleted": self.deleted,
        }
