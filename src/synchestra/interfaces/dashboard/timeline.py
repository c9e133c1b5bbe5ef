"""The timeline of recent runs: lanes per group or per API, bars placed on a time axis.

A lane's runs are packed into rows so that bars on one row never overlap: a
group with ``max_running = 1`` or an API with one connection keeps a single row,
so overlap would show at once as a second row. The geometry is computed here,
in plain numbers, so that the template only draws and the tests can check it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from synchestra.core.models import Run
from synchestra.engine.sources import SourceSpec

LaneKind = Literal["group", "api"]

WIDTH = 1000.0
"""Width of the drawing in SVG units (it scales to the page)."""
LABEL_WIDTH = 130.0
ROW_HEIGHT = 14.0
LANE_GAP = 8.0
AXIS_HEIGHT = 18.0
MIN_BAR = 2.0
"""Bars of very short runs stay visible."""


@dataclass(frozen=True)
class Bar:
    run: Run
    x: float
    y: float
    width: float
    height: float
    """Taller for a higher priority, so that priority shows without hovering."""
    label: str


def bar_height(priority: int) -> float:
    """Priorities 0 to 3 and more: 6 to 12 units high, within a row."""
    return 6.0 + 2.0 * min(max(priority, 0), 3)


@dataclass(frozen=True)
class Lane:
    name: str
    y: float
    height: float
    rows: int
    bars: list[Bar]


@dataclass(frozen=True)
class Tick:
    x: float
    label: str


@dataclass(frozen=True)
class Timeline:
    lanes: list[Lane]
    ticks: list[Tick]
    height: float
    start: datetime
    end: datetime
    kind: LaneKind


def lane_of(run: Run, spec: SourceSpec | None, kind: LaneKind) -> str:
    """The lane a run is drawn in: its group (or API); a source without one has its own."""
    name = run.group if kind == "group" else run.api
    if name is None and spec is not None:
        name = spec.group if kind == "group" else spec.api
    return name if name is not None else f"{run.source} (own)"


def pack(intervals: Iterable[tuple[float, float]]) -> list[int]:
    """The row of each (start, end) interval, in input order: first row it fits on.

    Intervals are placed in order of start, so the result is the classic greedy
    interval partitioning, which uses as many rows as the deepest overlap.
    """
    items = list(intervals)
    rows_end: list[float] = []
    placed = [0] * len(items)
    for index in sorted(range(len(items)), key=lambda i: items[i]):
        start, end = items[index]
        row = next((r for r, last in enumerate(rows_end) if last <= start), len(rows_end))
        if row == len(rows_end):
            rows_end.append(end)
        else:
            rows_end[row] = end
        placed[index] = row
    return placed


def build(
    runs: Iterable[Run],
    sources: Mapping[str, SourceSpec],
    *,
    now: datetime,
    span: timedelta,
    kind: LaneKind,
) -> Timeline:
    """Lanes, bars and ticks of the runs started within ``span`` before ``now``."""
    start = now - span
    scale = (WIDTH - LABEL_WIDTH) / span.total_seconds()
    by_lane: dict[str, list[Run]] = {}
    for run in runs:
        if run.started_at is not None and run.started_at >= start:
            by_lane.setdefault(lane_of(run, sources.get(run.source), kind), []).append(run)
    lanes = []
    y = AXIS_HEIGHT
    for name in sorted(by_lane):
        lane = _lane(name, by_lane[name], start, now, scale, y)
        lanes.append(lane)
        y += lane.height + LANE_GAP
    return Timeline(lanes, _ticks(start, span, scale), y, start, now, kind)


def _lane(
    name: str, runs: list[Run], start: datetime, now: datetime, scale: float, top: float
) -> Lane:
    def x(moment: datetime) -> float:
        return LABEL_WIDTH + (moment - start).total_seconds() * scale

    spans = [(x(run.started_at or now), x(run.finished_at or now)) for run in runs]
    rows = pack(spans)  # by real times: a bar widened to MIN_BAR may touch the next
    bars = [
        Bar(
            run=run,
            x=left,
            y=top + (row + 1) * ROW_HEIGHT - 1 - bar_height(run.priority),  # on the row's floor
            width=max(right - left, MIN_BAR),
            height=bar_height(run.priority),
            label=f"p{run.priority}",
        )
        for run, (left, right), row in zip(runs, spans, rows, strict=True)
    ]
    count = max(rows, default=0) + 1
    return Lane(name, top, count * ROW_HEIGHT, count, bars)


def _ticks(start: datetime, span: timedelta, scale: float) -> list[Tick]:
    """About six ticks on whole minutes (or whole seconds for short spans)."""
    seconds = span.total_seconds()
    step = next(
        (s for s in (5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600) if seconds / s <= 6),
        7200,
    )
    first = int(start.timestamp() // step + 1) * step
    ticks = []
    for stamp in range(first, int(start.timestamp() + seconds) + 1, step):
        moment = datetime.fromtimestamp(stamp, start.tzinfo)
        label = moment.strftime("%H:%M" if step >= 60 else "%H:%M:%S")
        ticks.append(Tick(LABEL_WIDTH + (stamp - start.timestamp()) * scale, label))
    return ticks
