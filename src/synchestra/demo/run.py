"""``synchestra demo``: a fleet-compliance team's setup, running on this machine alone.

The simulator serves QCMobile, DataHub and SaferWebAPI on loopback with a
sample fleet; the four FMCSA sources sync it into SQLite in a working folder on
compressed schedules. Two faults are injected on purpose (DataHub answers 503
for one carrier, SaferWebAPI 500 for another) so that error isolation shows:
those runs fail, everything else succeeds.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import secrets
import shutil
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from rich.console import Console
from rich.table import Table

from synchestra.core.models import Target
from synchestra.engine.orchestrator import Orchestrator
from synchestra.engine.summary import SyncSummary
from synchestra.interfaces.cli.display import print_sources
from synchestra.interfaces.documents import sync_status_document
from synchestra.interfaces.http import create_app
from synchestra.interfaces.servers import serving
from synchestra.simulator import (
    DEFAULT_SAFERWEB_KEY,
    DEFAULT_WEBKEY,
    ApiConfig,
    ApiCounters,
    ApiName,
    FaultConfig,
    Simulator,
    SimulatorConfig,
    TargetFault,
    run_simulator,
)

FMCSA_SOURCES = ("carrier", "csa_scores", "violations", "inspections")

CONFIG = """\
# Written by `synchestra demo`; the simulator it points at runs only during the demo.
# Look at the results with: synchestra status -c {path}

[database]
url = "sqlite:///demo.db"

[engine]
workers = 16

[[apis]]
name = "qcmobile"
base_url = "{qcmobile}"
rate = "20/s"
concurrency = 4

[[apis]]
name = "datahub"
base_url = "{datahub}"
rate = "10/s"
concurrency = 3

[[apis]]
name = "saferweb"
base_url = "{saferweb}"
rate = "10/s"
concurrency = 2

[[sources]]
name = "carrier"
connector = "fmcsa.carrier"
per_target = true
every = "30s"
spread = "10s"
priority = 3
stale_after = "10m"

[[sources]]
name = "csa_scores"
connector = "fmcsa.csa_scores"
per_target = true
every = "45s"
offset = "5s"
spread = "15s"
priority = 2
stale_after = "10m"

[[sources]]
name = "violations"
connector = "fmcsa.violations"
per_target = true
every = "60s"
offset = "10s"
spread = "20s"
priority = 1
retry = {{ attempts = 2, backoff = "1s", max_backoff = "2s" }}
params = {{ page_size = 500 }}

[[sources]]
name = "inspections"
connector = "fmcsa.inspections"
per_target = true
every = "40s"
offset = "15s"
spread = "10s"
priority = 2
retry = {{ attempts = 2, backoff = "1s", max_backoff = "2s" }}

# The ERP mirror (docs/collection.md): one sync at a time in the `erp` group,
# priorities orders 4 > customers 3 > products 2 > prices 1, staggered by offset.
[[apis]]
name = "erp"
base_url = "{erp}"

[[groups]]
name = "erp"
max_running = 1
{erp_sources}"""

PAGES = """records = "data"
paging = { style = "page", param = "page", size_param = "per_page", size = 100 }"""
OFFSETS = """records = "data"
paging = { style = "offset", param = "offset", size_param = "limit", size = 100 }"""
CURSOR = """records = "data"
paging = { style = "cursor", param = "cursor", next = "meta.next_cursor" }
params = { limit = 100 }"""
LINKS = """paging = { style = "link" }
params = { style = "link", per_page = 100 }"""
ERP_SOURCE = """
[[sources]]
name = "{name}"
connector = "http.collection"
api = "erp"
group = "erp"
every = "{every}"
offset = "{offset}"
priority = {priority}

