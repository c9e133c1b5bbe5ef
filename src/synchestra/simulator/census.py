"""QCMobile's ``content.carrier`` object, rendered from a carrier profile.

Field names, JSON types and quirks follow the real 2021 and 2025 payloads:
Y/N flags and insurance amounts (thousands of USD) as strings, counts as
ints, OOS rates as long decimals, national averages as strings, unknown
values as null, keys in alphabetical order.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from synchestra.simulator.carriers import CarrierProfile
from synchestra.simulator.wire import oracle_percent

QC_HOST = "https://mobile.fmcsa.dot.gov"
"""Links inside documents name the real host, as recorded, so data is port-independent."""

LINK_NAMES = (
    ("basics", "/basics"),
    ("cargo carried", "/cargo-carried"),
    ("operation classification", "/operation-classification"),
    ("docket numbers", "/docket-numbers"),
    ("carrier active-For-hire authority", "/authority"),
    ("self", ""),
)


def carrier_links(dot: int) -> dict[str, Any]:
    """The ``content._links`` of ``/carriers/{dot}``."""
    base = f"{QC_HOST}/qc/services/carriers/{dot}"
    return {name: {"href": base + suffix} for name, suffix in LINK_NAMES}


def carrier_document(profile: CarrierProfile) -> dict[str, Any]:
    """The ``carrier`` object of ``/carriers/{dot}``."""
    p = profile
    fields: dict[str, Any] = {
        "allowedToOperate": _yn(p.allowed),
        "bipdInsuranceOnFile": str(p.bipd_on_file),
        "bipdInsuranceRequired": "Y" if p.operation[0] == "A" else "u",
        "bipdRequiredAmount": "750" if p.operation[0] == "A" else "0",
        "bondInsuranceOnFile": str(p.bond_on_file),
        "bondInsuranceRequired": "Y" if p.broker_status == "A" else "u",
        "brokerAuthorityStatus": p.broker_status,
        "cargoInsuranceOnFile": str(p.cargo_on_file),
        "cargoInsuranceRequired": "u",
        "carrierOperation": {
            "carrierOperationCode": p.operation[0],
            "carrierOperationDesc": p.operation[1],
        },
        "censusTypeId": {"censusType": "C", "censusTypeDesc": "CARRIER", "censusTypeId": 1},
        "commonAuthorityStatus": "A" if p.mc_number and p.active else "N",
        "contractAuthorityStatus": "A" if p.mc_number and p.active else "N",
        "crashTotal": p.crash_total,
        "dbaName": p.dba_name,
        "dotNumber": p.dot,
        "ein": p.ein,
        "fatalCrash": p.fatal_crashes,
        "injCrash": p.injury_crashes,
        "isPassengerCarrier": None if p.passenger is None else _yn(p.passenger),
        "issScore": None,
        "legalName": p.legal_name,
        "mcs150Outdated": _yn(p.mcs150_outdated),
        "oosDate": _day(p.oos_date),
        "oosRateNationalAverageYear": "2009-2010",
        "phyCity": p.city,
        "phyCountry": "US",
        "phyState": p.state,
        "phyStreet": p.street,
        "phyZipcode": p.zipcode,
        "snapshotDate": None,
        "statusCode": "A" if p.active else "I",
        "totalDrivers": p.drivers,
        "totalPowerUnits": p.power_units,
        "towawayCrash": p.towaway_crashes,
        **_inspection_fields(p),
        **_review_fields(p),
    }
    return dict(sorted(fields.items()))


def _inspection_fields(p: CarrierProfile) -> dict[str, Any]:
    averages = {"driver": "5.51", "vehicle": "20.72", "hazmat": "4.5"}
    fields: dict[str, Any] = {}
    for kind, counts in (("driver", p.driver), ("vehicle", p.vehicle), ("hazmat", p.hazmat)):
        fields[f"{kind}Insp"] = counts.total
        fields[f"{kind}OosInsp"] = counts.oos
        fields[f"{kind}OosRate"] = oracle_percent(counts.oos, counts.total)
        fields[f"{kind}OosRateNationalAverage"] = averages[kind]
    return fields


def _review_fields(p: CarrierProfile) -> dict[str, Any]:
    review_type = None if p.rating is None else "C"
    return {
        "reviewDate": _day(p.review_date),
        "reviewType": review_type,
        "safetyRating": p.rating,
        "safetyRatingDate": _day(p.rating_date),
        "safetyReviewDate": _day(p.review_date),
        "safetyReviewType": review_type,
    }


def _yn(flag: bool) -> str:
    return "Y" if flag else "N"


def _day(day: date | None) -> str | None:
    return None if day is None else day.isoformat()
