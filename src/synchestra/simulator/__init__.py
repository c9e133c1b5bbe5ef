"""Simulated external APIs for tests, benchmarks and the demo.

FMCSA QCMobile, DataHub (Socrata ``8mt8-2mdr``), SaferWebAPI and an ERP,
speaking the real formats (quirks included), with deterministic data from a
seed, rate and concurrency limits, fault injection and counters::

    from synchestra.simulator import ApiConfig, SimulatorConfig, run_simulator

    async with run_simulator(SimulatorConfig(carriers=10, datahub=ApiConfig(rate=5))) as sim:
        url = sim.base_url("datahub")      # http://127.0.0.1:PORT/datahub
        ...
        assert sim.counters()["datahub"].peak_concurrency <= 4

See ``docs/simulator.md``.
"""

from __future__ import annotations

from synchestra.simulator.config import (
    API_NAMES,
    DEFAULT_SAFERWEB_KEY,
    DEFAULT_WEBKEY,
    ApiConfig,
    ApiName,
    ErpSizes,
    FaultConfig,
    SimulatorConfig,
    TargetFault,
)
from synchestra.simulator.counters import ApiCounters
from synchestra.simulator.dataset import FmcsaData, UnknownCarrier
from synchestra.simulator.erp_data import COLLECTIONS, ErpStore, UnknownCollection
from synchestra.simulator.server import Simulator, SimulatorError, run_simulator

__all__ = [
    "API_NAMES",
    "COLLECTIONS",
    "DEFAULT_SAFERWEB_KEY",
    "DEFAULT_WEBKEY",
    "ApiConfig",
    "ApiCounters",
    "ApiName",
    "ErpSizes",
    "ErpStore",
    "FaultConfig",
    "FmcsaData",
    "Simulator",
    "SimulatorConfig",
    "SimulatorError",
    "TargetFault",
    "UnknownCarrier",
    "UnknownCollection",
    "run_simulator",
]