[sources.params]
path = "/api/{name}"
kind = "{kind}"
key = "id"
{reading}
watermark = {{ field = "updated_at", param = "updated_since", lag = "2s" }}
"""
ERP_COLLECTIONS = (  # name, kind, every, offset, priority, how its pages are read
    ("orders", "order", "15s", "0s", 4, CURSOR),
    ("customers", "customer", "30s", "0s", 3, PAGES),
    ("products", "product", "30s", "15s", 2, OFFSETS),
    ("prices", "price", "60s", "45s", 1, LINKS),
)


def simulator_config(carriers: int) -> SimulatorConfig:
    """The sample fleet, with one carrier failing on DataHub and another on SaferWebAPI."""
    base = SimulatorConfig(carriers=carriers, seed=2026)
    dots = [base.first_dot + i * base.dot_step for i in range(carriers)]
    faults = {
        "datahub": dots[1 % carriers],
        "saferweb": dots[2 % carriers],
    }
    return SimulatorConfig(
        carriers=carriers,
        seed=2026,
        qcmobile=ApiConfig(latency=0.01, keys=(DEFAULT_WEBKEY,)),
        datahub=ApiConfig(
            latency=0.02,
            faults=FaultConfig(targets=(TargetFault(str(faults["datahub"]), status=503),)),
        ),
        saferweb=ApiConfig(
            latency=0.01,
            keys=(DEFAULT_SAFERWEB_KEY,),
            faults=FaultConfig(targets=(TargetFault(str(faults["saferweb"]), status=500),)),
        ),
    )


def demo_environ() -> dict[str, str]:
    """The simulator's credentials, whatever real ones the environment holds."""
    return {**os.environ, "FMCSA_WEBKEY": DEFAULT_WEBKEY, "SAFERWEB_API_KEY": DEFAULT_SAFERWEB_KEY}


def write_config(folder: Path, simulator: Simulator) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "synchestra.toml"
    urls = {api: simulator.base_url(api) for api in ("qcmobile", "datahub", "saferweb", "erp")}
    erp_sources = "".join(
        ERP_SOURCE.format(
            name=name, kind=kind, every=every, offset=offset, priority=priority, reading=reading
        )
        for name, kind, every, offset, priority, reading in ERP_COLLECTIONS
    )
    path.write_text(CONFIG.format(path=path, erp_sources=erp_sources, **urls))
    return path


Visitor = Callable[[str], Awaitable[None]]
"""Given the dashboard's sign-in URL while the demo serves; the demo stops when it returns."""


async def run_demo(
    folder: Path,
    *,
    carriers: int,
    duration: float,
    port: int,
    console: Console,
    visitor: Visitor | None = None,
) -> int:
    console.print(f"[bold]synchestra demo[/bold]: {carriers} carriers, working folder {folder}")
    async with run_simulator(simulator_config(carriers)) as simulator:
        console.print(f"simulated APIs on {simulator.url} (counters: {simulator.counters_url})")
        path = write_config(folder, simulator)
        orc = Orchestrator.from_config(path, environ=demo_environ())
        async with orc:
            await orc.add_targets(
                [
                    Target(f"dot:{dot}", simulator.data.profile(dot).legal_name)
                    for dot in simulator.data.dots
                ]
            )
            _print_first_sync(console, await orc.sync(FMCSA_SOURCES, all_targets=True))
            _print_mirror(console, await orc.sync([name for name, *_ in ERP_COLLECTIONS]))
            if duration > 0:
                await _build_basic_history(orc, simulator)
                changing = asyncio.create_task(_keep_changing(simulator))
                try:
                    await _serve_for(orc, duration, port, console, visitor)
                finally:
                    changing.cancel()
            document = sync_status_document(await orc.sync_status())
        print_sources(console, document)
        _print_counters(console, simulator.counters())
    command = _command_name()
    console.print(f"look closer: {command} status -c {path}")
    console.print(f"             {command} records violation -c {path} --limit 5")
    return 0


CHANGE_EVERY = 10.0
"""Seconds between two rounds of changes in the simulated ERP while the demo serves."""
SMS_RUN_EVERY = 6
"""Rounds of ERP changes between two simulated monthly SMS runs (new BASIC values)."""


