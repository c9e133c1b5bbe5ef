"""``fmcsa.carrier``: a carrier's census record from QCMobile ``/qc/services/carriers/{dot}``.

One record of kind ``carrier`` per target, keyed by the USDOT number. ``data``
is QCMobile's ``content.carrier`` object with its own field names, text
cleaned, plus parsed values (see :mod:`synchestra.connectors.fmcsa.parsing`). The
envelope's ``retrievalDate`` is left out on purpose: it changes on every call
and would make every run look like a change; the record's ``last_seen`` says
when it was fetched.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from synchestra.connectors.context import SyncContext
from synchestra.connectors.fmcsa.alerts import raise_alerts, status_alerts
from synchestra.connectors.fmcsa.keys import dot_number
from synchestra.connectors.fmcsa.parsing import (
    FLAG,
    INTEGER,
    ISO_DATE,
    NUMBER,
    Parser,
    clean,
    to_int,
    with_parsed,
)
from synchestra.connectors.fmcsa.qcmobile import API, fetch_content
from synchestra.connectors.fmcsa.registry import connector
from synchestra.connectors.fmcsa.transport import CarrierNotFound, api_name
from synchestra.core.errors import SyncError

KIND = "carrier"

PARSERS: Mapping[str, Parser] = {
    # "Y" / "N"; the insurance "required" flags also say "u" (unknown -> null)
    "allowedToOperate": FLAG,
    "mcs150Outdated": FLAG,
    "isPassengerCarrier": FLAG,
    "bipdInsuranceRequired": FLAG,
    "cargoInsuranceRequired": FLAG,
    "bondInsuranceRequired": FLAG,
    # thousands of US dollars, as text
    "bipdInsuranceOnFile": INTEGER,
    "bipdRequiredAmount": INTEGER,
    "cargoInsuranceOnFile": INTEGER,
    "bondInsuranceOnFile": INTEGER,
    # percent, as text ("5.51")
    "driverOosRateNationalAverage": NUMBER,
    "vehicleOosRateNationalAverage": NUMBER,
    "hazmatOosRateNationalAverage": NUMBER,
    # YYYY-MM-DD or null
    "safetyRatingDate": ISO_DATE,
    "safetyReviewDate": ISO_DATE,
    "reviewDate": ISO_DATE,
    "oosDate": ISO_DATE,
}


@connector(API)
async def carrier(ctx: SyncContext) -> None:
    """Fetch the target carrier's census record and store it."""
    dot = dot_number(ctx.target)
    content = await fetch_content(ctx, f"/qc/services/carriers/{dot}", dot)
    record = carrier_record(content, dot, api_name(ctx, API))
    counts = await ctx.upsert(KIND, [record], key=lambda _row: dot)
    raise_alerts(ctx, status_alerts(counts.changes, dot))


def carrier_record(content: Any, dot: str, api: str) -> dict[str, Any]:
    """The record data for ``content`` (the envelope's content), or why there is none.

    QCMobile's answer for an unknown USDOT number is not documented, so
    ``null``, ``{}``, ``[]`` and a missing ``carrier`` all mean "not found".
    """
    found = content.get("carrier") if isinstance(content, dict) else None
    if not isinstance(found, dict) or not found:
        raise CarrierNotFound(dot, api)
    answered = to_int(found.get("dotNumber"))
    if answered is not None and str(answered) != dot:
        raise SyncError(f"{api} answered with carrier {answered} when asked for {dot}")
    return with_parsed(clean(found), PARSERS)
