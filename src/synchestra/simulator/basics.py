"""QCMobile ``/carriers/{dot}/basics`` entries: the five CSA BASICs of a carrier.

Quirks kept from the real payloads: percentiles are strings (``"18%"``) and,
for property carriers since the FAST Act, ``"Not Public"`` with the exceeded
flag ``"-1"``; measures and thresholds are strings, counts ints; the
Drugs/Alcohol short description carries a zero-width space, either as the
character (2021) or as the literal text ``&#8203;`` (2025); the run date is
frozen at 2017-01-27 until :meth:`FmcsaData.advance_sms_run` moves it on.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from synchestra.simulator.carriers import CarrierProfile
from synchestra.simulator.census import QC_HOST
from synchestra.simulator.seeding import rng_for
from synchestra.simulator.timefmt import qc_timestamp

FIRST_RUN = datetime(2017, 1, 27, 5, 0, tzinfo=UTC)
BASIC_TYPES = (
    (11, "Unsafe Driving", "Unsafe Driving"),
    (12, "HOS Compliance", "Hours-of-Service Compliance"),
    (13, "Driver Fitness", "Driver Fitness"),
    (14, "Drugs/Alcohol", "Controlled Substances/{zwsp}Alcohol"),
    (15, "Vehicle Maint.", "Vehicle Maintenance"),
)
PASSENGER_THRESHOLDS = (50, 50, 65, 65, 65)
GENERAL_THRESHOLDS = (65, 65, 80, 80, 80)
ZERO_WIDTH_SPACES = ("\u200b", "&#8203;")


def run_date(run: int) -> str:
    """``basicsRunDate`` of SMS run ``run`` (0 is the real, frozen 2017 value)."""
    return qc_timestamp(FIRST_RUN + timedelta(days=30 * run))


def basics_entries(profile: CarrierProfile, seed: int, run: int) -> list[dict[str, Any]]:
    """The ``content`` list of ``/basics`` for this carrier and SMS run."""
    rng = rng_for(seed, "basics", profile.dot, run)
    public = bool(profile.passenger)
    thresholds = PASSENGER_THRESHOLDS if public else GENERAL_THRESHOLDS
    zwsp = rng.choice(ZERO_WIDTH_SPACES)
    return [
        {
            "basic": _basic(rng, profile.dot, kind, threshold, public, zwsp, run),
            "dotNumber": None,
            "_links": {
                "self": {"href": f"{QC_HOST}/qc/services/carriers/{profile.dot}/basics/{kind[0]}"}
            },
        }
        for kind, threshold in zip(BASIC_TYPES, thresholds, strict=True)
    ]


def _basic(
    rng: random.Random,
    dot: int,
    kind: tuple[int, str, str],
    threshold: int,
    public: bool,
    zwsp: str,
    run: int,
) -> dict[str, Any]:
    basic_id, code, short = kind
    with_violation = rng.choice((0, rng.randint(1, 40), rng.randint(1, 400)))
    violations = with_violation + rng.randint(0, with_violation // 3 + 1) if with_violation else 0
    measure = round(rng.uniform(0.01, 4.0), 2) if violations else 0.0
    percentile = rng.randint(0, 99) if violations else 0
    exceeded = percentile >= threshold
    return {
        "basicsPercentile": f"{percentile}%" if public else "Not Public",
        "basicsRunDate": run_date(run),
        "basicsType": {
            "basicsCode": code,
            "basicsCodeMcmis": None,
            "basicsId": basic_id,
            "basicsLongDesc": None,
            "basicsShortDesc": short.format(zwsp=zwsp),
        },
        "basicsViolationThreshold": str(threshold),
        "exceededFMCSAInterventionThreshold": _flag(exceeded) if public else "-1",
        "id": {"basicsId": basic_id, "dotNumber": dot},
        "measureValue": _measure(measure),
        "onRoadPerformanceThresholdViolationIndicator": _flag(exceeded) if public else "Not Public",
        "seriousViolationFromInvestigationPast12MonthIndicator": _flag(rng.random() < 0.1),
        "totalInspectionWithViolation": with_violation,
        "totalViolation": violations,
    }


def _measure(value: float) -> str:
    """``"1.16"``, ``"0.1"``, ``"0"``: two decimals at most, no trailing zeros."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _flag(value: bool) -> str:
    return "Y" if value else "N"
