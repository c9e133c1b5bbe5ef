"""What one turn of the engine's loop asks of the store and gets back.

The loop hands the store its finished attempts and its free capacity under
:class:`ClaimLimits`; the store answers with a :class:`Turn`: the runs it
claimed (each with what it needs to start) and what completing the others did.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from synchestra.core.models import Enqueued, Outcome, Run, Target
from synchestra.core.status import PairStatus


@dataclass(frozen=True)
class ClaimLimits:
    """What bounds a claim besides the queue itself."""

    group_max: Mapping[str, int] = field(default_factory=dict)
    """``max_running`` per group; a group not listed allows 1."""
    api_cap: Mapping[str, int] = field(default_factory=dict)
    """Concurrency cap per API; an API not listed is unbounded."""
    saturated_apis: frozenset[str] = frozenset()
    """APIs with no rate room right now: their runs wait."""
    only: frozenset[int] | None = None
    """Claim only these runs (``sync`` runs what it asked for, never others' work)."""

    def group_limit(self, group: str) -> int:
        return self.group_max.get(group, 1)


@dataclass(frozen=True)
class Claimed:
    """A claimed run with what it needs to start: its target and its pair status."""

    run: Run
    target: Target | None
    pair: PairStatus | None


@dataclass
class Turn:
    """What one ``complete_and_claim`` did."""

    claimed: list[Claimed] = field(default_factory=list)
    merged: list[tuple[int, int]] = field(default_factory=list)
    """(queued run absorbed by a retry, the retrying run)"""
    requeued: list[Enqueued] = field(default_factory=list)
    """Runs queued again for interrupted ones."""
    cancelled: list[int] = field(default_factory=list)
    """Runs that would have retried but were asked to cancel: they ended ``cancelled``."""
    deleted: dict[int, dict[str, int]] = field(default_factory=dict)
    """Records marked deleted by a run's success: run id -> kind -> how many."""
    recorded: dict[int, Outcome] = field(default_factory=dict)
    """Outcomes recorded with a changed result (the deletions counted), by run id."""
    lost: list[int] = field(default_factory=list)
    """Runs whose outcome was dropped: this process no longer owned them (fencing)."""
