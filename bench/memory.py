"""Memory under the scheduler: N targets synced by one fire of a scheduled no-op source.

The issue's goal: "100,000 targets scheduled and synced with no-op sources: peak
RSS under 300 MB". bench/overhead.py queues its runs by request; here the runs
come from the scheduler, as in ``synchestra serve``: the N targets are stored
first, then an orchestrator with one per-target no-op source on a schedule is
started with ``schedule=True`` on the real clock, and its first fire queues the
N runs (one ``store.fire``) which the engine then runs to the end.

The schedule is ``every = "1h"`` with an offset that puts the next fire
``LEAD`` seconds after the source is defined: one real, bounded wait, and one
fire only during the measurement (a short ``every`` would fire again and again
while the N runs drain, deduplicating against them). Each N runs in a fresh
child process, so its peak RSS (VmHWM) is its own. Prints one JSON document.

    .venv/bin/python bench/memory.py [--sizes 1000,10000,100000] [--workers 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from synchestra import Orchestrator, SyncContext, Target
from synchestra.config import Config, parse_config
from synchestra.core.bus import Subscription

FINAL = {"run.succeeded", "run.failed", "run.skipped", "run.cancelled", "run.interrupted"}
STARTED = {"run.started"}
CHUNK = 1000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EVERY = timedelta(hours=1)
LEAD = timedelta(seconds=3)  # from defining the source to its first fire
GOAL_MB = 300.0
GOAL_SIZE = 100_000
CHILD_TIMEOUT = 900.0  # seconds for one child process


def rss_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status (VmRSS now, VmHWM peak).

    VmHWM rather than ``ru_maxrss``: a spawned child's ``ru_maxrss`` starts at
    its parent's peak on Linux.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no {field} in /proc/self/status")


async def store_targets(config: Config, size: int) -> None:
    """Store the N targets, before any source exists (as an imported fleet would be)."""
    async with Orchestrator(config) as orc:
        for start in range(0, size, CHUNK):
            batch = range(start, min(start + CHUNK, size))
            await orc.add_targets([Target(f"t:{i:07d}") for i in batch])


def scheduled_orchestrator(config: Config, now: datetime) -> tuple[Orchestrator, datetime]:
    """An orchestrator whose one per-target no-op source fires next at ``now + LEAD``."""
    fire_at = (now + LEAD).replace(microsecond=0)
    offset = int((fire_at - EPOCH) % EVERY / timedelta(seconds=1))
    orc = Orchestrator(config)

    @orc.source("noop", per_target=True, every="1h", offset=f"{offset}s")
    async def noop(ctx: SyncContext) -> None:
        return None

    return orc, fire_at


async def count_successes(finished: Subscription, size: int) -> int:
    succeeded = 0
    for _ in range(size):
        event = await finished.get()
        succeeded += event.type == "run.succeeded"
    return succeeded


async def measure(size: int, workers: int, folder: Path) -> dict[str, Any]:
    """Fire once, count the N runs' ends from the bus; time and peak RSS.

    ``first_start`` tells how long the fire (one transaction queueing the N
    runs) keeps any run from starting.
    """
    config = parse_config(
        {"database": {"url": f"sqlite:///{folder}/bench.db"}, "engine": {"workers": workers}}
    )
    await store_targets(config, size)
    rss_before = rss_mb("VmRSS")
    orc, fire_at = scheduled_orchestrator(config, datetime.now(UTC))
    async with orc:
        # A bounded queue holds the first "run.started": at most one batch of
        # ``workers`` is published before its reader runs.
        with (
            orc.bus.subscribe(FINAL) as finished,
            orc.bus.subscribe(STARTED, maxsize=2 * workers) as started,
        ):
            orc.start(schedule=True)
            first_start = asyncio.create_task(started.get())
            budget = LEAD.total_seconds() + CHILD_TIMEOUT / 2
            succeeded = await asyncio.wait_for(count_successes(finished, size), budget)
            done_at = datetime.now(UTC)
            assert finished.dropped == 0
            first_start_at = (await first_start).at
        next_fire = (await orc.store.source_rows())["noop"].next_fire_at
    assert succeeded == size, f"{size - succeeded} runs did not succeed"
    assert next_fire == fire_at + EVERY, f"not one fire at {fire_at}: next is {next_fire}"
    seconds = (done_at - fire_at).total_seconds()
    return {
        "n": size,
        "fire_to_done_seconds": round(seconds, 3),
        "fire_to_first_start_seconds": round((first_start_at - fire_at).total_seconds(), 3),
        "runs_per_second": round(size / seconds, 1),
        "rss_before_fire_mb": rss_before,
        "peak_rss_mb": rss_mb("VmHWM"),
    }


def child(size: int, workers: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        print(json.dumps(asyncio.run(measure(size, workers, Path(folder)))))


def run_child(size: int, workers: int) -> dict[str, Any]:
    command = [sys.executable, __file__, f"--child={size}", f"--workers={workers}"]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=CHILD_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        sys.exit(f"memory.py: N = {size} took over {CHILD_TIMEOUT:.0f}s")
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        sys.exit(f"memory.py: N = {size} failed ({done.returncode})")
    row: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return row


def goal(results: list[dict[str, Any]]) -> dict[str, Any]:
    at_size = [row for row in results if row["n"] == GOAL_SIZE]
    peak = at_size[0]["peak_rss_mb"] if at_size else None
    return {
        "targets": GOAL_SIZE,
        "peak_rss_under_mb": GOAL_MB,
        "peak_rss_mb": peak,
        "met": peak is not None and peak < GOAL_MB,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--child", type=int)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.workers)
        return
    results = [run_child(int(size), args.workers) for size in args.sizes.split(",")]
    report = {
        "benchmark": "memory",
        "cpus": os.cpu_count(),
        "database": "sqlite",
        "workers": args.workers,
        "source": "one no-op per-target source, every 1h, runs queued by its fire",
        "results": results,
        "goal": goal(results),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
