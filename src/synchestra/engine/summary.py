"""The summary of a ``sync``: how each unit (a target, or a source without targets) ended.

A unit failed when any of its runs failed (or was cancelled or interrupted),
was skipped when all its runs were skipped, and succeeded otherwise: skipped
runs are not failures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from synchestra.core.documents import run_document
from synchestra.core.models import Run, RunState
from synchestra.store.abc import DataStore

_NOT_FAILED = (RunState.SUCCEEDED, RunState.SKIPPED)


@dataclass(frozen=True)
class SyncSummary:
    total: int
    succeeded: int
    failed: int
    skipped: int
    errors: list[dict[str, Any]]
    runs: list[Run]

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def as_dict(self) -> dict[str, Any]:
        """The summary as ``sync --json`` prints it."""
        return {
            "total": self.total,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "skipped": self.skipped,
            "errors": self.errors,
            "runs": [run_document(run) for run in self.runs],
        }


async def summarize(runs: Sequence[Run], store: DataStore) -> SyncSummary:
    units: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        unit = ("target", run.target) if run.target is not None else ("source", run.source)
        units.setdefault(unit, []).append(run)
    succeeded = failed = skipped = 0
    errors = []
    for (kind, key), unit_runs in units.items():
        bad = [run for run in unit_runs if run.state not in _NOT_FAILED]
        if bad:
            failed += 1
            errors.append(await _unit_errors(kind, key, bad, store))
        elif all(run.state is RunState.SKIPPED for run in unit_runs):
            skipped += 1
        else:
            succeeded += 1
    return SyncSummary(len(units), succeeded, failed, skipped, errors, list(runs))


async def _unit_errors(kind: str, key: str, bad: list[Run], store: DataStore) -> dict[str, Any]:
    if kind == "target":
        target = await store.get_target(key)
        name = target.name if target else ""
        unit_target: str | None = key
    else:
        name, unit_target = key, None
    return {
        "target": unit_target,
        "name": name,
        "errors": [{"source": run.source, "error": run.error or run.state.value} for run in bad],
    }
