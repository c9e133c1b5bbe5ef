"""An FMCSA carrier at a glance: its BASIC percentiles over time and its latest violations.

Read from the records the FMCSA connectors store (``basic`` and ``violation``,
see docs/fmcsa.md). A ``basic`` record is one state of one BASIC, never
deleted, so the records of one ``basicsId`` ordered by ``first_seen`` are its
history: each becomes a point of a small chart, drawn here as plain numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from synchestra.core.records import Record

CHART_WIDTH = 240.0
CHART_HEIGHT = 90.0
PAD = 6.0


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    at: datetime
    percentile: float


@dataclass(frozen=True)
class BasicChart:
    """One BASIC's percentile history, scaled to a CHART_WIDTH x CHART_HEIGHT box."""

    name: str
    points: list[Point]
    threshold: float | None
    threshold_y: float | None
    latest: float | None
    """The latest percentile; None when FMCSA does not publish it ("Not Public")."""

    @property
    def over_threshold(self) -> bool:
        if self.latest is None or self.threshold is None:
            return False
        return self.latest >= self.threshold

    @property
    def polyline(self) -> str:
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)


def _y(percentile: float) -> float:
    """0 % at the bottom, 100 % at the top."""
    return PAD + (100.0 - percentile) / 100.0 * (CHART_HEIGHT - 2 * PAD)


def basic_charts(records: Iterable[Record]) -> list[BasicChart]:
    """A chart per BASIC from ``basic`` records (their ``data`` and ``first_seen``)."""
    by_basic: dict[str, list[Record]] = {}
    for record in records:
        name = str(record.data.get("basicsShortDesc") or record.data.get("basicsId") or "?")
        by_basic.setdefault(name, []).append(record)
    return [_chart(name, rows) for name, rows in sorted(by_basic.items())]


def _chart(name: str, rows: list[Record]) -> BasicChart:
    rows = sorted(rows, key=lambda row: row.first_seen)
    observed = [
        (row.first_seen, float(row.data["basicsPercentile_num"]))
        for row in rows
        if isinstance(row.data.get("basicsPercentile_num"), int | float)
    ]
    latest_data: Mapping[str, Any] = rows[-1].data
    threshold = latest_data.get("basicsViolationThreshold_num")
    threshold = float(threshold) if isinstance(threshold, int | float) else None
    latest = latest_data.get("basicsPercentile_num")
    return BasicChart(
        name=name,
        points=_points(observed),
        threshold=threshold,
        threshold_y=_y(threshold) if threshold is not None else None,
        latest=float(latest) if isinstance(latest, int | float) else None,
    )


def _points(observed: list[tuple[datetime, float]]) -> list[Point]:
    """Spread over the box by time; a single observation sits in the middle."""
    if not observed:
        return []
    first, last = observed[0][0], observed[-1][0]
    span = (last - first).total_seconds()
    inner = CHART_WIDTH - 2 * PAD
    points = []
    for at, percentile in observed:
        share = (at - first).total_seconds() / span if span > 0 else 0.5
        points.append(Point(PAD + share * inner, _y(percentile), at, percentile))
    return points


@dataclass(frozen=True)
class Violation:
    date: str | None
    code: str
    basic: str
    description: str
    out_of_service: bool
    severity: Any


def latest_violations(records: Iterable[Record], limit: int = 10) -> list[Violation]:
    """The ``limit`` most recent violations, newest inspection first."""
    items = [_violation(record.data) for record in records]
    items.sort(key=lambda v: v.date or "", reverse=True)
    return items[:limit]


def _violation(data: Mapping[str, Any]) -> Violation:
    return Violation(
        date=data.get("insp_date_iso") or data.get("insp_date"),
        code=str(data.get("viol_code", "")),
        basic=str(data.get("basic_desc", "")),
        description=str(data.get("section_desc", "")),
        out_of_service=data.get("oos_indicator_bool") is True
        or str(data.get("oos_indicator", "")).lower() == "true",
        severity=data.get("severity_weight_num", data.get("severity_weight")),
    )
