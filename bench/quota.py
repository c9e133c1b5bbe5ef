"""Quota-bound throughput: N carriers x 3 FMCSA sources against rate-limited simulated APIs.

The simulator runs in its own process (``synchestra simulate``) with 50 ms of
latency per request and sliding-window limits of 50/s (QCMobile), 20/s
(DataHub) and 20/s (SaferWebAPI) that answer 429 when exceeded. synchestra is
configured with the same rates and syncs every carrier with ``sync`` over all
targets. The bound is the slowest quota: max over APIs of requests / rate.
Efficiency is bound / wall time.

The peer is the hand-written strategy synchestra replaces, reimplemented
faithfully in the same run: for each carrier, for each source, await the same
requests (one httpx client, no concurrency). For large N it is timed on a
sample of carriers and extrapolated (its cost is linear in N by construction).

Prints one JSON document.

    .venv/bin/python bench/quota.py [--sizes 300,3000] [--sample 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from synchestra import Orchestrator
from synchestra.core.models import Target
from synchestra.simulator import DEFAULT_SAFERWEB_KEY, DEFAULT_WEBKEY

LATENCY = 0.05
RATES = {"qcmobile": 50, "datahub": 20, "saferweb": 20}
SOURCES = {"carrier": "qcmobile", "violations": "datahub", "inspections": "saferweb"}
PAGE_SIZE = 1000
CONCURRENCY = 16
"""Requests in flight per API: the built-in defaults (2-4) are for the real providers;
here the quotas are the rates, and 8 leaves them room at 50 ms per request."""
FIRST_DOT, DOT_STEP = 1_000_001, 10

CONFIG = """\
[database]
url = "sqlite:///{folder}/quota.db"

[engine]
workers = {workers}

[[apis]]
name = "qcmobile"
base_url = "{url}/qcmobile"
rate = "{rates[qcmobile]}/s"
concurrency = {concurrency}

[[apis]]
name = "datahub"
base_url = "{url}/datahub"
rate = "{rates[datahub]}/s"
concurrency = {concurrency}

[[apis]]
name = "saferweb"
base_url = "{url}/saferweb"
rate = "{rates[saferweb]}/s"
concurrency = {concurrency}

[[sources]]
name = "carrier"
connector = "fmcsa.carrier"
per_target = true

[[sources]]
name = "violations"
connector = "fmcsa.violations"
per_target = true
params = {{ page_size = {page_size} }}

[[sources]]
name = "inspections"
connector = "fmcsa.inspections"
per_target = true
"""


class Simulator:
    """``synchestra simulate`` in a child process, for as long as the block runs."""

    def __init__(self, carriers: int) -> None:
        self.carriers = carriers
        self.url = ""
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> Simulator:
        rates = [arg for api, rate in RATES.items() for arg in ("--rate", f"{api}={rate}")]
        command = [str(Path(sys.executable).parent / "synchestra"), "simulate", "--port", "0"]
        command += ["--carriers", str(self.carriers), "--latency", str(LATENCY), *rates]
        command += ["--duration", "3600"]  # a bound, should the benchmark die
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self._process.stdout is not None
        for line in self._process.stdout:
            found = re.match(r"counters\s+(http://127\.0\.0\.1:\d+)/_counters", line)
            if found:
                self.url = found.group(1)
                return self
        raise RuntimeError("the simulator did not start")

    def __exit__(self, *exc_info: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=30)

    def counters(self) -> dict[str, dict[str, Any]]:
        apis: dict[str, dict[str, Any]] = httpx.get(f"{self.url}/_counters").json()["apis"]
        return {api: apis[api] for api in RATES}

    def reset(self) -> None:
        httpx.post(f"{self.url}/_counters/reset").raise_for_status()


def dots(count: int) -> list[int]:
    return [FIRST_DOT + i * DOT_STEP for i in range(count)]


def bound_seconds(requests: dict[str, int]) -> float:
    """The least time the quotas allow: the slowest API's requests / rate."""
    return max(requests[api] / rate for api, rate in RATES.items())


