"""Carrier profiles: the facts of one simulated carrier, drawn once from the seed.

Every API view of a carrier (QCMobile census, BASICs, SaferWebAPI snapshot)
is rendered from the same :class:`CarrierProfile`, so the sources agree with
each other the way the real ones (mostly) do.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

from synchestra.simulator.seeding import rng_for

NAME_HEADS = (
    "ACME", "BLUE RIVER", "PRAIRIE", "GRANITE", "LONE STAR", "SUMMIT", "RED ROCK", "IRONWOOD",
    "GULF COAST", "NORTHERN", "MIDWAY", "EAGLE", "SILVER STATE", "CASCADE", "HARBOR", "PIONEER",
)  # fmt: skip
FREIGHT_WORDS = ("FREIGHT", "TRUCKING", "TRANSPORT", "LOGISTICS", "CARRIERS", "HAULING", "EXPRESS")
PASSENGER_WORDS = ("COACH LINES", "BUS COMPANY", "TOURS", "MOTORCOACH")
SUFFIXES = ("INC", "LLC", "CORP", "CO", "LTD")
CITIES = (
    ("EVANSVILLE", "IN", "477"), ("MARINETTE", "WI", "541"), ("LACOMBE", "LA", "704"),
    ("AUSTIN", "TX", "787"), ("BOISE", "ID", "837"), ("FRESNO", "CA", "937"),
    ("GARY", "IN", "464"), ("DENVER", "CO", "802"), ("JOLIET", "IL", "604"),
    ("LAREDO", "TX", "780"), ("MEMPHIS", "TN", "381"), ("TULSA", "OK", "741"),
)  # fmt: skip
STREETS = ("ST GEORGE ROAD", "CLEVELAND AVE", "HWY 190", "INDUSTRIAL PKWY", "MAIN ST", "DEPOT RD")
OPERATIONS = (("A", "Interstate"), ("B", "Intrastate Hazmat"), ("C", "Intrastate Non-Hazmat"))


@dataclass(frozen=True)
class Inspections:
    """Inspections and out-of-service counts of one kind (driver, vehicle, hazmat)."""

    total: int
    oos: int


@dataclass(frozen=True)
class CarrierProfile:
    """What the simulated registries know about one carrier."""

    dot: int
    legal_name: str
    dba_name: str | None
    passenger: bool | None
    active: bool
    allowed: bool
    oos_date: date | None
    operation: tuple[str, str]
    street: str
    city: str
    state: str
    zipcode: str
    phone: str
    power_units: int
    drivers: int
    fatal_crashes: int
    injury_crashes: int
    towaway_crashes: int
    driver: Inspections
    vehicle: Inspections
    hazmat: Inspections
    rating: str | None
    rating_date: date | None
    review_date: date | None
    ein: int
    bipd_on_file: int
    cargo_on_file: int
    bond_on_file: int
    broker_status: str
    mcs150_outdated: bool
    mcs150_date: date
    mileage: int
    mc_number: int | None

    @property
    def crash_total(self) -> int:
        return self.fatal_crashes + self.injury_crashes + self.towaway_crashes


def make_profile(seed: int, dot: int, as_of: date) -> CarrierProfile:
    """Draw the profile of ``dot``; the same arguments always give the same profile."""
    rng = rng_for(seed, "carrier", dot)
    passenger = rng.choices((True, False, None), weights=(2, 7, 1))[0]
    size = _fleet_size(rng)
    active = rng.random() > 0.08
    allowed = active and rng.random() > 0.05
    city, state, zip_prefix = rng.choice(CITIES)
    rating, rating_date, review_date = _rating(rng, as_of)
    dba = f"{rng.choice(NAME_HEADS)} {rng.choice(FREIGHT_WORDS)}"
    return CarrierProfile(
        dot=dot,
        legal_name=_legal_name(rng, bool(passenger)),
        dba_name=None if rng.random() < 0.8 else dba,
        passenger=passenger,
        active=active,
        allowed=allowed,
        oos_date=None if allowed else as_of - timedelta(days=rng.randint(30, 3000)),
        operation=rng.choices(OPERATIONS, weights=(8, 1, 2))[0],
        street=f"{rng.randint(10, 29999)} {rng.choice(STREETS)}",
        city=city,
        state=state,
        zipcode=f"{zip_prefix}{rng.randint(0, 99):02d}",
        phone=f"({rng.randint(201, 989)}) {rng.randint(200, 999)}-{rng.randint(0, 9999):04d}",
        power_units=size,
        drivers=max(1, round(size * rng.uniform(0.7, 1.3))),
        fatal_crashes=_scaled(rng, size, 0.002),
        injury_crashes=_scaled(rng, size, 0.01),
        towaway_crashes=_scaled(rng, size, 0.02),
        driver=_inspections(rng, size, 0.55, 0.05),
        vehicle=_inspections(rng, size, 0.35, 0.21),
        hazmat=_inspections(rng, size, 0.02, 0.05),
        rating=rating,
        rating_date=rating_date,
        review_date=review_date,
        ein=rng.randint(100_000_000, 999_999_999),
        bipd_on_file=rng.choice((0, 750, 1000, 1000, 5000)),
        cargo_on_file=rng.choice((0, 0, 5, 10)),
        bond_on_file=rng.choice((0, 0, 75)),
        broker_status=rng.choice(("N", "N", "A", "I")),
        mcs150_outdated=rng.random() < 0.15,
        mcs150_date=as_of - timedelta(days=rng.randint(20, 900)),
        mileage=size * rng.randint(60_000, 120_000),
        mc_number=None if rng.random() < 0.3 else rng.randint(100_000, 1_499_999),
    )


def _fleet_size(rng: random.Random) -> int:
    """Mostly small fleets, a few large ones: power units."""
    return min(5_000, max(1, int(rng.paretovariate(1.2) * 3)))


def _scaled(rng: random.Random, size: int, per_unit: float) -> int:
    return int(rng.uniform(0, 2) * size * per_unit)


def _inspections(rng: random.Random, size: int, per_unit: float, oos_share: float) -> Inspections:
    total = int(size * per_unit * rng.uniform(0, 3))
    oos = round(total * oos_share * rng.uniform(0.3, 1.7))
    return Inspections(total=total, oos=min(oos, total))


def _legal_name(rng: random.Random, passenger: bool) -> str:
    words = PASSENGER_WORDS if passenger else FREIGHT_WORDS
    return f"{rng.choice(NAME_HEADS)} {rng.choice(words)} {rng.choice(SUFFIXES)}"


def _rating(rng: random.Random, as_of: date) -> tuple[str | None, date | None, date | None]:
    """Safety rating (S/C/U or unrated), its date and the review date before it."""
    if rng.random() < 0.55:
        return None, None, None
    review = as_of - timedelta(days=rng.randint(60, 9000))
    rating = rng.choices(("S", "C", "U"), weights=(8, 2, 1))[0]
    return rating, review + timedelta(days=rng.randint(1, 10)), review
