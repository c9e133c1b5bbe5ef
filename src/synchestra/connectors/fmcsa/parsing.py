"""Reading the FMCSA formats' quirks into plain values.

The sources send numbers and booleans as text (``"10"``, ``"Y"``, ``"true"``),
percentiles as ``"18%"`` or ``"Not Public"``, ``"-1"`` or ``"u"`` for "not
public / unknown", dates as ``DD-MON-YY``, ``MM/DD/YYYY`` or
``YYYY-MM-DDTHH:MM:SS.fff+0000``, omit fields instead of sending null, and
sprinkle zero-width spaces (raw or as ``&#8203;``) into names.

Every ``to_*`` function takes whatever the source sent and returns the parsed
value, or None when the value is absent, "not public" or unreadable: a sync
must not fail on one odd cell, and the raw text stays in the record anyway.

Records keep the source's own fields and add the parsed value beside each, in
the same object, named by a suffix (:func:`with_parsed`): ``_iso`` for dates
and timestamps (ISO 8601; timestamps in UTC with ``Z``), ``_num`` for numbers,
``_bool`` for flags. ``insp_date: "14-MAY-25"`` gets ``insp_date_iso:
"2025-05-14"`` beside it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

ISO = "_iso"
NUM = "_num"
BOOL = "_bool"

# Invisible characters the sources leave in text, raw or as HTML entities:
# zero-width space (QCMobile's "Controlled Substances/\u200bAlcohol", later
# "/&#8203;Alcohol"), soft hyphen (seen in SMS BASIC names), BOM / zero-width no-break space.
_INVISIBLE = re.compile(
    r"[\u200b\u00ad\ufeff]|&#8203;|&#x200b;|&#173;|&#xad;|&shy;|&#65279;|&#xfeff;",
    re.IGNORECASE,
)
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")  # ".69" happens; NaN must not
_GROUPED = re.compile(r"[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]*)?")  # "13,878"
_TRUE = frozenset({"y", "yes", "true", "t"})
_FALSE = frozenset({"n", "no", "false", "f"})
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"),
        start=1,
    )
}
_SMS_DATE = re.compile(r"([0-9]{1,2})-([A-Za-z]{3})-([0-9]{2})")
_US_DATE = re.compile(r"([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})")
_TIMESTAMP_FORMATS = ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z")


# --- text --------------------------------------------------------------------


def clean_text(text: str) -> str:
    """``text`` without zero-width spaces, soft hyphens and their entity spellings.

    The same name arrives as ``"Substances/\u200bAlcohol"`` one year and
    ``"Substances/&#8203;Alcohol"`` the next; cleaned, both are one value,
    so a spelling change is not a data change.
    """
    return _INVISIBLE.sub("", text)


def clean(value: Any) -> Any:
    """``value`` with :func:`clean_text` applied to every string in it, however nested."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, Mapping):
        return {str(key): clean(item) for key, item in value.items()}
    if isinstance(value, list):
        return [clean(item) for item in value]
    return value


# --- numbers and flags ---------------------------------------------------------


