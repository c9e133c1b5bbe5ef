"""The dashboard's pure parts: timeline packing and geometry, BASIC charts, violations."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from synchestra.core.models import Mode, Run, RunState
from synchestra.core.records import Record
from synchestra.interfaces.dashboard import carrier, timeline

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

intervals = st.lists(
    st.tuples(st.integers(0, 100), st.integers(0, 30)).map(lambda p: (p[0], p[0] + p[1])),
    max_size=30,
)


def deepest_overlap(items: list[tuple[int, int]]) -> int:
    """How many intervals share one instant at most (touching ends do not overlap)."""
    points = {start for start, _ in items}
    return max(
        (sum(1 for s, e in items if s <= point < e or s == e == point) for point in points),
        default=0,
    )


@given(intervals)
def test_pack_never_overlaps_on_a_row_and_uses_the_fewest_rows(
    items: list[tuple[int, int]],
) -> None:
    rows = timeline.pack([(float(s), float(e)) for s, e in items])
    for row in set(rows):
        placed = sorted(item for item, r in zip(items, rows, strict=True) if r == row)
        for (_, end), (start, _) in itertools.pairwise(placed):
            assert end <= start
    if items:
        assert max(rows) + 1 <= max(deepest_overlap(items), 1)


def make_run(
    number: int,
    source: str,
    started: float,
    took: float | None,
    *,
    group: str | None = None,
    api: str | None = None,
) -> Run:
    start = NOW - timedelta(seconds=started)
    return Run(
        id=number,
        source=source,
        target=f"dot:{number}",
        mode=Mode.AUTO,
        priority=number % 4,
        state=RunState.SUCCEEDED if took is not None else RunState.RUNNING,
        attempts=1,
        group=group,
        api=api,
        trigger="schedule",
        queued_at=start,
        not_before=start,
        started_at=start,
        finished_at=start + timedelta(seconds=took) if took is not None else None,
    )


def test_build_places_runs_in_lanes_on_the_time_axis() -> None:
    runs = [
        make_run(1, "orders", 240, 30, group="erp"),
        make_run(2, "prices", 200, 30, group="erp"),  # after orders: same row
        make_run(3, "carrier", 100, 50, api="qcmobile"),
        make_run(4, "scores", 90, 20, api="qcmobile"),  # overlaps carrier: second row
        make_run(5, "scores", 30, None, api="qcmobile"),  # still running: up to now
        make_run(6, "old", 400, 1),  # before the window
    ]
    drawn = timeline.build(runs, {}, now=NOW, span=timedelta(minutes=5), kind="group")
    lanes = {lane.name: lane for lane in drawn.lanes}
    assert set(lanes) == {"erp", "carrier (own)", "scores (own)"}  # "old" is out of the window
    assert lanes["erp"].rows == 1

    by_api = timeline.build(runs, {}, now=NOW, span=timedelta(minutes=5), kind="api")
    qcmobile = next(lane for lane in by_api.lanes if lane.name == "qcmobile")
    assert qcmobile.rows == 2
    scale = (timeline.WIDTH - timeline.LABEL_WIDTH) / 300
    carrier_bar = next(bar for bar in qcmobile.bars if bar.run.id == 3)
    assert carrier_bar.x == timeline.LABEL_WIDTH + 200 * scale
    assert carrier_bar.width == 50 * scale
    running = next(bar for bar in qcmobile.bars if bar.run.id == 5)
    assert running.x + running.width == timeline.WIDTH  # reaches now
    assert [bar.label for bar in qcmobile.bars] == ["p3", "p0", "p1"]
    assert [bar.height for bar in qcmobile.bars] == [12.0, 6.0, 8.0]  # priority shows
    second_row = next(bar for bar in qcmobile.bars if bar.run.id == 4)
    assert second_row.y + second_row.height == qcmobile.y + 2 * timeline.ROW_HEIGHT - 1
    assert all(timeline.LABEL_WIDTH <= tick.x <= timeline.WIDTH for tick in by_api.ticks)
    assert [tick.label for tick in by_api.ticks] == ["11:56", "11:57", "11:58", "11:59", "12:00"]


def stored(data: dict[str, Any], first_seen: datetime) -> Record:
    """A stored record with this data, first seen then (what the charts read)."""
    return Record(0, "basic", "k", None, "s", data, first_seen, first_seen, first_seen)


def test_basic_charts_follow_each_basic_over_time() -> None:
    records = [
        stored(
            {
                "basicsShortDesc": "HOS",
                "basicsPercentile_num": p,
                "basicsViolationThreshold_num": 65,
            },
            NOW + timedelta(days=d),
        )
        for d, p in ((60, 80.0), (0, 20.0), (30, 50.0))
    ]
    records.append(stored({"basicsShortDesc": "Drugs", "basicsPercentile_num": None}, NOW))
    charts = {chart.name: chart for chart in carrier.basic_charts(records)}
    hos = charts["HOS"]
    assert [point.percentile for point in hos.points] == [20.0, 50.0, 80.0]  # by time
    assert [point.x for point in hos.points] == [
        carrier.PAD,
        carrier.CHART_WIDTH / 2,
        carrier.CHART_WIDTH - carrier.PAD,
    ]
    assert hos.points[2].y < hos.points[0].y  # higher percentile, higher on the chart
    assert hos.latest == 80.0 and hos.over_threshold
    assert hos.polyline.count(",") == 3
    drugs = charts["Drugs"]
    assert drugs.points == [] and drugs.latest is None and not drugs.over_threshold


def test_latest_violations_newest_first_with_out_of_service_flag() -> None:
    rows = [
        stored({"insp_date_iso": "2025-03-01", "viol_code": "A", "oos_indicator": "true"}, NOW),
        stored({"insp_date_iso": "2025-05-01", "viol_code": "B", "oos_indicator_bool": False}, NOW),
        stored({"insp_date": "01-JAN-25", "viol_code": "C"}, NOW),
    ]
    found = carrier.latest_violations(rows, limit=2)
    assert [v.code for v in found] == ["B", "A"]
    assert [v.out_of_service for v in found] == [False, True]
