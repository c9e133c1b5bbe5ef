"""JSON as the real servers spell it, including numbers Python would shorten.

QCMobile sends OOS rates with 38 decimal places (an Oracle ``NUMBER`` printed
in full: ``1.15830115830115830115830115830115830116``). ``json.dumps`` would
write the shortest float instead, so such values are carried as
:class:`WireNumber` (a float that also remembers its wire text) and put back
verbatim after encoding.
"""

from __future__ import annotations

import json
import re
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any

_MARK = "@@wire-number:"
_MARK_RE = re.compile(r'"@@wire-number:(-?[0-9.]+)@@"')


class WireNumber(float):
    """A float equal to ``float(text)`` that is serialised as ``text`` exactly."""

    text: str

    def __new__(cls, text: str) -> WireNumber:
        number = super().__new__(cls, text)
        number.text = str(text)
        return number


def oracle_percent(part: int, whole: int) -> int | float:
    """``part / whole * 100`` as QCMobile writes it: an int when whole, else 38 decimals.

    Rounded half-even to 38 places, trailing zeros dropped; ``whole == 0`` gives 0.
    """
    if whole == 0:
        return 0
    with localcontext() as context:
        context.prec = 80
        value = (Decimal(part) * 100 / Decimal(whole)).quantize(
            Decimal(1).scaleb(-38), rounding=ROUND_HALF_EVEN
        )
        if value == value.to_integral_value():
            return int(value)
        return WireNumber(format(value.normalize(), "f"))


def dumps(
    document: Any, *, indent: int | None = None, separators: tuple[str, str] | None = None
) -> str:
    """Encode ``document`` as JSON, writing every :class:`WireNumber` by its text."""
    marked = _mark(document)
    text = json.dumps(marked, indent=indent, separators=separators, ensure_ascii=False)
    return _MARK_RE.sub(lambda match: match.group(1), text)


def _mark(value: Any) -> Any:
    if isinstance(value, WireNumber):
        return f"{_MARK}{value.text}@@"
    if isinstance(value, dict):
        return {key: _mark(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_mark(item) for item in value]
    return value
