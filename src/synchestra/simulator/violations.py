"""DataHub ``8mt8-2mdr`` (SMS Input - Violation) rows for one carrier.

As on Socrata: 13 columns, every value a string (numbers and booleans too),
``insp_date`` as ``DD-MON-YY``, ``oos_indicator`` ``"true"``/``"false"``, no
row id, several violations per inspection and, now and then, a row repeated
identically right after itself (the real file has such exact duplicates).
Inspection ids are unique across the whole simulated dataset.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

from synchestra.simulator.seeding import rng_for
from synchestra.simulator.timefmt import socrata_date

COLUMNS = (
    "unique_id", "insp_date", "dot_number", "viol_code", "basic_desc", "oos_indicator",
    "oos_weight", "severity_weight", "time_weight", "total_severity_wght", "section_desc",
    "group_desc", "viol_unit",
)  # fmt: skip
FIRST_INSPECTION_ID = 600_000_000
WINDOW_DAYS = 730


@dataclass(frozen=True)
class ViolationKind:
    code: str
    basic: str
    group: str
    section: str
    severity: int
    driver: bool
    oos_chance: float
    weight: int


CATALOG = (
    ViolationKind("3922SLLS4", "Unsafe Driving", "Speeding 4",
                  "State/Local Laws - Speeding 15 or more miles per hour over the speed limit",
                  10, True, 0.0, 2),
    ViolationKind("3922SLLS2", "Unsafe Driving", "Speeding 2",
                  "State/Local Laws - Speeding 6-10 miles per hour over the speed limit",
                  4, True, 0.0, 3),
    ViolationKind("39216", "Unsafe Driving", "Seat Belt",
                  "Failing to use seat belt while operating a CMV", 7, True, 0.0, 2),
    ViolationKind("3922SLLTCD", "Unsafe Driving", "Traffic Control",
                  "State/Local Laws - Failure to obey traffic control device", 5, True, 0.0, 1),
    ViolationKind("3958E", "Hours-of-Service Compliance", "False Log",
                  "False report of driver's record of duty status", 7, True, 0.5, 1),
    ViolationKind("3953A3-11", "Hours-of-Service Compliance", "Hours",
                  "Driving beyond 11 hour driving limit in a 14 hour period", 7, True, 0.8, 2),
    ViolationKind("39141A", "Driver Fitness", "Medical Certificate",
                  "Operating a property-carrying vehicle without possessing a valid medical "
                  "certificate", 1, True, 0.0, 1),
    ViolationKind("38323A2", "Driver Fitness", "License-related: High",
                  "Operating a CMV without a CDL", 8, True, 0.9, 1),
    ViolationKind("3924A", "Controlled Substances/Alcohol", "Drugs",
                  "Driver uses or is in possession of drugs", 10, True, 1.0, 1),
    ViolationKind("39383CELGPB", "Vehicle Maintenance", "Exhaust Discharge",
                  "Exhaust System - Gasoline-Powered Buses - Any gasoline-powered bus exhaust "
                  "system that is leaking or discharging under the chassis more than 6 inches "
                  "(15.24 cm) f", 1, False, 0.3, 1),
    ViolationKind("3963A1BOS", "Vehicle Maintenance", "Brakes, All Others",
                  "Brakes out of service: The number of defective brakes is equal to or greater "
                  "than 20 percent of the service brakes on the vehicle or combination",
                  4, False, 1.0, 3),
    ViolationKind("39324LRLL", "Vehicle Maintenance", "Lighting",
                  "Inoperable Required Lamp lower left, low beam", 6, False, 0.0, 5),
    ViolationKind("39375A3", "Vehicle Maintenance", "Tires",
                  "Tire-flat and/or audible air leak", 8, False, 0.9, 2),
    ViolationKind("39617CPI", "Vehicle Maintenance", "Inspection Reports",
                  "Operating a CMV without proof of a periodic inspection", 4, False, 0.0, 3),
)  # fmt: skip
WEIGHTS = tuple(kind.weight for kind in CATALOG)


@dataclass(frozen=True)
class CarrierSlot:
    """Where a carrier sits in the dataset: its DOT, its index and its row count."""

    dot: int
    index: int
    rows: int


def row_count(seed: int, dot: int, big: bool, big_rows: int) -> int:
    """How many violation rows ``dot`` has (drawn apart from the rows, so it is cheap)."""
    if big:
        return big_rows
    rng = rng_for(seed, "violation-count", dot)
    return 0 if rng.random() < 0.15 else rng.randint(1, 40)


def violation_rows(
    seed: int, slot: CarrierSlot, as_of: date, duplicate_rate: float, id_stride: int
) -> list[dict[str, str]]:
    """The ``slot.rows`` rows of one carrier, in dataset (``:id``) order."""
    rng = rng_for(seed, "violations", slot.dot)
    rows: list[dict[str, str]] = []
    inspection = 0
    while len(rows) < slot.rows and inspection < id_stride:
        unique_id = str(FIRST_INSPECTION_ID + slot.index * id_stride + inspection)
        inspection += 1
        day = as_of - timedelta(days=rng.randint(5, WINDOW_DAYS - 1))
        for _ in range(rng.choices((1, 2, 3, 4), weights=(5, 3, 2, 1))[0]):
            row = _row(rng, unique_id, day, as_of, slot.dot)
            rows.append(row)
            if rng.random() < duplicate_rate:
                rows.append(dict(row))
    return rows[: slot.rows]


def _row(rng: random.Random, unique_id: str, day: date, as_of: date, dot: int) -> dict[str, str]:
    kind = rng.choices(CATALOG, weights=WEIGHTS)[0]
    oos = rng.random() < kind.oos_chance
    oos_weight = 2 if oos else 0
    return {
        "unique_id": unique_id,
        "insp_date": socrata_date(day),
        "dot_number": str(dot),
        "viol_code": kind.code,
        "basic_desc": kind.basic,
        "oos_indicator": "true" if oos else "false",
        "oos_weight": str(oos_weight),
        "severity_weight": str(kind.severity),
        "time_weight": str(_time_weight(as_of - day)),
        "total_severity_wght": str(min(10, kind.severity + oos_weight)),
        "section_desc": kind.section,
        "group_desc": kind.group,
        "viol_unit": _unit(rng, kind.driver),
    }


def _time_weight(age: timedelta) -> int:
    """SMS time weight: 3 within 6 months, 2 within 12, else 1."""
    if age.days <= 182:
        return 3
    return 2 if age.days <= 365 else 1


def _unit(rng: random.Random, driver: bool) -> str:
    if driver:
        return "C" if rng.random() < 0.03 else "D"
    return "2" if rng.random() < 0.2 else "1"
