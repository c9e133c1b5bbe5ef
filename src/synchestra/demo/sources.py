"""Example sources that need no network: the demo and ``examples/fleet.toml`` use them.

They generate deterministic data from the target key, and fail on purpose for
targets whose ``fail`` attr names them, so error isolation is visible.
"""

from __future__ import annotations

import hashlib
from typing import Any

from synchestra.connectors.context import SyncContext
from synchestra.core.errors import HTTPFailure


def _number(key: str, salt: str, modulo: int) -> int:
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % modulo


def _fail_if_asked(ctx: SyncContext) -> None:
    if ctx.target is not None and ctx.source in ctx.target.attrs.get("fail", "").split("|"):
        raise HTTPFailure(503, "example")


async def carrier_profile(ctx: SyncContext) -> dict[str, Any]:
    """One ``carrier`` record per target."""
    assert ctx.target is not None
    _fail_if_asked(ctx)
    key = ctx.target.key
    record = {
        "dot": key.removeprefix("dot:"),
        "legal_name": ctx.target.name or key,
        "power_units": _number(key, "units", 400) + 1,
        "drivers": _number(key, "drivers", 500) + 1,
        "operating_status": "AUTHORIZED" if _number(key, "status", 10) else "OUT-OF-SERVICE",
    }
    await ctx.upsert("carrier", [record], key="dot")
    return {}


async def inspections(ctx: SyncContext) -> dict[str, Any]:
    """A few ``inspection`` records per target; deletes the ones that disappeared."""
    assert ctx.target is not None
    _fail_if_asked(ctx)
    count = _number(ctx.target.key, "inspections", 5) + 1
    rows = [
        {"inspection_id": f"{ctx.target.key}-{i}", "oos": _number(ctx.target.key, str(i), 3) == 0}
        for i in range(count)
    ]
    for done, start in enumerate(range(0, len(rows), 2), start=1):
        await ctx.upsert("inspection", rows[start : start + 2], key="inspection_id")
        ctx.progress(min(done * 2, len(rows)), len(rows))
    ctx.delete_missing("inspection")
    return {}


async def catalog(ctx: SyncContext) -> dict[str, Any]:
    """A source without targets: a small reference table."""
    rows = [
        {"code": code, "label": label}
        for code, label in [("A", "Authorized"), ("N", "Not authorized"), ("O", "Out of service")]
    ]
    await ctx.upsert("status_code", rows, key="code")
    ctx.set_watermark(ctx.now().isoformat())
    return {}
