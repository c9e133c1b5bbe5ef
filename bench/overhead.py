"""Engine overhead: N no-op jobs end to end, synchestra side by side with Celery and procrastinate.

synchestra: N no-op per-target runs through the full engine, requested in chunks
of 1,000 while the engine runs them, status persisted (SQLite by default, also
PostgreSQL at the peers' sizes, for a same-database comparison with
procrastinate). The peers run the same no-op job through their own full path:

- Celery with Redis as broker and result backend and a real worker process
  (bench/peers/celery_peer.py);
- procrastinate on PostgreSQL, its worker on the benchmark's event loop
  (bench/peers/procrastinate_peer.py).

Each (system, N) runs in a fresh child process, so that its peak RSS is its
own. Prints one JSON document: jobs per second and peak RSS per system and N,
and the ratios of synchestra's rate to each peer's at each N. The peers need
the bench extras (``.venv/bin/pip install -e '.[dev,bench]'``); without them the
benchmark says so and exits 2 (``--peers none`` measures synchestra alone).

    .venv/bin/python bench/overhead.py [--sizes 1000,10000,100000] [--peer-sizes 1000,10000]
        [--workers 64] [--peers celery,procrastinate] [--repeat 1]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import importlib.util
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, NoReturn

import asyncpg  # type: ignore[import-untyped]

from synchestra import Orchestrator, SyncContext, Target
from synchestra.config import parse_config
from synchestra.core.bus import Subscription

FINAL = {"run.succeeded", "run.failed", "run.skipped", "run.cancelled", "run.interrupted"}
CHUNK = 1000
PEERS = Path(__file__).resolve().parent / "peers"
INSTALL = ".venv/bin/pip install -e '.[dev,bench]'"
EXTRAS = {"celery": ("celery", "redis"), "procrastinate": ("procrastinate", "psycopg")}
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
CHILD_TIMEOUT = 900.0  # seconds for one (system, N) child process
GOAL_VS_CELERY = 5.0  # the goal: synchestra at least 5x Celery's throughput
Command = Callable[[int], list[str]]  # the command line measuring one system at one N

# Celery: the fastest settings of those tried here (N = 5,000, twice each, on
# the 2-core machine): the solo pool (tasks run in the consumer process) with a
# prefetch multiplier of 64, as Celery's docs advise for many short tasks. The
# default prefork pool (2 processes) with a multiplier of 4, 64 or 128, and 4
# threads, were 5-55% slower. Results are stored in Redis.
CELERY_SETTINGS = {"pool": "solo", "concurrency": 1, "prefetch": 64}
CELERY_TRIED = "prefork x2 with prefetch 4, 64, 128; threads x4; solo: the fastest"


# --- synchestra (child process) ----------------------------------------------------


async def count_successes(finished: Subscription, size: int) -> int:
    succeeded = 0
    for _ in range(size):
        event = await finished.get()
        succeeded += event.type == "run.succeeded"
    return succeeded


async def measure(size: int, workers: int, database_url: str) -> dict[str, float]:
    """Queue ``size`` runs in chunks, as a service receiving requests would, and drain them.

    Completion is counted from the event bus, so the benchmark itself keeps no
    per-run state: peak RSS is the engine's.
    """
    config = parse_config({"database": {"url": database_url}, "engine": {"workers": workers}})
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
    return {
        "n": size,
        "seconds": round(elapsed, 3),
        "runs_per_second": round(size / elapsed, 1),
        "peak_rss_mb": peak_rss_mb(),
    }


def peak_rss_mb() -> float:
    """This process's peak RSS since it started (VmHWM).

    Not ``ru_maxrss``: on Linux a spawned child's ``ru_maxrss`` starts at its
    parent's peak RSS (kept across fork and exec), so it would report the
    parent's footprint as a floor.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


@asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """A database of its own on the loopback server, dropped afterwards."""
    name = f"synchestra_bench_overhead_{os.getpid()}"
    admin = await asyncpg.connect(f"{PG_SERVER}/postgres")
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name}")
        await admin.execute(f"CREATE DATABASE {name}")
        try:
            yield f"{PG_SERVER}/{name}"
        finally:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


