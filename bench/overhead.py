"""Engine overhead: N no-op per-target runs through the engine, status persisted in SQLite.

Each N runs in a fresh child process so that its peak RSS is its own. Prints one
JSON document: runs per second and peak RSS per N, and the ratios between
sizes (linear cost means runs/s stays flat; flat memory means RSS barely grows).

    .venv/bin/python bench/overhead.py [--sizes 1000,10000,100000] [--workers 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from synchestra import Orchestrator, SyncContext, Target
from synchestra.config import parse_config
from synchestra.events import Subscription

FINAL = {"run.succeeded", "run.failed", "run.skipped", "run.cancelled", "run.interrupted"}
CHUNK = 1000


async def count_successes(finished: Subscription, size: int) -> int:
    succeeded = 0
    for _ in range(size):
        event = await finished.get()
        succeeded += event.type == "run.succeeded"
    return succeeded


async def measure(size: int, workers: int, folder: Path) -> dict[str, float]:
    """Queue ``size`` runs in chunks, as a service receiving requests would, and drain them.

    Completion is counted from the event bus, so the benchmark itself keeps no
    per-run state: peak RSS is the engine's.
    """
    config = parse_config(
        {"database": {"url": f"sqlite:///{folder}/bench.db"}, "engine": {"workers": workers}}
    )
    orc = Orchestrator(config)

    @orc.source("noop", per_target=True)
    async def noop(ctx: SyncContext) -> None:
        return None

    keys = [f"t:{i:07d}" for i in range(size)]
    async with orc:
        for start in range(0, size, CHUNK):
            await orc.add_targets([Target(key) for key in keys[start : start + CHUNK]])
        with orc.bus.subscribe(FINAL) as finished:
            started = time.perf_counter()
            orc.start(schedule=False)
            counting = asyncio.create_task(count_successes(finished, size))
            for start in range(0, size, CHUNK):
                await orc.request(["noop"], targets=keys[start : start + CHUNK])
            succeeded = await counting
            elapsed = time.perf_counter() - started
            assert finished.dropped == 0
    assert succeeded == size, f"{size - succeeded} runs did not succeed"
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "n": size,
        "seconds": round(elapsed, 3),
        "runs_per_second": round(size / elapsed, 1),
        "peak_rss_mb": round(peak_kb / 1024, 1),
    }


def child(size: int, workers: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        print(json.dumps(asyncio.run(measure(size, workers, Path(folder)))))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--child", type=int)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.workers)
        return
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        output = subprocess.run(
            [sys.executable, __file__, "--child", str(size), "--workers", str(args.workers)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        results.append(json.loads(output.strip().splitlines()[-1]))
    first = results[0]
    for row in results:
        row["runs_per_second_vs_smallest"] = round(
            row["runs_per_second"] / first["runs_per_second"], 3
        )
        row["rss_vs_smallest"] = round(row["peak_rss_mb"] / first["peak_rss_mb"], 3)
    print(
        json.dumps(
            {
                "benchmark": "overhead",
                "database": "sqlite",
                "workers": args.workers,
                "source": "one no-op per-target source",
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
