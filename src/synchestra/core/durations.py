"""Durations ("90s", "15m", "6h", "1d") and rates ("10/s", "600/min") as configs write them;
instants as documents write them (ISO 8601, UTC, ``Z``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_RATE_PERIODS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*([a-z]+)\s*$")


def parse_duration(text: str) -> timedelta:
    """Parse ``"90s"``, ``"15m"``, ``"6h"``, ``"1d"`` (also ``"500ms"``, ``"1.5h"``).

    Raises ValueError naming the accepted forms.
    """
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(
            f"invalid duration {text!r}: expected a number and a unit, "
            "e.g. '90s', '15m', '6h' or '1d'"
        )
    return timedelta(seconds=float(match[1]) * _UNITS[match[2]])


def format_duration(value: timedelta) -> str:
    """The shortest exact form of ``value`` in the config syntax."""
    seconds = value.total_seconds()
    for unit in ("d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


@dataclass(frozen=True)
class Rate:
    """At most ``requests`` request starts in any sliding window of ``period``."""

    requests: int
    period: timedelta

    @property
    def per_second(self) -> float:
        return self.requests / self.period.total_seconds()

    def __str__(self) -> str:
        return f"{self.requests}/{format_duration(self.period)}"


def parse_rate(text: str) -> Rate:
    """Parse ``"10/s"``, ``"600/min"``, ``"5000/h"`` or ``"100000/day"``."""
    match = _RATE.match(text.lower())
    if match is None or match[2] not in _RATE_PERIODS or int(match[1]) < 1:
        raise ValueError(
            f"invalid rate {text!r}: expected requests per period, e.g. '10/s' or '600/min'"
        )
    return Rate(int(match[1]), timedelta(seconds=_RATE_PERIODS[match[2]]))


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``, as the contract writes timestamps."""
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")