async def synchestra_run(simulator: Simulator, carriers: int, workers: int) -> dict[str, Any]:
    simulator.reset()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "synchestra.toml"
        path.write_text(
            CONFIG.format(
                folder=folder,
                url=simulator.url,
                rates=RATES,
                workers=workers,
                page_size=PAGE_SIZE,
                concurrency=CONCURRENCY,
            )
        )
        environ = {"FMCSA_WEBKEY": DEFAULT_WEBKEY, "SAFERWEB_API_KEY": DEFAULT_SAFERWEB_KEY}
        orc = Orchestrator.from_config(path, environ=environ)
        async with orc:
            await orc.add_targets([Target(f"dot:{dot}") for dot in dots(carriers)])
            started = time.perf_counter()
            summary = await orc.sync(all_targets=True)
            wall = time.perf_counter() - started
    counters = simulator.counters()
    requests = {api: int(counters[api]["requests"]) for api in RATES}
    bound = bound_seconds(requests)
    return {
        "carriers": carriers,
        "runs": len(summary.runs),
        "failed_runs": summary.failed,
        "wall_s": round(wall, 3),
        "bound_s": round(bound, 3),
        "efficiency": round(bound / wall, 3),
        "requests": requests,
        "http_429": sum(int(counters[api]["too_many_requests"]) for api in RATES),
        "http_429_by_api": {api: int(counters[api]["too_many_requests"]) for api in RATES},
        "peak_concurrency": {api: counters[api]["peak_concurrency"] for api in RATES},
    }


async def sequential_carrier(client: httpx.AsyncClient, url: str, dot: int) -> int:
    """What a hand-written sync does for one carrier: each source in turn. Returns requests."""
    made = 0
    carrier = await client.get(
        f"{url}/qcmobile/qc/services/carriers/{dot}", params={"webKey": DEFAULT_WEBKEY}
    )
    carrier.raise_for_status()
    made += 1
    offset = 0
    while True:  # Socrata paging, bounded by the dataset's size
        page = await client.get(
            f"{url}/datahub/resource/8mt8-2mdr.json",
            params={
                "$where": f"dot_number='{dot}'",
                "$order": ":id",
                "$limit": PAGE_SIZE,
                "$offset": offset,
            },
        )
        page.raise_for_status()
        made += 1
        rows = page.json()
        if len(rows) < PAGE_SIZE or offset > 1_000_000:
            break
        offset += PAGE_SIZE
    snapshot = await client.get(
        f"{url}/saferweb/v2/usdot/snapshot/{dot}", headers={"x-api-key": DEFAULT_SAFERWEB_KEY}
    )
    snapshot.raise_for_status()
    return made + 1


async def sequential_run(simulator: Simulator, carriers: list[int]) -> dict[str, Any]:
    simulator.reset()
    async with httpx.AsyncClient(timeout=30) as client:
        started = time.perf_counter()
        requests = 0
        for dot in carriers:
            requests += await sequential_carrier(client, simulator.url, dot)
        wall = time.perf_counter() - started
    counters = simulator.counters()
    return {
        "carriers": len(carriers),
        "wall_s": round(wall, 3),
        "requests": requests,
        "http_429": sum(int(counters[api]["too_many_requests"]) for api in RATES),
    }


async def measure(size: int, sample: int, workers: int) -> dict[str, Any]:
    with Simulator(size) as simulator:
        ours = await synchestra_run(simulator, size, workers)
        if size <= sample:
            theirs = await sequential_run(simulator, dots(size))
            theirs["extrapolated"] = False
        else:
            # every carrier has the same requests but the big ones, which come first
            timed = await sequential_run(simulator, dots(size)[-sample:])
            theirs = {
                "carriers": size,
                "wall_s": round(timed["wall_s"] * size / sample, 3),
                "extrapolated": True,
                "sample": timed,
            }
    return {
        "synchestra": ours,
        "sequential": theirs,
        "speedup_vs_sequential": round(theirs["wall_s"] / ours["wall_s"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="300,3000", help="carrier counts, comma-separated")
    parser.add_argument(
        "--sample", type=int, default=300, help="sequential runs at most this many carriers"
    )
    parser.add_argument("--workers", type=int, default=64)
    args = parser.parse_args()
    results = {}
    for size in (int(text) for text in args.sizes.split(",")):
        results[str(size)] = asyncio.run(measure(size, args.sample, args.workers))
    sizes = sorted(results, key=int)
    smallest = results[sizes[0]]["synchestra"]
    growth = {
        size: round(results[size]["synchestra"]["wall_s"] / smallest["wall_s"], 2) for size in sizes
    }
    document = {
        "benchmark": "quota",
        "machine": f"{os.cpu_count()} cores (shared)",
        "latency_s": LATENCY,
        "rates_per_s": RATES,
        "goal": "at N=300: efficiency >= 0.95, zero 429, >= 3x sequential",
        "results": results,
        "wall_growth_vs_smallest_n": growth,
    }
    json.dump(document, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
