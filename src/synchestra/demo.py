"""``synchestra demo``: an example fleet synced into SQLite in a working folder.

It writes a config beside a sample fleet CSV (one carrier set to fail one
source, so error isolation shows), runs a full sync with a progress bar, prints
the status, and with ``--duration`` keeps the scheduler running that long on
compressed schedules.
"""

from __future__ import annotations

import asyncio
import csv
import shutil
import sys
from contextlib import suppress
from pathlib import Path

from rich.console import Console

from synchestra import views
from synchestra.orchestrator import Orchestrator

DEMO_CONFIG = """\
# Written by `synchestra demo`. Try: synchestra status -c {config}
[database]
url = "sqlite:///demo.db"

[engine]
workers = 8

[[groups]]
name = "census"
max_running = 2

[[sources]]
name = "carrier"
connector = "synchestra.examples:carrier_profile"
per_target = true
every = "20s"
spread = "5s"
priority = 3
group = "census"
stale_after = "1h"

[[sources]]
name = "inspections"
connector = "synchestra.examples:inspections"
per_target = true
every = "15s"
offset = "5s"
priority = 2
timeout = "30s"
retry = {{ attempts = 2, backoff = "1s", max_backoff = "2s" }}

[[sources]]
name = "catalog"
connector = "synchestra.examples:catalog"
every = "30s"
priority = 1

[targets]
import = "fleet.csv"
"""

CITIES = ["Austin", "Boise", "Chicago", "Denver", "El Paso", "Fresno", "Gary", "Houston"]


def write_fleet(folder: Path, carriers: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "fleet.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["key", "name", "city", "fail"])
        for i in range(carriers):
            dot = 80_000 + i * 37
            fail = "inspections" if i == 1 else ""
            writer.writerow(
                [
                    f"dot:{dot}",
                    f"{CITIES[i % len(CITIES)]} Freight {i + 1}",
                    CITIES[i % len(CITIES)],
                    fail,
                ]
            )
    config = folder / "synchestra.toml"
    config.write_text(DEMO_CONFIG.format(config=config))
    return config


def _command_name() -> str:
    """How this user can run synchestra again: the venv's script when not on PATH."""
    script = Path(sys.argv[0])
    return "synchestra" if shutil.which("synchestra") == str(script) else str(script)


async def run_demo(folder: Path, *, carriers: int, duration: float, console: Console) -> int:
    config = write_fleet(folder, carriers)
    console.print(
        f"[bold]synchestra demo[/bold]: {carriers} carriers, database {folder / 'demo.db'}"
    )
    orc = Orchestrator.from_config(config)
    async with orc:
        summary = await orc.sync(all_targets=True)
        console.print(
            f"first sync: {summary.total} units, {summary.succeeded} succeeded, "
            f"{summary.failed} failed (on purpose: one carrier's inspections API answers 503)"
        )
        if duration > 0:
            console.print(f"scheduler running for {duration:g}s on compressed schedules...")
            orc.start(schedule=True)
            with suppress(TimeoutError):
                await asyncio.wait_for(orc.stopped(), timeout=duration)
        document = await views.sync_status(orc.store, orc.sources, orc.clock.now())
    for row in document["sources"]:
        verdict = document["health"]["sources"][row["source"]]
        console.print(
            f"  {row['source']:<12} {row['status']:<10} "
            f"healthy={verdict['healthy']!s:<5} error={row['error'] or '-'}"
        )
    command = _command_name()
    console.print(f"look closer: {command} status -c {config}")
    console.print(f"             {command} records carrier -c {config} --limit 5")
    return 0
