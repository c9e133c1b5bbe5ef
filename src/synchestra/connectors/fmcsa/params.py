"""The ``params`` of the FMCSA sources, checked before any request.

A bad value fails the run at once with a :class:`ConfigError` naming the
parameter, instead of sending a request the API would refuse.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from synchestra.core.errors import ConfigError

DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 50_000  # Socrata's cap on SODA 2.0 endpoints
_WINDOW = re.compile(r"([0-9]{1,5})\s*([dwy])", re.IGNORECASE)


def page_size(params: Mapping[str, Any]) -> int:
    """``params.page_size``: rows per request, 1 to 50,000 (default 1,000)."""
    value = params.get("page_size", DEFAULT_PAGE_SIZE)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PAGE_SIZE:
        raise ConfigError(
            f"params.page_size: invalid value {value!r}: expected a whole number "
            f"from 1 to {MAX_PAGE_SIZE}"
        )
    return value


def window_start(params: Mapping[str, Any], today: date) -> date | None:
    """The first day ``params.window`` keeps (``"3y"``, ``"52w"``, ``"365d"``), or None for all.

    Years are calendar years: ``"3y"`` on 2026-03-01 starts at 2023-03-01 (and
    from a 29 February, on the 28th).
    """
    value = params.get("window")
    if value is None:
        return None
    match = _WINDOW.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ConfigError(
            f"params.window: invalid window {value!r}: expected a number of days, weeks "
            "or years such as '365d', '52w' or '3y'"
        )
    count, unit = int(match.group(1)), match.group(2).lower()
    if unit == "y":
        return _years_before(today, count)
    return today - timedelta(days=count * (7 if unit == "w" else 1))


def _years_before(today: date, years: int) -> date:
    year = max(today.year - years, 1)
    try:
        return today.replace(year=year)
    except ValueError:  # 29 February in a year without one
        return today.replace(year=year, day=28)