async def measure_on(database: str, size: int, workers: int) -> dict[str, float]:
    if database == "postgresql":
        async with postgres_database() as url:
            return await measure(size, workers, url)
    with tempfile.TemporaryDirectory() as folder:
        return await measure(size, workers, f"sqlite:///{folder}/bench.db")


def child(size: int, workers: int, database: str) -> None:
    print(json.dumps(asyncio.run(measure_on(database, size, workers))))


# --- the parent: one child per (system, N) -----------------------------------------


def missing_extras(peers: Sequence[str]) -> list[str]:
    """The bench extras' modules that the chosen peers need and cannot import."""
    modules = [module for peer in peers for module in EXTRAS[peer]]
    return [module for module in modules if importlib.util.find_spec(module) is None]


def run_child(command: list[str]) -> dict[str, Any]:
    """Run one measurement in a fresh process; its last stdout line is its JSON."""
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=CHILD_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        sys.exit(f"overhead.py: {' '.join(command[1:])} took over {CHILD_TIMEOUT:.0f}s")
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        sys.exit(f"overhead.py: {' '.join(command[1:])} failed ({done.returncode})")
    row: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return row


def synchestra_command(workers: int, database: str) -> Command:
    base = [sys.executable, __file__, f"--workers={workers}", f"--database={database}"]
    return lambda size: [*base, f"--child={size}"]


def celery_command() -> Command:
    options = [f"--{name}={value}" for name, value in CELERY_SETTINGS.items()]
    base = [sys.executable, str(PEERS / "celery_peer.py"), *options]
    return lambda size: [*base, f"--n={size}"]


def procrastinate_command(workers: int) -> Command:
    base = [sys.executable, str(PEERS / "procrastinate_peer.py"), f"--concurrency={workers}"]
    return lambda size: [*base, f"--n={size}"]


def plan(args: argparse.Namespace, peers: Sequence[str]) -> dict[str, tuple[Command, list[int]]]:
    """Each system to measure: how to run it at one N, and at which N."""
    peer_sizes = sizes_of(args.peer_sizes)
    systems = {"synchestra": (synchestra_command(args.workers, "sqlite"), sizes_of(args.sizes))}
    if "procrastinate" in peers:
        systems["synchestra_postgresql"] = (
            synchestra_command(args.workers, "postgresql"),
            peer_sizes,
        )
        systems["procrastinate"] = (procrastinate_command(args.workers), peer_sizes)
    if "celery" in peers:
        systems["celery"] = (celery_command(), peer_sizes)
    return systems


def measure_all(
    systems: dict[str, tuple[Command, list[int]]], repeat: int
) -> dict[str, list[dict[str, Any]]]:
    """Every (system, N), interleaved by N, the best of ``repeat`` runs each.

    Interleaving puts the measurements compared at one N minutes apart at
    most, so that a change in a shared machine's load falls on all of them.
    """
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in systems}
    for size in sorted({n for _, sizes in systems.values() for n in sizes}):
        for name, (command, sizes) in systems.items():
            if size in sizes:
                runs = [run_child(command(size)) for _ in range(repeat)]
                rows[name].append(max(runs, key=rate))
    return rows


