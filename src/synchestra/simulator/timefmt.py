"""The date and time spellings of the simulated APIs (each has its own).

Written without ``strftime("%b")`` so the output never depends on the locale.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


def qc_timestamp(moment: datetime) -> str:
    """QCMobile's ``2021-02-28T06:33:31.490+0000`` (milliseconds, no colon in the offset)."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def socrata_date(day: date) -> str:
    """SMS input's ``DD-MON-YY`` with an upper-case English month: ``14-MAY-25``."""
    return f"{day.day:02d}-{MONTHS[day.month - 1]}-{day.year % 100:02d}"


def us_date(day: date) -> str:
    """SAFER's ``MM/DD/YYYY``."""
    return f"{day.month:02d}/{day.day:02d}/{day.year:04d}"


def iso_z(moment: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, to the second (the ERP's ``updated_at``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    """An ISO 8601 time as an aware UTC datetime; a naive one is taken as UTC.

    Raises ValueError with the offending text.
    """
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"invalid ISO 8601 time {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def utc_now() -> datetime:
    """The current time in UTC (one place to read the wall clock)."""
    return datetime.now(UTC)
