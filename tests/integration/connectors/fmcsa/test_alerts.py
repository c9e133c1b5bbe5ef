"""Compliance alerts: the pure rules, and BASIC changes found end to end against the simulator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from engine_helpers import within
from fmcsa_fleet import DOTS, ENVIRON, synced_fleet
from synchestra.connectors.fmcsa.alerts import (
    MAX_VIOLATION_ALERTS,
    basic_alerts,
    latest_states,
    status_alerts,
    violation_alerts,
)
from synchestra.core.records import Change, Record
from synchestra.simulator.basics import basics_entries

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def stored(data: dict[str, Any], *, last_seen: datetime) -> Record:
    """A stored ``basic`` record with this data, last fetched at ``last_seen``."""
    return Record(0, "basic", "k", "dot:1", "csa_scores", data, T0, last_seen, T0)


def test_a_status_change_is_an_alert_a_new_record_is_not() -> None:
    changes = [
        Change(
            "1",
            {"allowedToOperate": "Y", "statusCode": "A"},
            {"allowedToOperate": "N", "statusCode": "A"},
        ),
        Change("2", None, {"allowedToOperate": "Y"}),
    ]
    [alert] = status_alerts(changes, "1")
    assert alert.alert == "status.changed"
    assert alert.details == {"field": "allowedToOperate", "before": "Y", "after": "N"}


def test_new_violations_one_by_one_then_a_summary() -> None:
    fresh = [Change(f"v{n}", None, {"viol_code": f"C{n}"}) for n in range(30)]
    updated = [Change("old", {"viol_code": "X"}, {"viol_code": "Y"})]
    alerts = violation_alerts(updated + fresh, created=45, dot="7")
    assert [a.alert for a in alerts] == ["violation.new"] * (MAX_VIOLATION_ALERTS + 1)
    assert alerts[0].details["key"] == "v0"
    assert alerts[-1].details == {"count": 45 - MAX_VIOLATION_ALERTS}


def basic(basics_id: int, percentile: float | None, threshold: float = 65.0) -> dict[str, Any]:
    return {
        "basicsId": basics_id,
        "basicsShortDesc": f"B{basics_id}",
        "basicsPercentile_num": percentile,
        "basicsViolationThreshold_num": threshold,
    }


def test_basic_changes_and_threshold_crossings_both_ways() -> None:
    previous = {
        "11": basic(11, 40.0),
        "12": basic(12, 70.0),
        "13": basic(13, 50.0),
        "14": basic(14, None),
    }
    current = [basic(11, 66.0), basic(12, 60.0), basic(13, 50.0), basic(14, 90.0), basic(15, 99.0)]
    alerts = basic_alerts(previous, current, "9")
    assert [(a.alert, a.details["basic"]) for a in alerts] == [
        ("basic.changed", "B11"),
        ("basic.threshold_crossed", "B11"),
        ("basic.changed", "B12"),
        ("basic.threshold_crossed", "B12"),
    ]  # unchanged 13, "Not Public" 14 and first-seen 15 raise nothing
    assert alerts[1].details["over"] is True and alerts[3].details["over"] is False


def test_latest_states_take_the_newest_record_of_each_basic() -> None:
    rows = [
        stored(basic(11, 10.0), last_seen=T0),
        stored(basic(11, 20.0), last_seen=T0 + timedelta(days=1)),
        stored(basic(12, 5.0), last_seen=T0),
    ]
    latest = latest_states(rows)
    assert {key: data["basicsPercentile_num"] for key, data in latest.items()} == {
        "11": 20.0,
        "12": 5.0,
    }


async def test_a_new_sms_run_raises_the_basic_changes_the_simulator_made(tmp_path: Path) -> None:
    async with synced_fleet(tmp_path, ENVIRON) as (sim, orc, _summary):

        def percentiles(run: int) -> dict[tuple[str, int], float]:
            found = {}
            for dot in DOTS:
                for entry in basics_entries(sim.data.profile(dot), sim.data.config.seed, run):
                    value, ident = entry["basic"]["basicsPercentile"], entry["basic"]["id"]
                    if value.endswith("%"):
                        found[(str(dot), int(ident["basicsId"]))] = float(value[:-1])
            return found

        before, run = percentiles(sim.data.sms_run), sim.data.advance_sms_run()
        after = percentiles(run)
        expected = sorted(key for key in before.keys() & after.keys() if before[key] != after[key])
        assert expected, "the simulator's next SMS run changes some percentiles"
        with orc.bus.subscribe(["alert.raised"]) as alerts:
            await within(orc.sync(["csa_scores"], all_targets=True), seconds=60)
            raised = []
            while (event := alerts.get_nowait()) is not None:
                raised.append(event.data)
        changed = sorted(
            (alert["target"].removeprefix("dot:"), int(alert["basics_id"]))
            for alert in raised
            if alert["alert"] == "basic.changed"
        )
        assert changed == expected
        for alert in raised:
            assert alert["source"] == "csa_scores"
            if alert["alert"] == "basic.threshold_crossed":
                key = (alert["target"].removeprefix("dot:"), int(alert["basics_id"]))
                assert (before[key] >= alert["threshold"]) != (after[key] >= alert["threshold"])
