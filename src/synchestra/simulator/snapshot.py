"""SaferWebAPI ``/v2/usdot/snapshot/{dot}`` bodies: python-safer's ``Company`` dict.

No verbatim SaferWebAPI payload is public; the service is understood to serve
python-safer's shape, so this copies the real python-safer output, odd
duplication included: ``us_inspections`` holds ints while
``united_states_inspections`` holds the raw scraped strings (its ``iep``
counts stay ints, as in the recording).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from synchestra.simulator.carriers import CarrierProfile, Inspections
from synchestra.simulator.timefmt import us_date

SAFER_URL = (
    "http://www.safersys.org/query.asp?searchtype=ANY&query_type=queryCarrierSnapshot"
    "&query_param=USDOT&original_query_param=NAME&query_string={dot}"
)
NATIONAL_AVERAGES = {"hazmat": "4.50%", "driver": "5.51%", "vehicle": "20.72%", "iep": "N/A"}
RATINGS = {"S": "Satisfactory", "C": "Conditional", "U": "Unsatisfactory"}
OPERATION_CLASSES = ("Auth. For Hire", "Private(Property)", "Exempt For Hire")
CARGO = ("General Freight", "Building Materials", "Machinery, Large Objects", "Refrigerated Food")


def snapshot_document(profile: CarrierProfile, as_of: date) -> dict[str, Any]:
    """The snapshot of one carrier as of ``as_of`` (SAFER's "latest update")."""
    p = profile
    counts = {"driver": p.driver, "vehicle": p.vehicle, "hazmat": p.hazmat}
    return {
        "operation_classification": [OPERATION_CLASSES[p.dot % len(OPERATION_CLASSES)]],
        "physical_address": f"{p.street} {p.city}, {p.state}  {p.zipcode}",
        "united_states_inspections": _inspections(counts, as_text=True),
        "state_carrier_id": "",
        "mc_mx_ff_numbers": None if p.mc_number is None else f"MC-{p.mc_number}",
        "out_of_service_date": None if p.oos_date is None else us_date(p.oos_date),
        "mcs_150_form_date": us_date(p.mcs150_date),
        "safety_rating": None if p.rating is None else RATINGS[p.rating],
        "carrier_operation": [_operation(p)],
        "safety_review_date": None if p.review_date is None else us_date(p.review_date),
        "canada_crashes": {"injury": 0, "total": 0, "fatal": 0, "tow": 0},
        "mcs_150_mileage_year": {"year": p.mcs150_date.year - 1, "mileage": p.mileage},
        "mailing_address": f"PO BOX {p.dot % 9000 + 100} {p.city}, {p.state}  {p.zipcode}",
        "power_units": p.power_units,
        "dba_name": p.dba_name or "",
        "entity_type": "CARRIER",
        "safety_rating_date": None if p.rating_date is None else us_date(p.rating_date),
        "safety_type": None if p.rating is None else "Compliance Review",
        "duns_number": None,
        "drivers": p.drivers,
        "us_inspections": _inspections(counts, as_text=False),
        "united_states_crashes": {
            "injury": p.injury_crashes,
            "total": p.crash_total,
            "fatal": p.fatal_crashes,
            "tow": p.towaway_crashes,
        },
        "phone": p.phone,
        "usdot": str(p.dot),
        "url": SAFER_URL.format(dot=p.dot),
        "legal_name": p.legal_name,
        "latest_update": us_date(as_of),
        "cargo_carried": [CARGO[p.dot % len(CARGO)]],
        "operating_status": _status(p),
        "canada_inspections": {
            kind: {"out_of_service": 0, "inspections": 0, "out_of_service_percent": "0%"}
            for kind in ("vehicle", "driver")
        },
    }


def _inspections(counts: dict[str, Inspections], *, as_text: bool) -> dict[str, Any]:
    """The four inspection kinds; ``iep`` (intermodal equipment) is always empty."""
    table: dict[str, Any] = {}
    for kind in ("hazmat", "driver", "iep", "vehicle"):
        found = counts.get(kind, Inspections(0, 0))
        text = as_text and kind != "iep"
        table[kind] = {
            "out_of_service": str(found.oos) if text else found.oos,
            "inspections": str(found.total) if text else found.total,
            "out_of_service_percent": _percent(found),
            "national_average": NATIONAL_AVERAGES[kind],
        }
    return table


def _percent(found: Inspections) -> str:
    """SAFER's rounded rate: ``"0%"`` or one decimal, ``"13.6%"``."""
    if found.total == 0 or found.oos == 0:
        return "0%"
    return f"{found.oos / found.total * 100:.1f}%"


def _operation(p: CarrierProfile) -> str:
    return "Interstate" if p.operation[0] == "A" else "Intrastate Only (Non-HM)"


def _status(p: CarrierProfile) -> str:
    if not p.active:
        return "INACTIVE USDOT Number"
    return "ACTIVE" if p.allowed else "OUT-OF-SERVICE"