def to_float(value: Any) -> float | None:
    """A number sent as a number or as text (``"1.02"``, ``".69"``, ``"13,878"``)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if _GROUPED.fullmatch(text):
        text = text.replace(",", "")
    return float(text) if _DECIMAL.fullmatch(text) else None


def to_int(value: Any) -> int | None:
    """A whole number sent as a number or text; None for fractions and non-numbers."""
    number = to_float(value)
    return int(number) if number is not None and number.is_integer() else None


def to_percent(value: Any) -> float | None:
    """A percentage: ``"18%"`` -> 18.0, ``"4.50%"`` -> 4.5; ``"Not Public"``, ``"N/A"`` -> None."""
    if isinstance(value, str):
        value = value.strip().removesuffix("%")
    return to_float(value)


def to_flag(value: Any) -> bool | None:
    """A yes/no flag: ``"Y"``/``"true"`` -> True, ``"N"``/``"false"`` -> False.

    ``"u"`` (unknown), ``"-1"`` and ``"Not Public"`` (withheld: FMCSA no
    longer publishes property carriers' alerts) and anything else -> None.
    """
    if isinstance(value, bool):
        return value
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    if text in _TRUE:
        return True
    return False if text in _FALSE else None


# --- dates ---------------------------------------------------------------------


def century_year(two_digits: int, today: date) -> int:
    """The four-digit year of a two-digit year, by a sliding window.

    The rule: the year ending in those two digits that falls in the 100 years
    ending one year after ``today``'s year. In 2026 that is 1928-2027, so
    ``25`` is 2025 and ``28`` is 1928. SMS dates are inspection dates of the
    last two years, never far in the future; the spare year absorbs clocks and
    time zones around New Year. Unlike Python's fixed ``%y`` pivot (``69`` ->
    1969), this never runs out.
    """
    latest = today.year + 1
    return latest - (latest - two_digits) % 100


def to_sms_date(value: Any, *, today: date) -> str | None:
    """``"14-MAY-25"`` (DataHub SMS ``DD-MON-YY``) -> ``"2025-05-14"``; see :func:`century_year`.

    Months are matched by English abbreviation, any case, not by ``strptime``'s
    ``%b``, which follows the process locale.
    """
    match = _SMS_DATE.fullmatch(value.strip()) if isinstance(value, str) else None
    month = _MONTHS.get(match.group(2).upper()) if match else None
    if match is None or month is None:
        return None
    year = century_year(int(match.group(3)), today)
    return _iso_date(year, month, int(match.group(1)))


def to_us_date(value: Any) -> str | None:
    """``"09/12/2017"`` (SAFER ``MM/DD/YYYY``) -> ``"2017-09-12"``."""
    match = _US_DATE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        return None
    return _iso_date(int(match.group(3)), int(match.group(1)), int(match.group(2)))


def to_iso_date(value: Any) -> str | None:
    """``"2024-11-08"`` (QCMobile dates) checked and returned as is; None if not a date."""
    if not isinstance(value, str) or len(value.strip()) != 10:
        return None
    try:
        return date.fromisoformat(value.strip()).isoformat()
    except ValueError:
        return None


def to_timestamp(value: Any) -> str | None:
    """``"2017-01-27T05:00:00.000+0000"`` (QCMobile) -> ``"2017-01-27T05:00:00Z"`` (UTC)."""
    if not isinstance(value, str):
        return None
    for pattern in _TIMESTAMP_FORMATS:
        try:
            instant = datetime.strptime(value.strip(), pattern).astimezone(UTC)
        except ValueError:
            continue
        text = instant.strftime("%Y-%m-%dT%H:%M:%S")
        if instant.microsecond:
            text += f".{instant.microsecond // 1000:03d}"
        return text + "Z"
    return None


def _iso_date(year: int, month: int, day: int) -> str | None:
    try:
        return date(year, month, day).isoformat()
    except ValueError:  # 31-FEB-25
        return None


# --- adding parsed values beside the raw ones ----------------------------------------


@dataclass(frozen=True)
class Parser:
    """How one field is parsed, and the suffix its parsed value is stored under."""

    suffix: str
    parse: Callable[[Any], Any]


NUMBER = Parser(NUM, to_float)
INTEGER = Parser(NUM, to_int)
PERCENT = Parser(NUM, to_percent)
FLAG = Parser(BOOL, to_flag)
ISO_DATE = Parser(ISO, to_iso_date)
US_DATE = Parser(ISO, to_us_date)
TIMESTAMP = Parser(ISO, to_timestamp)


def sms_date(today: date) -> Parser:
    """The parser of ``DD-MON-YY`` dates as of ``today`` (the two-digit-year window)."""
    return Parser(ISO, lambda value: to_sms_date(value, today=today))


def with_parsed(raw: Mapping[str, Any], parsers: Mapping[str, Parser]) -> dict[str, Any]:
    """``raw`` plus, for each field in ``parsers``, its parsed value under field + suffix.

    The parsed field is always there, null when the raw one is absent (Socrata
    omits null fields) or unreadable, so readers need not test for it.
    """
    result = dict(raw)
    for field, parser in parsers.items():
        result[field + parser.suffix] = parser.parse(raw.get(field))
    return result