async def _build_basic_history(orc: Orchestrator, simulator: Simulator) -> None:
    """Two more SMS runs synced at once, so the dashboard's BASIC charts start with a trend."""
    for _ in range(2):
        simulator.data.advance_sms_run()
        await orc.sync(["csa_scores"], all_targets=True)


async def _keep_changing(simulator: Simulator) -> None:
    """The world moves on while the demo serves, so the mirror has changes to find.

    Every round: a new order and two price changes in the ERP, a product
    discontinued every third round; now and then a new SMS run (new BASIC values).
    """
    rng = random.Random(2026)
    for round_ in itertools.count(1):
        await asyncio.sleep(CHANGE_EVERY)
        erp = simulator.erp
        erp.create("orders", {"customer_id": rng.randint(1, 50), "total": rng.randint(10, 999)})
        for price in rng.sample(erp.records("prices"), k=2):
            erp.update("prices", price["id"], {"amount": f"{rng.randint(100, 50_000) / 100:.2f}"})
        if round_ % 3 == 0 and (products := erp.records("products")):
            erp.delete("products", rng.choice(products)["id"])
        if round_ % SMS_RUN_EVERY == 0:
            simulator.data.advance_sms_run()


async def _serve_for(
    orc: Orchestrator, duration: float, port: int, console: Console, visitor: Visitor | None
) -> None:
    """Run the scheduler, the HTTP API and the dashboard on loopback for ``duration`` seconds."""
    token = secrets.token_urlsafe(16)
    async with serving(create_app(orc, token=token), port) as bound:
        url = f"http://127.0.0.1:{bound}"
        console.print(f"dashboard: {url}/?token={token}")
        console.print(f"HTTP API:  {url}/api/sync/status (OpenAPI: {url}/docs)")
        console.print(
            f"token: {token}   e.g. curl -H 'Authorization: Bearer {token}' {url}/api/sync/status"
        )
        console.print(f"scheduler running for {duration:g}s on compressed schedules...")
        orc.start(schedule=True)
        stopped = asyncio.ensure_future(orc.stopped())
        visit = asyncio.ensure_future(visitor(f"{url}/?token={token}")) if visitor else None
        ends = [task for task in (stopped, visit) if task is not None]
        try:
            await asyncio.wait(ends, timeout=duration, return_when=asyncio.FIRST_COMPLETED)
            if visit is not None and visit.done():
                visit.result()  # a failed visit fails the demo
        finally:
            for task in ends:
                task.cancel()
            await asyncio.gather(*ends, return_exceptions=True)


def _print_first_sync(console: Console, summary: SyncSummary) -> None:
    console.print(
        f"first sync: {summary.total} carriers, {summary.succeeded} fully synced, "
        f"{summary.failed} with a failed source (faults injected on purpose):"
    )
    for unit in summary.errors:
        for error in unit["errors"]:
            console.print(f"  {unit['target']} {error['source']}: {error['error']}")


def _print_mirror(console: Console, summary: SyncSummary) -> None:
    counts = ", ".join(f"{run.source} {run.result.get('created', 0)}" for run in summary.runs)
    console.print(
        f"ERP mirrored: {counts} records ({summary.succeeded} of {summary.total} collections; "
        "one at a time, orders first)"
    )


def _print_counters(console: Console, counters: Mapping[ApiName, ApiCounters]) -> None:
    table = Table(title="what the simulated APIs saw", show_edge=False)
    for column in ("api", "requests", "429 sent", "peak concurrency"):
        table.add_column(column)
    for api in ("qcmobile", "datahub", "saferweb", "erp"):
        seen = counters[api]
        table.add_row(
            api, str(seen.requests), str(seen.too_many_requests), str(seen.peak_concurrency)
        )
    console.print(table)


def _command_name() -> str:
    """How this user can run synchestra again: the venv's script when not on PATH."""
    script = Path(sys.argv[0])
    return "synchestra" if shutil.which("synchestra") == str(script) else str(script)
