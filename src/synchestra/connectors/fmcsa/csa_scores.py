"""``fmcsa.csa_scores``: CSA BASIC scores from QCMobile ``/qc/services/carriers/{dot}/basics``.

Records of kind ``basic`` keep history: the key is
``{dot}|{basicsId}|{run date}|{hash of the values}``, so a change in the run
date or in any value makes a new record beside the old ones (which are never
marked deleted), and an unchanged BASIC maps to its existing record. A trend
is the records of one ``basicsId`` ordered by ``first_seen``. QCMobile's
``basicsRunDate`` has been frozen at 2017-01-27 for years, so in practice the
values alone tell one record from the next.

``data`` is the ``basic`` object with its nested ``basicsType`` fields and
``id.dotNumber`` lifted to the top level (``basicsId``, ``basicsCode``,
``basicsShortDesc``, ``dotNumber``, ...), text cleaned, plus parsed values.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from synchestra.connectors.context import SyncContext
from synchestra.connectors.fmcsa.alerts import basic_alerts, latest_states, raise_alerts
from synchestra.connectors.fmcsa.keys import dot_number
from synchestra.connectors.fmcsa.parsing import (
    FLAG,
    NUMBER,
    PERCENT,
    TIMESTAMP,
    Parser,
    clean,
    to_timestamp,
    with_parsed,
)
from synchestra.connectors.fmcsa.qcmobile import API, fetch_content
from synchestra.connectors.fmcsa.registry import connector
from synchestra.connectors.fmcsa.transport import CarrierNotFound, api_name
from synchestra.core.errors import SyncError

KIND = "basic"
HASH_LENGTH = 12  # hex digits: 48 bits, plenty to tell one carrier's BASIC states apart

PARSERS: Mapping[str, Parser] = {
    "basicsPercentile": PERCENT,  # "18%" -> 18.0; "Not Public" -> null
    "measureValue": NUMBER,
    "basicsViolationThreshold": NUMBER,  # percent
    "exceededFMCSAInterventionThreshold": FLAG,  # "Y" / "N"; "-1" (not public) -> null
    "onRoadPerformanceThresholdViolationIndicator": FLAG,  # also "Not Public"
    "seriousViolationFromInvestigationPast12MonthIndicator": FLAG,
    "basicsRunDate": TIMESTAMP,
}

VALUE_FIELDS = (*PARSERS, "totalInspectionWithViolation", "totalViolation")
"""The fields whose change makes a new history record."""


@connector(API)
async def csa_scores(ctx: SyncContext) -> dict[str, int]:
    """Fetch the target carrier's BASICs and store each state not seen before."""
    dot = dot_number(ctx.target)
    api = api_name(ctx, API)
    content = await fetch_content(ctx, f"/qc/services/carriers/{dot}/basics", dot)
    rows = basic_rows(content, dot, api)
    skipped = _entries(content) - len(rows)
    if skipped:
        ctx.log.warning("skipped %d BASIC entries without a basicsId", skipped)
    previous = latest_states(await ctx.stored(KIND))
    await ctx.upsert(KIND, rows, key=lambda row: basic_key(dot, row))
    raise_alerts(ctx, basic_alerts(previous, rows, dot))
    return {"basics": len(rows)}


def basic_rows(content: Any, dot: str, api: str) -> list[dict[str, Any]]:
    """The record data of each BASIC in ``content`` (entries without a ``basicsId`` are skipped).

    An empty list is a carrier without BASICs; ``null`` or ``{}`` mean not found.
    """
    if content is None or content == {}:
        raise CarrierNotFound(dot, api)
    if not isinstance(content, list):
        raise SyncError(f"unexpected response from {api}: BASICs are not a list")
    rows = [flatten_basic(entry) for entry in content]
    return [with_parsed(row, PARSERS) for row in rows if row.get("basicsId") is not None]


def flatten_basic(entry: Any) -> dict[str, Any]:
    """One ``content[]`` entry's ``basic``, cleaned, with ``basicsType`` and ``id`` lifted."""
    basic = clean(entry.get("basic")) if isinstance(entry, dict) else None
    if not isinstance(basic, dict):
        return {}
    kind = basic.pop("basicsType", None)
    ident = basic.pop("id", None)
    kind = kind if isinstance(kind, dict) else {}
    ident = ident if isinstance(ident, dict) else {}
    flat = {**basic, **kind}
    flat.setdefault("basicsId", ident.get("basicsId"))
    flat["dotNumber"] = ident.get("dotNumber")
    return flat


def basic_key(dot: str, row: Mapping[str, Any]) -> str:
    """``{dot}|{basicsId}|{run date}|{short hash of the values}``: one key per BASIC state."""
    run_date = (to_timestamp(row.get("basicsRunDate")) or "none")[:10]
    values = {name: row.get(name) for name in VALUE_FIELDS}
    canonical = json.dumps(values, sort_keys=True, separators=(",", ":"), default=str)
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:HASH_LENGTH]
    return f"{dot}|{row['basicsId']}|{run_date}|{digest}"


def _entries(content: Any) -> int:
    return len(content) if isinstance(content, list) else 0