def with_scaling(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add each row's rate and RSS relative to the smallest N (flat means linear cost)."""
    first = rows[0]
    for row in rows:
        row["runs_per_second_vs_smallest"] = round(
            row["runs_per_second"] / first["runs_per_second"], 3
        )
        row["rss_vs_smallest"] = round(row["peak_rss_mb"] / first["peak_rss_mb"], 3)
    return rows


def synchestra_section(rows: list[dict[str, Any]], database: str, workers: int) -> dict[str, Any]:
    return {"database": database, "workers": workers, "results": with_scaling(rows)}


def celery_section(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "version": importlib.metadata.version("celery"),
        "broker": "redis 127.0.0.1:6379, database 11, keys prefixed synchestra-bench: (deleted)",
        "result_backend": "redis, on (every task's state stored, as synchestra stores runs)",
        "settings": {**CELERY_SETTINGS, "acks": "early (Celery's default)"},
        "settings_tried": CELERY_TRIED,
        "client": "one producer, no per-task result subscription; results read with MGET",
        "peak_rss": "worker: the worker process and its pool's (sum of peaks); client: driver",
        "results": rows,
    }


def procrastinate_section(rows: list[dict[str, Any]], workers: int) -> dict[str, Any]:
    return {
        "version": importlib.metadata.version("procrastinate"),
        "database": "postgresql 127.0.0.1:5432, a database of its own (dropped)",
        "settings": {"concurrency": workers, "worker": "in-process", "defer": f"{CHUNK}/batch"},
        "results": rows,
    }


def rate(row: dict[str, Any]) -> float:
    value: float = row.get("runs_per_second") or row["tasks_per_second"]
    return value


def ratio_rows(report: dict[str, Any], sizes: Sequence[int]) -> Iterator[dict[str, Any]]:
    """synchestra's jobs/s over each peer's, at every N measured for both."""
    rates = {
        system: {row["n"]: rate(row) for row in section["results"]}
        for system, section in report.items()
        if isinstance(section, dict) and "results" in section
    }
    pairs = [
        ("synchestra", "celery"),
        ("synchestra", "procrastinate"),
        ("synchestra_postgresql", "procrastinate"),
    ]
    for n in sizes:
        row: dict[str, Any] = {"n": n}
        for ours, theirs in pairs:
            if n in rates.get(ours, {}) and n in rates.get(theirs, {}):
                row[f"{ours}_vs_{theirs}"] = round(rates[ours][n] / rates[theirs][n], 2)
        yield row


def goal(ratios: Sequence[dict[str, Any]]) -> dict[str, Any]:
    measured = [row["synchestra_vs_celery"] for row in ratios if "synchestra_vs_celery" in row]
    lowest = min(measured) if measured else None
    return {
        "synchestra_vs_celery_at_least": GOAL_VS_CELERY,
        "lowest_ratio": lowest,
        "met": lowest is not None and lowest >= GOAL_VS_CELERY,
    }


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_at_start": [round(value, 2) for value in os.getloadavg()],
    }


def sizes_of(text: str) -> list[int]:
    return [int(size) for size in text.split(",") if size.strip()]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000,100000", help="synchestra on SQLite")
    parser.add_argument("--peer-sizes", default="1000,10000", help="everything else")
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--peers", default="celery,procrastinate", help="or 'none'")
    parser.add_argument("--repeat", type=int, default=1, help="keep the best of R runs")
    parser.add_argument("--child", type=int)
    parser.add_argument("--database", default="sqlite", choices=["sqlite", "postgresql"])
    return parser.parse_args()


def usage_error(message: str) -> NoReturn:
    """One line on stderr and exit 2, as the CLI does for bad usage."""
    print(f"overhead.py: {message}", file=sys.stderr)
    sys.exit(2)


def main() -> None:
    args = parse_args()
    if args.child:
        child(args.child, args.workers, args.database)
        return
    peers = [] if args.peers == "none" else [p for p in args.peers.split(",") if p]
    if unknown := set(peers) - set(EXTRAS):
        usage_error(f"unknown peers {sorted(unknown)}: choose from {', '.join(EXTRAS)} or none")
    if missing := missing_extras(peers):
        usage_error(f"the bench extras are missing ({', '.join(missing)}): run {INSTALL}")
    print(json.dumps(report(args, peers), indent=2))


def report(args: argparse.Namespace, peers: Sequence[str]) -> dict[str, Any]:
    rows = measure_all(plan(args, peers), args.repeat)
    result: dict[str, Any] = {
        "benchmark": "overhead",
        "machine": machine(),
        "repeat": f"best of {args.repeat}",
        "job": "a no-op: per-target source (synchestra), task (Celery, procrastinate)",
        "synchestra": synchestra_section(rows["synchestra"], "sqlite", args.workers),
    }
    if "procrastinate" in peers:
        result["synchestra_postgresql"] = synchestra_section(
            rows["synchestra_postgresql"], "postgresql (procrastinate's server)", args.workers
        )
        result["procrastinate"] = procrastinate_section(rows["procrastinate"], args.workers)
    if "celery" in peers:
        result["celery"] = celery_section(rows["celery"])
    result["ratios"] = list(ratio_rows(result, sizes_of(args.peer_sizes)))
    if "celery" in peers:
        result["goal"] = goal(result["ratios"])
    return result


if __name__ == "__main__":
    main()
