"""A simulated FMCSA fleet synced by the four sources: what the end-to-end FMCSA tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from engine_helpers import within
from synchestra.config import parse_config
from synchestra.connectors.registry import BUILTIN_APIS
from synchestra.core.models import Target
from synchestra.engine.orchestrator import Orchestrator
from synchestra.engine.summary import SyncSummary
from synchestra.simulator import (
    DEFAULT_SAFERWEB_KEY,
    DEFAULT_WEBKEY,
    ApiConfig,
    FaultConfig,
    Simulator,
    SimulatorConfig,
    TargetFault,
    run_simulator,
)

CARRIERS = 6
FIRST_DOT = 1_000_001
DOTS = [FIRST_DOT + 10 * i for i in range(CARRIERS)]
DATAHUB_FAILS, SAFERWEB_FAILS = DOTS[1], DOTS[2]
SOURCES = {
    "carrier": "fmcsa.carrier",
    "csa_scores": "fmcsa.csa_scores",
    "violations": "fmcsa.violations",
    "inspections": "fmcsa.inspections",
}
ENVIRON = {"FMCSA_WEBKEY": DEFAULT_WEBKEY, "SAFERWEB_API_KEY": DEFAULT_SAFERWEB_KEY}


def fleet() -> SimulatorConfig:
    return SimulatorConfig(
        carriers=CARRIERS,
        seed=11,
        first_dot=FIRST_DOT,
        big_carrier_rows=2_300,
        datahub=ApiConfig(
            faults=FaultConfig(targets=(TargetFault(str(DATAHUB_FAILS), status=503),))
        ),
        saferweb=ApiConfig(
            keys=(DEFAULT_SAFERWEB_KEY,),
            faults=FaultConfig(targets=(TargetFault(str(SAFERWEB_FAILS), status=500),)),
        ),
    )


@asynccontextmanager
async def synced_fleet(
    tmp_path: Path, environ: dict[str, str]
) -> AsyncIterator[tuple[Simulator, Orchestrator, SyncSummary]]:
    async with run_simulator(fleet()) as sim:
        config = parse_config(
            {
                "database": {"url": f"sqlite:///{tmp_path}/e2e.db"},
                "apis": [
                    {"name": api, "base_url": sim.base_url(api), "concurrency": 2}
                    for api in ("qcmobile", "datahub", "saferweb")
                ],
                "sources": [
                    {
                        "name": name,
                        "connector": connector,
                        "per_target": True,
                        "retry": {"attempts": 1},
                        "params": params(name),
                    }
                    for name, connector in SOURCES.items()
                ],
            },
            origin="test",
            builtin_apis=BUILTIN_APIS,
        )
        orc = Orchestrator.from_config(config, environ=environ)
        async with orc:
            await orc.add_targets([Target(f"dot:{dot}", f"Carrier {dot}") for dot in DOTS])
            summary = await within(orc.sync(), seconds=60)
            yield sim, orc, summary


def params(source: str) -> dict[str, Any]:
    return {"page_size": 1000} if source == "violations" else {}
