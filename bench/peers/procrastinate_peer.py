"""procrastinate peer of bench/overhead.py: N no-op jobs through PostgreSQL, end to end.

``python bench/peers/procrastinate_peer.py --n 1000`` creates a database of its
own on 127.0.0.1:5432, applies procrastinate's schema, and runs a worker in
this process (on this event loop, as synchestra's workers share its loop). It
times deferring N no-op jobs in batches of 1,000 (as overhead.py requests
synchestra runs in chunks of 1,000) while the worker runs them, until all N
jobs are ``succeeded`` in the database (procrastinate keeps every job's status,
as synchestra keeps every run's), then stops the worker and drops the database.
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import time
from pathlib import Path
from typing import Any

import procrastinate  # type: ignore[import-not-found,unused-ignore]
import psycopg  # type: ignore[import-not-found,unused-ignore]

SERVER = "host=127.0.0.1 port=5432 user=postgres"
CHUNK = 1000
POLL = 0.05  # seconds between counts of the succeeded jobs
READY_TIMEOUT = 60.0  # seconds for the worker to run its warm-up job
STOP_TIMEOUT = 30.0  # seconds for the worker to stop after being asked
TASK = "bench.noop"


def database_name() -> str:
    return f"synchestra_bench_procrastinate_{os.getpid()}"


def admin(statement: str) -> None:
    """Run one statement on the server's maintenance database (CREATE / DROP DATABASE)."""
    with psycopg.connect(f"{SERVER} dbname=postgres", autocommit=True) as conn:
        conn.execute(statement)


def make_app(conninfo: str, pool_size: int) -> procrastinate.App:
    """A procrastinate app on ``conninfo`` with the one no-op task."""
    connector = procrastinate.PsycopgConnector(
        conninfo=conninfo, min_size=pool_size, max_size=pool_size
    )
    app = procrastinate.App(connector=connector)

    @app.task(name=TASK)
    async def noop() -> None:
        """Does nothing, so what is measured is procrastinate's own cost."""
        return None

    return app


async def wait_succeeded(conninfo: str, size: int, deadline: float) -> None:
    """Poll the jobs table until ``size`` jobs succeeded (bounded by ``deadline``)."""
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        while time.perf_counter() < deadline:
            cursor = await conn.execute(
                "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"
            )
            row = await cursor.fetchone()
            if row is not None and row[0] >= size:
                return
            await asyncio.sleep(POLL)
    raise TimeoutError("procrastinate jobs still unfinished at the deadline")


async def measure(
    app: procrastinate.App, conninfo: str, size: int, concurrency: int, budget: float
) -> float:
    """Start the worker, defer ``size`` jobs in batches, wait until all succeeded; seconds.

    One warm-up job runs first, so that the worker is registered and listening
    when the clock starts (Celery's worker gets the same).
    """
    worker = asyncio.create_task(
        app.run_worker_async(concurrency=concurrency, wait=True, install_signal_handlers=False)
    )
    try:
        task = app.tasks[TASK]
        await task.defer_async()
        await wait_succeeded(conninfo, 1, time.perf_counter() + READY_TIMEOUT)
        started = time.perf_counter()
        for start in range(0, size, CHUNK):
            await task.batch_defer_async(*({} for _ in range(min(CHUNK, size - start))))
        await wait_succeeded(conninfo, 1 + size, started + budget)
        return time.perf_counter() - started
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(worker, STOP_TIMEOUT)


async def run_in(conninfo: str, size: int, concurrency: int, budget: float) -> float:
    app = make_app(conninfo, pool_size=min(concurrency, 8) + 2)
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        elapsed: float = await measure(app, conninfo, size, concurrency, budget)
    return elapsed


def run(size: int, concurrency: int, timeout: float) -> dict[str, Any]:
    name = database_name()
    admin(f"DROP DATABASE IF EXISTS {name}")
    admin(f"CREATE DATABASE {name}")
    try:
        elapsed = asyncio.run(run_in(f"{SERVER} dbname={name}", size, concurrency, timeout))
    finally:
        admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    return {
        "n": size,
        "seconds": round(elapsed, 3),
        "tasks_per_second": round(size / elapsed, 1),
        "peak_rss_mb": peak_rss_mb(),
    }


def peak_rss_mb() -> float:
    """This process's peak RSS since it started (VmHWM; ``ru_maxrss`` would include
    the parent's, which a spawned child inherits on Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def stop_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, stop_on_signal)  # so that ``finally`` drops the database
    print(json.dumps(run(args.n, args.concurrency, args.timeout)))


if __name__ == "__main__":
    main()
