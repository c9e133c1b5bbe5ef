"""The one ASGI app: each API mounted under its prefix, plus ``/_counters``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from starlette.routing import Mount
from starlette.types import ASGIApp

from synchestra.simulator import app_datahub, app_erp, app_qcmobile, app_saferweb
from synchestra.simulator.config import ApiName
from synchestra.simulator.dataset import FmcsaData
from synchestra.simulator.erp_data import ErpStore
from synchestra.simulator.runtime import ApiRuntime

PREFIXES: dict[ApiName, str] = {
    "qcmobile": "/qcmobile",
    "datahub": "/datahub",
    "saferweb": "/saferweb",
    "erp": "/erp",
}


def build_app(
    data: FmcsaData,
    erp: ErpStore,
    runtimes: dict[ApiName, ApiRuntime],
    counters: Callable[[], dict[str, Any]],
    reset: Callable[[], None],
) -> FastAPI:
    """Mount the four APIs and the counters endpoints on a fresh app."""
    apps: dict[ApiName, ASGIApp] = {
        "qcmobile": app_qcmobile.build(data, runtimes["qcmobile"]),
        "datahub": app_datahub.build(data, runtimes["datahub"]),
        "saferweb": app_saferweb.build(data, runtimes["saferweb"]),
        "erp": app_erp.build(erp, runtimes["erp"]),
    }
    root = FastAPI(
        title="synchestra simulator",
        routes=[Mount(PREFIXES[name], app=app) for name, app in apps.items()],
    )

    @root.get("/_counters")
    async def read_counters() -> dict[str, Any]:
        return counters()

    @root.post("/_counters/reset")
    async def reset_counters() -> dict[str, Any]:
        reset()
        return counters()

    return root
