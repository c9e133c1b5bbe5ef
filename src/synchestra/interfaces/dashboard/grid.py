"""The targets x sources grid: one page of targets, a cell per per-target source.

A cell shows what an operator asks first: is it running or queued now, and
otherwise how did the last run end (``never`` before the first one). Its title
(the hover text) gives the error of a failed run or when it last succeeded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from synchestra.core.durations import iso
from synchestra.core.models import Run, RunState
from synchestra.core.status import GridPage, PairStatus

PAGE_SIZE = 50
NEVER = "never"


@dataclass(frozen=True)
class Cell:
    source: str
    state: str
    title: str
    error: str | None


@dataclass(frozen=True)
class GridRow:
    key: str
    name: str
    cells: list[Cell]


@dataclass(frozen=True)
class Grid:
    sources: list[str]
    rows: list[GridRow]
    search: str
    page: int
    """1-based."""
    pages: int
    total: int


def pages_for(total: int, size: int = PAGE_SIZE) -> int:
    return max(1, -(-total // size))


def build_grid(found: GridPage, sources: Sequence[str], *, search: str, page: int) -> Grid:
    pairs = {(p.target, p.source): p for p in found.pairs}
    active: dict[tuple[str | None, str], Run] = {}
    for run in found.active:  # a running run wins over a queued follow-up
        key = (run.target, run.source)
        if key not in active or run.state is RunState.RUNNING:
            active[key] = run
    rows = [
        GridRow(
            key=target.key,
            name=target.name,
            cells=[
                _cell(source, pairs.get((target.key, source)), active.get((target.key, source)))
                for source in sources
            ],
        )
        for target in found.targets
    ]
    return Grid(list(sources), rows, search, page, pages_for(found.total), found.total)


def _cell(source: str, pair: PairStatus | None, run: Run | None) -> Cell:
    error = pair.error if pair is not None and pair.state == RunState.FAILED.value else None
    if run is not None:
        state = run.state.value
        title = f"{source}: {state} (priority {run.priority})"
    elif pair is not None:
        state = pair.state
        title = f"{source}: {state}, last success {iso(pair.last_success) or 'never'}"
    else:
        state, title = NEVER, f"{source}: never run"
    if error:
        title += f"\n{error}"
    return Cell(source, state, title, error)
