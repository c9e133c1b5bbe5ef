"""A run as the contract writes it in JSON.

It lives in core, not with the other renderers in ``synchestra.interfaces.documents``,
because :meth:`~synchestra.engine.summary.SyncSummary.as_dict` (public API) lists
runs too and the engine may not import the interfaces.
"""

from __future__ import annotations

from typing import Any

from synchestra.core.durations import iso
from synchestra.core.models import Run


def run_document(run: Run) -> dict[str, Any]:
    return {
        "id": str(run.id),
        "source": run.source,
        "target": run.target,
        "state": run.state.value,
        "mode": run.mode.value,
        "priority": run.priority,
        "queued_at": iso(run.queued_at),
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "attempts": run.attempts,
        "error": run.error,
        "result": dict(run.result),
        "worker": run.worker,
    }
