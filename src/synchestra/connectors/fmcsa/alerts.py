"""What a compliance team wants to hear about a carrier, from the records' changes.

- ``violation.new``: a violation not seen before, once the carrier has been
  synced at least once (the first sync is the baseline, not news);
- ``basic.changed``: a BASIC's percentile moved since its previous state, and
  ``basic.threshold_crossed`` when it reached (or fell back below) the
  intervention threshold;
- ``status.changed``: the carrier's operating status or authority changed
  (``allowedToOperate`` / ``statusCode`` from QCMobile, ``operating_status``
  from SaferWebAPI).

Each rule is a pure function of before / after data; the connectors raise the
alerts with :meth:`SyncContext.alert`, and the engine publishes them only when
the run succeeds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from synchestra.connectors.context import Alert, SyncContext
from synchestra.core.records import Change, Record

MAX_VIOLATION_ALERTS = 20
"""New violations alerted one by one per run; more become one summary alert."""

STATUS_FIELDS = ("allowedToOperate", "statusCode", "operating_status")


def status_alerts(changes: Iterable[Change], dot: str) -> list[Alert]:
    """An operating status that changed (a record updated, not created)."""
    alerts = []
    for change in changes:
        if change.before is None:
            continue
        for name in STATUS_FIELDS:
            old, new = change.before.get(name), change.after.get(name)
            if name in change.after and old != new:
                alerts.append(
                    Alert(
                        "status.changed",
                        f"carrier {dot}: {name} changed from {old!r} to {new!r}",
                        {"field": name, "before": old, "after": new},
                    )
                )
    return alerts


def violation_alerts(changes: Sequence[Change], created: int, dot: str) -> list[Alert]:
    """New violations; ``created`` counts them all (``changes`` holds the first 100)."""
    fresh = [change for change in changes if change.before is None]
    alerts = [
        Alert(
            "violation.new",
            f"carrier {dot}: new violation {change.after.get('viol_code')} "
            f"({change.after.get('basic_desc')}) inspected {change.after.get('insp_date_iso')}",
            {
                "key": change.key,
                "viol_code": change.after.get("viol_code"),
                "basic": change.after.get("basic_desc"),
                "inspection_date": change.after.get("insp_date_iso"),
                "out_of_service": change.after.get("oos_indicator_bool"),
            },
        )
        for change in fresh[:MAX_VIOLATION_ALERTS]
    ]
    if created > len(alerts):
        alerts.append(
            Alert(
                "violation.new",
                f"carrier {dot}: {created - len(alerts)} more new violations",
                {"count": created - len(alerts)},
            )
        )
    return alerts


def basic_alerts(
    previous: Mapping[str, Mapping[str, Any]], current: Iterable[Mapping[str, Any]], dot: str
) -> list[Alert]:
    """Each BASIC whose percentile differs from its previous state (by ``basicsId``)."""
    alerts = []
    for row in current:
        before = previous.get(str(row.get("basicsId")))
        old = _percentile(before)
        new = _percentile(row)
        if before is None or old is None or new is None or old == new:
            continue
        name = row.get("basicsShortDesc") or row.get("basicsId")
        details = {"basic": name, "basics_id": row.get("basicsId"), "before": old, "after": new}
        alerts.append(
            Alert("basic.changed", f"carrier {dot}: {name} percentile {old:g} -> {new:g}", details)
        )
        threshold = row.get("basicsViolationThreshold_num")
        if isinstance(threshold, int | float) and (old >= threshold) != (new >= threshold):
            direction = "reached" if new >= threshold else "fell below"
            alerts.append(
                Alert(
                    "basic.threshold_crossed",
                    f"carrier {dot}: {name} {direction} its intervention threshold "
                    f"({new:g} vs {threshold:g})",
                    {**details, "threshold": threshold, "over": new >= threshold},
                )
            )
    return alerts


def latest_states(rows: Iterable[Record]) -> dict[str, Mapping[str, Any]]:
    """The newest stored state of each BASIC (by ``last_seen``), keyed by ``basicsId``."""
    latest: dict[str, Record] = {}
    for row in rows:
        basic = str(row.data.get("basicsId"))
        if basic not in latest or row.last_seen > latest[basic].last_seen:
            latest[basic] = row
    return {basic: row.data for basic, row in latest.items()}


def raise_alerts(ctx: SyncContext, alerts: Iterable[Alert]) -> None:
    for alert in alerts:
        ctx.alert(alert.alert, alert.message, **alert.details)


def _percentile(data: Mapping[str, Any] | None) -> float | None:
    value = data.get("basicsPercentile_num") if data else None
    return float(value) if isinstance(value, int | float) else None
